"""What every driver shares at run time: the clock, health counters, waiting, readings in bulk."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from edge_agent.drivers.base import BoundTag, DriverHealth, TagReading

log = logging.getLogger(__name__)


def now() -> datetime:
    """The agent's clock, UTC: a reading's receive time (what a value is stamped with unless
    its source gives the instant it changed: drivers.opcua.timestamps)."""
    return datetime.now(UTC)


class Pace:
    """How much slower than configured every polling driver of an agent polls: each waits
    `interval(poll_interval_s)` between polls. The agent shares one Pace among its drivers and
    raises `factor` above 1 while it cannot keep up (edge_agent.pacing)."""

    def __init__(self) -> None:
        self.factor = 1.0

    def interval(self, configured_s: float) -> float:
        return configured_s * self.factor


def failed(tags: Iterable[BoundTag], error: str, ts: datetime | None = None) -> list[TagReading]:
    """A reading with `error` set for each of `tags`."""
    ts = ts or now()
    return [TagReading(t.machine, t.tag, None, ts, error) for t in tags]


class HealthTracker:
    """Mutable counters behind `Driver.health()`; one per connection."""

    def __init__(self) -> None:
        self.connected = False
        self.last_ok: datetime | None = None
        self.consecutive_errors = 0
        self.reads = 0
        self.read_errors = 0
        self.last_error: str | None = None
        self.requests = 0
        self.last_latency_s: float | None = None
        self.clock_skew_s: float | None = None
        self.clock_skew_exceeded = 0

    def request(self, latency_s: float) -> None:
        self.requests += 1
        self.last_latency_s = latency_s

    def record(self, readings: list[TagReading]) -> None:
        """Count a batch of readings; any good one resets the error streak."""
        bad = [r for r in readings if r.error is not None]
        self.reads += len(readings) - len(bad)
        self.read_errors += len(bad)
        if len(bad) < len(readings):
            self.last_ok = readings[0].ts
        if bad:
            self.last_error = bad[-1].error

    def snapshot(self) -> DriverHealth:
        return DriverHealth(
            connected=self.connected,
            last_ok=self.last_ok,
            consecutive_errors=self.consecutive_errors,
            reads=self.reads,
            read_errors=self.read_errors,
            last_error=self.last_error,
            requests=self.requests,
            last_latency_s=self.last_latency_s,
            clock_skew_s=self.clock_skew_s,
            clock_skew_exceeded=self.clock_skew_exceeded,
        )


def combine(parts: list[DriverHealth]) -> DriverHealth:
    """One device's health from its connections': connected only if all are."""
    oks = [p.last_ok for p in parts if p.last_ok is not None]
    errors = [p.last_error for p in parts if p.last_error is not None]
    latencies = [p.last_latency_s for p in parts if p.last_latency_s is not None]
    return DriverHealth(
        connected=bool(parts) and all(p.connected for p in parts),
        last_ok=max(oks) if oks else None,
        consecutive_errors=max((p.consecutive_errors for p in parts), default=0),
        reads=sum(p.reads for p in parts),
        read_errors=sum(p.read_errors for p in parts),
        last_error=errors[-1] if errors else None,
        requests=sum(p.requests for p in parts),
        last_latency_s=max(latencies) if latencies else None,
        clock_skew_exceeded=sum(p.clock_skew_exceeded for p in parts),
    )


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> bool:
    """Wait `seconds` or until `stop` is set; True when stopped."""
    if seconds <= 0:
        return stop.is_set()
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except TimeoutError:
        return False
    return True


def deliver(
    sink: Callable[[list[TagReading]], None], readings: list[TagReading], device: str
) -> None:
    """Hand readings on; a failing consumer is logged, never allowed to stop acquisition."""
    if not readings:
        return
    try:
        sink(readings)
    except Exception:
        log.exception("reading sink failed", extra={"device": device})
