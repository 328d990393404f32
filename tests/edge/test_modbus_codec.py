"""Golden decode cases: known register words -> expected values, for every type and order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.drivers.modbus.codec import decode
from edge_agent.drivers.modbus.config import ByteOrder, ModbusTag, ModbusType, WordOrder

GOLDEN = yaml.safe_load((Path(__file__).parent / "golden" / "modbus_decode.yaml").read_text())


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_golden_decode(case: dict[str, Any]) -> None:
    tag = ModbusTag.model_validate({"address": 0, **case["tag"]})
    value = decode(case["reply"], case.get("offset", 0), tag)
    expected = case["expected"]
    assert type(value) is type(expected)
    assert value == (pytest.approx(expected) if isinstance(expected, float) else expected)


def test_golden_cases_cover_every_type_and_order() -> None:
    seen = set()
    for case in GOLDEN:
        tag = ModbusTag.model_validate({"address": 0, **case["tag"]})
        seen.add((tag.type, tag.byte_order, tag.word_order))
    wide = {t for t in ModbusType if t.registers > 1}
    for t in wide:
        for b in ByteOrder:
            for w in WordOrder:
                assert (t, b, w) in seen, (t, b, w)
    for t in set(ModbusType) - wide - {ModbusType.BOOL}:
        for b in ByteOrder:
            assert (t, b, WordOrder.BIG) in seen, (t, b)
    assert any(t is ModbusType.BOOL for t, _, _ in seen)
