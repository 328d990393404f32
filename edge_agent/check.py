"""`mes edge check`: validate a tag map, connect to every device, read every tag once, report.

A dry run for the plant engineer writing a tag map: exit 2 when the map is invalid (the
ConfigError names file and key path), 1 when any tag could not be read, 0 when all were.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from edge_agent.drivers.base import Driver, TagReading
from edge_agent.drivers.registry import make_driver
from edge_agent.tagmap import AgentConfig, load_agent_config


async def read_all(config: AgentConfig) -> list[tuple[str, TagReading]]:
    """(device, reading) for every tag, in map order; all devices are read concurrently."""
    drivers = [
        make_driver(device, tags)
        for device in config.devices
        if (tags := config.bound_tags(device.name))
    ]

    async def one(driver: Driver) -> list[tuple[str, TagReading]]:
        try:
            return [(driver.name, r) for r in await driver.read_once()]
        finally:
            await driver.close()

    results = await asyncio.gather(*(one(d) for d in drivers))
    order = {(m.code, tag): i for i, (m, tag) in enumerate(
        (m, tag) for m in config.machines for tag in m.tags)}  # fmt: skip
    return sorted((row for rows in results for row in rows),
                  key=lambda row: order[(row[1].machine, row[1].tag)])  # fmt: skip


def format_table(rows: Sequence[tuple[str, TagReading]]) -> str:
    """A plain text table: device, machine, tag, value, error."""
    header = ("DEVICE", "MACHINE", "TAG", "VALUE", "ERROR")
    cells = [header] + [
        (device, r.machine, r.tag, "" if r.value is None else repr(r.value), r.error or "")
        for device, r in rows
    ]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header) - 1)]
    lines = ["  ".join(c[i].ljust(widths[i]) for i in range(len(widths))) + "  " + c[-1]
             for c in cells]  # fmt: skip
    return "\n".join(line.rstrip() for line in lines)


def check(path: str | Path, out: TextIO) -> int:
    """Run the check on the tag map at `path`, print the table to `out`; the exit status."""
    config = load_agent_config(path)
    rows = asyncio.run(read_all(config))
    failed = sum(1 for _, r in rows if r.error is not None)
    print(format_table(rows), file=out)
    print(f"\n{len(rows) - failed} of {len(rows)} tags read, {failed} failed", file=out)
    return 1 if failed else 0
