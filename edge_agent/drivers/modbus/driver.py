"""Modbus TCP driver: reads a device's tags by the read plan, one connection per unit.

Each unit id has its own TCP connection and its own poll loop, so a unit (or a device) that does
not answer only costs its own tags: the others keep their pace. A poll sends the unit's requests
up to `max_outstanding_requests` at a time on that one connection (the transport matches the
replies by transaction id), and stamps each request's values with that request's reply time.
A request that times out is the sign of a half-open connection, a pulled cable or a stream out
of step: after `reconnect_after_errors` consecutive failures the connection is closed and opened
again at the next attempt, with capped, jittered backoff while the device stays unreachable. A
stream out of step (a reply that fits no request) closes the connection at once. Nothing needs
restarting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from itertools import groupby

from pymodbus.exceptions import ModbusIOException

from core.backoff import Backoff
from edge_agent.drivers.base import BoundTag, DriverHealth, TagReading
from edge_agent.drivers.modbus.codec import ReplyDecoder, reply_decoder
from edge_agent.drivers.modbus.config import ModbusDevice, ModbusTag
from edge_agent.drivers.modbus.plan import ReadRequest, plan_reads
from edge_agent.drivers.modbus.transport import ModbusConnection, ModbusRefused
from edge_agent.drivers.runtime import (
    HealthTracker,
    Pace,
    combine,
    deliver,
    failed,
    sleep_or_stop,
)

log = logging.getLogger(__name__)


class _LinkDown(Exception):
    """The unit cannot be reached: the rest of this poll is skipped."""


class _Refused(Exception):
    """The unit answered with a Modbus exception: only this request's tags fail."""


class _Planned:
    """One request of the plan with what its reply becomes: the tags it reads and its decoder."""

    __slots__ = ("bound", "decode", "names", "request")

    def __init__(self, request: ReadRequest, tags: Sequence[BoundTag]) -> None:
        self.request = request
        self.bound = [tags[p.index] for p in request.tags]
        self.names = [(b.machine, b.tag) for b in self.bound]
        self.decode: ReplyDecoder = reply_decoder(
            [(p.offset, p.tag) for p in request.tags], request.count
        )

    def readings(self, data: bytes, at: datetime) -> list[TagReading]:
        return [
            TagReading(machine, tag, value, at)
            for (machine, tag), value in zip(self.names, self.decode(data), strict=True)
        ]


class _UnitLink:
    """One unit's TCP connection, its requests of the plan, and its health."""

    def __init__(
        self,
        device: ModbusDevice,
        unit: int,
        requests: Sequence[ReadRequest],
        tags: Sequence[BoundTag],
    ) -> None:
        self._device = device
        self.unit = unit
        self._requests = [_Planned(r, tags) for r in requests]
        self._connection: ModbusConnection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._connecting = asyncio.Lock()
        self._window = asyncio.Semaphore(device.max_outstanding_requests)
        self._failures = 0
        self._down: str | None = None
        self.reachable = True  # as of the last poll (the poll loop logs the changes)
        self.bound = [b for p in self._requests for b in p.bound]
        self.health = HealthTracker()
        self.backoff = Backoff(
            # Backoff needs first <= max; a backoff_max_s below the first step caps it.
            min(1.0, device.poll_interval_s, device.backoff_max_s), device.backoff_max_s
        )

    async def poll(self) -> tuple[list[TagReading], bool]:
        """Read every request of this unit once, up to the device's depth in flight together;
        False when the unit could not be reached."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a connection, lock and window serve one event loop only
            self.drop()
            self._loop, self._connecting = loop, asyncio.Lock()
            self._window = asyncio.Semaphore(self._device.max_outstanding_requests)
        self._down = None
        if len(self._requests) == 1:
            parts = [await self._request(self._requests[0])]
        else:
            parts = await asyncio.gather(*(self._request(p) for p in self._requests))
        readings = [r for part in parts for r in part]
        self.health.consecutive_errors = self._failures
        self.health.record(readings)
        return readings, self._down is None

    async def _request(self, planned: _Planned) -> list[TagReading]:
        async with self._window:
            if self._down is not None:
                return failed(planned.bound, self._down)
            try:
                data, at = await self._read(planned.request)
            except _Refused as e:
                return failed(planned.bound, str(e))
            except _LinkDown as e:
                self._down = str(e)
                return failed(planned.bound, self._down)
        return planned.readings(data, at)

    async def _read(self, req: ReadRequest) -> tuple[bytes, datetime]:
        last = "no attempt"
        d = self._device
        for _ in range(d.retries + 1):
            connection = await self._connected()
            started = time.monotonic()
            try:
                data, at = await connection.read(req.unit, req.table, req.start, req.count,
                                                 d.timeout_s)  # fmt: skip
            except ModbusRefused as e:
                self.health.request(time.monotonic() - started)
                self._failures = 0
                raise _Refused(
                    f"unit {self.unit} refused {req.table.value} {req.start}+{req.count}: {e}"
                ) from None
            except (TimeoutError, OSError) as e:
                self.health.request(time.monotonic() - started)
                if isinstance(e, TimeoutError):
                    e = ModbusIOException(f"no reply within {d.timeout_s:g} s")
                last = f"unit {self.unit}: {type(e).__name__}: {e}"
                self._failures += 1
                if self._failures >= d.reconnect_after_errors or not connection.connected:
                    self.drop()
                continue
            self.health.request(time.monotonic() - started)
            self._failures = 0
            return data, at
        raise _LinkDown(last)

    async def _connected(self) -> ModbusConnection:
        async with self._connecting:  # the requests of a poll share the one connection
            if self._connection is not None and self._connection.connected:
                return self._connection
            if self._down is not None:
                raise _LinkDown(self._down)
            self.drop()
            d = self._device
            try:
                self._connection = await ModbusConnection.open(d.host, d.port, d.timeout_s)
            except (TimeoutError, OSError):
                self.health.connected = False
                self._failures += 1
                self._down = f"unit {self.unit}: cannot connect to {d.host}:{d.port}"
                raise _LinkDown(self._down) from None
            self.health.connected = True
            return self._connection

    def drop(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        self.health.connected = False


class ModbusDriver:
    """Reads one Modbus TCP device; see the module docstring for the failure behaviour."""

    def __init__(self, device: ModbusDevice, tags: list[BoundTag]) -> None:
        addresses: list[ModbusTag] = []
        for t in tags:
            if not isinstance(t.address, ModbusTag):
                raise TypeError(f"{t.machine}.{t.tag}: not a Modbus address")
            addresses.append(t.address)
        self.name = device.name
        self.device = device
        self.pace = Pace()
        self.plan = plan_reads(device, addresses)
        self._links = [
            _UnitLink(device, unit, list(reqs), tags)
            for unit, reqs in groupby(self.plan, key=lambda r: r.unit)
        ]

    async def read_once(self) -> list[TagReading]:
        polls = await asyncio.gather(*(link.poll() for link in self._links))
        return [r for readings, _ in polls for r in readings]

    async def run(self, sink: Callable[[list[TagReading]], None], stop: asyncio.Event) -> None:
        loops = [
            asyncio.create_task(self._poll_loop(link, sink, stop), name=f"{self.name}/{link.unit}")
            for link in self._links
        ]
        try:
            await stop.wait()
        finally:
            # Stopping must not wait out a request to a unit that does not answer.
            for task in loops:
                task.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            await self.close()

    async def _poll_loop(
        self, link: _UnitLink, sink: Callable[[list[TagReading]], None], stop: asyncio.Event
    ) -> None:
        due = time.monotonic()
        while not stop.is_set():
            interval = self.pace.interval(self.device.poll_interval_s)
            try:
                readings, reachable = await link.poll()
            except Exception as e:  # a bug must not end acquisition for the whole device
                log.exception("modbus poll failed", extra={"device": self.name, "unit": link.unit})
                readings, reachable = failed(link.bound, f"internal error: {e}"), False
            deliver(sink, readings, self.name)
            if reachable != link.reachable:  # one line when a unit is lost and one when back
                link.reachable = reachable
                where = {"device": self.name, "unit": link.unit}
                if reachable:
                    log.warning("modbus unit reachable again", extra=where)
                else:
                    log.warning("modbus unit unreachable; retrying",
                                extra={**where, "error": link.health.last_error})  # fmt: skip
            if reachable:
                link.backoff.reset()
                due = max(due + interval, time.monotonic())
            else:
                due = time.monotonic() + max(interval, link.backoff.delay())
            if await sleep_or_stop(stop, due - time.monotonic()):
                return

    def watches(self, machine: str, tags: Collection[str]) -> bool:
        """Never: Modbus is polled, so silence from a device is no news of its values."""
        return False

    def health(self) -> DriverHealth:
        return combine([link.health.snapshot() for link in self._links])

    async def close(self) -> None:
        for link in self._links:
            link.drop()
