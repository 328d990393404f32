"""Helpers for driver tests: collect what a running driver delivers and wait for conditions."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from edge_agent.drivers.base import Driver, TagReading
from tests.support.wait import wait_until_async


class Collector:
    """A `run()` sink that keeps every batch, with a way to wait until a condition holds."""

    def __init__(self) -> None:
        self.batches: list[list[TagReading]] = []

    def __call__(self, readings: list[TagReading]) -> None:
        self.batches.append(readings)

    def readings(self, tag: str | None = None) -> list[TagReading]:
        return [r for b in self.batches for r in b if tag is None or r.tag == tag]

    def good(self, tag: str) -> list[TagReading]:
        return [r for r in self.readings(tag) if r.error is None]

    def bad(self, tag: str) -> list[TagReading]:
        return [r for r in self.readings(tag) if r.error is not None]

    async def wait(self, condition: Callable[[], bool], what: str, timeout: float = 20) -> None:
        """Wait until `condition()` holds (the driver delivers on this loop meanwhile)."""
        await wait_until_async(condition, timeout, what)


class Running:
    """`async with Running(driver) as got:` runs the driver until the block ends."""

    def __init__(self, driver: Driver) -> None:
        self.driver = driver
        self.collector = Collector()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Collector:
        self._task = asyncio.create_task(self.driver.run(self.collector, self._stop))
        return self.collector

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._task is not None
        await asyncio.wait_for(self._task, 30)
