"""The Modbus read plan: a device's tags grouped into the fewest read requests. No I/O.

Tags are grouped per (unit, table), sorted by address and merged greedily: a tag joins the
current request while the unused gap before it is at most `max_gap` and the request stays within
the per-request limit (125 registers, 2000 bits, or a device's lower workaround limit). For
tags sorted by start address, taking as many as fit into each request is optimal, so the plan is
the minimum number of requests the map allows. It is computed once, when the driver is built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import groupby

from edge_agent.drivers.modbus.config import ModbusDevice, ModbusTable, ModbusTag


@dataclass(frozen=True, slots=True)
class PlannedTag:
    """One tag inside a request: `index` into the driver's tag list, `offset` into the reply."""

    index: int
    offset: int
    tag: ModbusTag


@dataclass(frozen=True, slots=True)
class ReadRequest:
    """One Modbus read: `count` registers or bits of `table` from `start`, on `unit`."""

    unit: int
    table: ModbusTable
    start: int
    count: int
    tags: tuple[PlannedTag, ...]


class PlanError(ValueError):
    """A tag the device cannot read in one request; `index` says which."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


def plan_reads(device: ModbusDevice, tags: Sequence[ModbusTag]) -> tuple[ReadRequest, ...]:
    """Group `tags` (in driver order) into requests, ordered by unit, table and address."""
    limits = {
        False: device.workarounds.max_registers_per_request,
        True: device.workarounds.max_bits_per_request,
    }
    keyed = sorted(
        (
            ((t.unit_id if t.unit_id is not None else device.unit_id), t.table, t.address, i)
            for i, t in enumerate(tags)
        ),
    )
    requests: list[ReadRequest] = []
    for (unit, table), group in groupby(keyed, key=lambda k: (k[0], k[1])):
        limit = limits[table.is_bits]
        members: list[int] = []
        start = end = 0
        for _, _, address, i in group:
            tag = tags[i]
            if tag.count > limit:
                raise PlanError(
                    i, f"needs {tag.count} registers, more than {limit} per request on this device"
                )
            new_end = max(end, address + tag.count)
            if members and address - end <= device.max_gap and new_end - start <= limit:
                members.append(i)
                end = new_end
                continue
            if members:
                requests.append(_request(unit, table, start, end, members, tags))
            members, start, end = [i], address, address + tag.count
        if members:
            requests.append(_request(unit, table, start, end, members, tags))
    return tuple(requests)


def _request(
    unit: int,
    table: ModbusTable,
    start: int,
    end: int,
    members: list[int],
    tags: Sequence[ModbusTag],
) -> ReadRequest:
    planned = tuple(PlannedTag(i, tags[i].address - start, tags[i]) for i in members)
    return ReadRequest(unit, table, start, end - start, planned)
