"""Golden decode cases: known register words -> expected values, for every type and order."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.drivers.modbus.codec import decode, reply_decoder
from edge_agent.drivers.modbus.config import ByteOrder, ModbusTag, ModbusType, WordOrder

GOLDEN = yaml.safe_load((Path(__file__).parent / "golden" / "modbus_decode.yaml").read_text())


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_golden_decode(case: dict[str, Any]) -> None:
    tag = ModbusTag.model_validate({"address": 0, **case["tag"]})
    value = decode(case["reply"], case.get("offset", 0), tag)
    expected = case["expected"]
    assert type(value) is type(expected)
    assert value == (pytest.approx(expected) if isinstance(expected, float) else expected)


@pytest.mark.parametrize("case", GOLDEN, ids=[c["name"] for c in GOLDEN])
def test_golden_decode_from_reply_bytes(case: dict[str, Any]) -> None:
    # The driver's path: the reply's bytes as they come off the wire, one decoder per request.
    tag = ModbusTag.model_validate({"address": 0, **case["tag"]})
    reply = case["reply"]
    if tag.table.is_bits:
        data = bytes(sum(1 << k for k, on in enumerate(reply[i : i + 8]) if on)
                     for i in range(0, len(reply), 8))  # fmt: skip
    else:
        data = struct.pack(f">{len(reply)}H", *reply)
    (value,) = reply_decoder([(case.get("offset", 0), tag)], len(reply))(data)
    expected = case["expected"]
    assert type(value) is type(expected)
    assert value == (pytest.approx(expected) if isinstance(expected, float) else expected)


def test_one_reply_decodes_every_tag_of_a_mixed_request() -> None:
    # plain numbers in one unpack, overlapping bits, scaled and word-swapped values beside them
    words = [0x8001, 0x4148, 0x0000, 0x7960, 0xFFFE, 1234, 0x4C49, 0x4E45]
    tags = [
        (0, {"type": "bit", "bit": 15}),
        (0, {"type": "bit", "bit": 0}),
        (0, {"type": "uint16"}),
        (1, {"type": "float32"}),
        (3, {"type": "int32", "word_order": "little"}),
        (5, {"type": "uint16", "scale": 0.5}),
        (6, {"type": "string", "length": 2}),
        (5, {"type": "int16"}),
    ]
    placed = [(o, ModbusTag.model_validate({"address": o, **t})) for o, t in tags]
    got = reply_decoder(placed, len(words))(struct.pack(f">{len(words)}H", *words))
    assert got == [decode(words, o, t) for o, t in placed]
    assert got == [True, True, 0x8001, 12.5, -100000, 617.0, "LINE", 1234]


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
