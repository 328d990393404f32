"""Checks across one Modbus device's tags that no single tag can make (run at validation).

Every tag must fit into one request at the device's limits (the planner says which does not),
and two tags may not overlap unless both read bits of the same register: an overlap of two
numbers means one of their addresses is wrong, and both cannot be right.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

from core.config_errors import key_path
from edge_agent.drivers.modbus.config import ModbusDevice, ModbusTag, ModbusType
from edge_agent.drivers.modbus.plan import PlanError, plan_reads
from edge_agent.drivers.registry import Loc


def device_checks(
    device: ModbusDevice, placed: Sequence[tuple[Loc, ModbusTag]]
) -> Iterator[tuple[Loc, str]]:
    """(where, message) for tags the device cannot read in one request, and for overlaps."""
    where = [loc for loc, _ in placed]
    tags = [tag for _, tag in placed]
    try:
        plan_reads(device, tags)
    except PlanError as e:
        yield where[e.index], f"{e} (device {device.name!r})"
    groups: dict[tuple[int, str], list[int]] = defaultdict(list)
    for k, t in enumerate(tags):
        groups[(t.unit_id if t.unit_id is not None else device.unit_id, t.table)].append(k)
    for (unit, table), members in groups.items():
        members.sort(key=lambda k: tags[k].address)
        widest = members[0]  # the tag reaching furthest so far
        for b in members[1:]:
            ta, tb = tags[widest], tags[b]
            overlap = tb.address < ta.address + ta.count
            shared_word = ModbusType.BIT in (ta.type, tb.type) or ta == tb
            if overlap and not shared_word:
                yield (
                    where[b] + ("address",),
                    (
                        f"{table} {tb.address} (unit {unit}) overlaps {key_path(where[widest])} "
                        f"({ta.type.value} at {ta.address}); only 'bit' tags may share a register"
                    ),
                )
            if tb.address + tb.count > ta.address + ta.count:
                widest = b
