"""Modbus TCP driver (pymodbus 3.x): reads a device's tags by the read plan, one link per unit.

Each unit id has its own TCP connection and its own poll loop, so a unit (or a device) that does
not answer only costs its own tags: the others keep their pace. A request that times out is the
sign of a half-open connection, a pulled cable or a stream out of step (pymodbus skips replies
whose transaction id does not match, which then time out): after `reconnect_after_errors`
consecutive failures the link is closed and opened again at the next attempt, with capped,
jittered backoff while the device stays unreachable. Nothing needs restarting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Collection, Sequence
from itertools import groupby

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException
from pymodbus.pdu import ModbusPDU

from core.backoff import Backoff
from edge_agent.drivers.base import BoundTag, DriverHealth, TagReading
from edge_agent.drivers.modbus.codec import decode
from edge_agent.drivers.modbus.config import ModbusDevice, ModbusTable, ModbusTag
from edge_agent.drivers.modbus.plan import ReadRequest, plan_reads
from edge_agent.drivers.runtime import (
    HealthTracker,
    combine,
    deliver,
    failed,
    now,
    sleep_or_stop,
)

log = logging.getLogger(__name__)

_READ = {
    ModbusTable.HOLDING: AsyncModbusTcpClient.read_holding_registers,
    ModbusTable.INPUT: AsyncModbusTcpClient.read_input_registers,
    ModbusTable.COIL: AsyncModbusTcpClient.read_coils,
    ModbusTable.DISCRETE: AsyncModbusTcpClient.read_discrete_inputs,
}


class _LinkDown(Exception):
    """The unit cannot be reached: the rest of this poll is skipped."""


class _Refused(Exception):
    """The unit answered with a Modbus exception: only this request's tags fail."""


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
        self._requests = requests
        self._tags = tags
        self._client: AsyncModbusTcpClient | None = None
        self._failures = 0
        self.bound = [tags[p.index] for r in requests for p in r.tags]
        self.health = HealthTracker()
        self.backoff = Backoff(
            # Backoff needs first <= max; a backoff_max_s below the first step caps it.
            min(1.0, device.poll_interval_s, device.backoff_max_s), device.backoff_max_s
        )

    async def poll(self) -> tuple[list[TagReading], bool]:
        """Read every request of this unit once; False when the unit could not be reached."""
        readings: list[TagReading] = []
        down: str | None = None
        for req in self._requests:
            bound = [self._tags[p.index] for p in req.tags]
            if down is not None:
                readings += failed(bound, down)
                continue
            try:
                reply = await self._read(req)
            except _Refused as e:
                readings += failed(bound, str(e))
                continue
            except _LinkDown as e:
                down = str(e)
                readings += failed(bound, down)
                continue
            ts = now()
            readings += [
                TagReading(b.machine, b.tag, decode(reply, p.offset, p.tag), ts)
                for b, p in zip(bound, req.tags, strict=True)
            ]
        self.health.consecutive_errors = self._failures
        self.health.record(readings)
        return readings, down is None

    async def _read(self, req: ReadRequest) -> Sequence[int] | Sequence[bool]:
        last = "no attempt"
        for _ in range(self._device.retries + 1):
            client = await self._connected()
            started = time.monotonic()
            try:
                reply: ModbusPDU = await _READ[req.table](
                    client, req.start, count=req.count, device_id=req.unit
                )
            except (ModbusException, TimeoutError, OSError) as e:
                self.health.request(time.monotonic() - started)
                last = f"unit {self.unit}: {type(e).__name__}: {e}"
                self._failures += 1
                if self._failures >= self._device.reconnect_after_errors or not client.connected:
                    self.drop()
                continue
            self.health.request(time.monotonic() - started)
            self._failures = 0
            if reply.isError():
                raise _Refused(
                    f"unit {self.unit} refused {req.table.value} {req.start}+{req.count}: "
                    f"Modbus exception {reply.exception_code}"
                )
            values = reply.bits if req.table.is_bits else reply.registers
            if len(values) < req.count:
                raise _Refused(f"unit {self.unit}: short reply ({len(values)} < {req.count})")
            return values
        raise _LinkDown(last)

    async def _connected(self) -> AsyncModbusTcpClient:
        if self._client is not None and self._client.connected:
            return self._client
        self.drop()
        d = self._device
        # reconnect_delay=0 turns pymodbus's own reconnect loop off: this link decides when to
        # reconnect, and retries=0 leaves retrying to it as well.
        client = AsyncModbusTcpClient(
            d.host,
            port=d.port,
            timeout=d.timeout_s,
            retries=0,
            reconnect_delay=0,
            name=f"{d.name}/unit{self.unit}",
        )
        if not await client.connect():
            client.close()
            self.health.connected = False
            self._failures += 1
            raise _LinkDown(f"unit {self.unit}: cannot connect to {d.host}:{d.port}")
        self._client = client
        self.health.connected = True
        return client

    def drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
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
        interval = self.device.poll_interval_s
        due = time.monotonic()
        while not stop.is_set():
            try:
                readings, reachable = await link.poll()
            except Exception as e:  # a bug must not end acquisition for the whole device
                log.exception("modbus poll failed", extra={"device": self.name, "unit": link.unit})
                readings, reachable = failed(link.bound, f"internal error: {e}"), False
            deliver(sink, readings, self.name)
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
