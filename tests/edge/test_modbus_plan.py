"""The read planner issues the minimum number of requests a map allows."""

from __future__ import annotations

from typing import Any

import pytest

from edge_agent.drivers.modbus.config import ModbusDevice, ModbusTable, ModbusTag
from edge_agent.drivers.modbus.plan import PlanError, plan_reads


def device(**kw: Any) -> ModbusDevice:
    return ModbusDevice.model_validate({"protocol": "modbus", "name": "d", "host": "h", **kw})


def tag(address: int, type: str = "uint16", **kw: Any) -> ModbusTag:
    return ModbusTag.model_validate({"address": address, "type": type, **kw})


def spans(plan) -> list[tuple[int, str, int, int]]:
    return [(r.unit, r.table.value, r.start, r.count) for r in plan]


def test_contiguous_registers_are_one_request() -> None:
    plan = plan_reads(device(), [tag(a) for a in range(9, -1, -1)])
    assert spans(plan) == [(1, "holding", 0, 10)]
    # every tag knows where it sits in the reply
    assert sorted((p.offset, p.tag.address) for p in plan[0].tags) == [(a, a) for a in range(10)]


@pytest.mark.parametrize(
    ("second", "requests"), [(5, 1), (11, 1), (12, 2)], ids=["gap 4", "gap = max_gap", "gap 11"]
)
def test_gaps_up_to_max_gap_are_read_across(second: int, requests: int) -> None:
    plan = plan_reads(device(max_gap=10), [tag(0), tag(second)])
    assert len(plan) == requests


def test_more_than_125_registers_split_at_the_limit() -> None:
    assert spans(plan_reads(device(), [tag(a) for a in range(130)])) == [
        (1, "holding", 0, 125),
        (1, "holding", 125, 5),
    ]
    # a float32 never straddles two requests: 62 floats (124 registers) fit, the 63rd does not
    floats = plan_reads(device(), [tag(2 * i, "float32") for i in range(63)])
    assert spans(floats) == [(1, "holding", 0, 124), (1, "holding", 124, 2)]


def test_tables_and_units_are_never_mixed() -> None:
    tags = [
        tag(0),
        tag(0, table="input"),
        ModbusTag(table=ModbusTable.COIL, address=0, type="bool"),
        ModbusTag(table=ModbusTable.DISCRETE, address=0, type="bool"),
        tag(1, unit_id=2),
        tag(2, unit_id=2),
    ]
    assert sorted(spans(plan_reads(device(), tags))) == [
        (1, "coil", 0, 1),
        (1, "discrete", 0, 1),
        (1, "holding", 0, 1),
        (1, "input", 0, 1),
        (2, "holding", 1, 2),
    ]


def test_coils_split_at_2000_bits() -> None:
    coils = [ModbusTag(table=ModbusTable.COIL, address=a, type="bool") for a in range(2500)]
    assert spans(plan_reads(device(), coils)) == [(1, "coil", 0, 2000), (1, "coil", 2000, 500)]


def test_bits_sharing_a_register_with_a_word_cost_nothing() -> None:
    tags = [tag(7), tag(7, "bit", bit=0), tag(7, "bit", bit=15), tag(8, "int32")]
    assert spans(plan_reads(device(), tags)) == [(1, "holding", 7, 3)]


def test_device_limit_workaround() -> None:
    small = device(workarounds={"max_registers_per_request": 10})
    assert len(plan_reads(small, [tag(a) for a in range(20)])) == 2
    with pytest.raises(PlanError, match="more than 10"):
        plan_reads(small, [tag(0, "string", length=12)])
