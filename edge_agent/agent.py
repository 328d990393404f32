"""The edge agent at run time: drivers -> machine trackers -> outbox -> publisher, one process.

    agent = EdgeAgent(load_agent_config("line.yaml"))
    await agent.run(stop)          # until `stop` is set; `mes edge run` sets it on SIGTERM/SIGINT

Data flows one way. One asyncio loop runs one task per device (its driver's `run`), a tick
task, and nothing else; the publisher has its own thread (it owns paho's loop) and the outbox a
commit thread. A driver hands each batch of readings to `_on_readings`, which splits it by
machine into reads (one read: the readings of one poll or one publish response; a tag seen
twice starts the next read), feeds them to that machine's `MachineTracker` and hands the records
to the outbox. The tick task lets time pass for every tracker (offline detection, heartbeats
while offline, delayed counter and telemetry records).

**Persistence.** A tracker's snapshot goes to the outbox's state table in the same `add_many`
call as the records it produced (one group commit holds both, so after a crash, even SIGKILL,
neither is kept without the other), and besides every `snapshot_interval_s` while its machine
is read, so that a restart judges the gap from a recent last good read. At start every tracker
continues from its snapshot (`MachineTracker.restore`).

**Quiet subscriptions.** A data-change subscription (OPC UA) sends nothing while values do not
change, and silence must not read as a dead PLC. For a machine whose state tags its driver
`watches` (all monitored by a live subscription), the tick confirms the remembered values (an
empty read at the tick's time) once no notification came for half of `offline_after_s`.
Readings must reach a tracker in time order, so a reading stamped before such a confirmation (a
notification in flight while the tick ran) is moved to just after it: a shift of at most a few
milliseconds.

**Overload.** When the process cannot keep the configured poll rate, the tick slows every
polling driver by one shared factor (`pacing`), so the publisher's and the status endpoint's
threads are never starved; the factor is a metric and a warning says by how much.

**Failure.** Drivers reconnect by themselves and report unreadable tags as errors (the tracker
makes the machine `offline`); the publisher reconnects by itself and the outbox holds the data
meanwhile: the agent starts and runs with every PLC and the broker unreachable. A driver that
fails unexpectedly is logged and started again. `run` returns within `shutdown_timeout_s` of
`stop`: drivers are stopped, observation ends like a data gap (each machine's open stop ends,
truncated, at its last good read and the machine goes `offline`: `MachineTracker.stop_observing`),
snapshots are saved, the retained `offline` status published and messages in flight given a
moment for their PUBACK; what is not acknowledged stays in the outbox for the next start. A
restart after a crash ends the stops its snapshots hold open at once, the same way, when the
agent was down longer than `offline_after_s` (a shorter gap is no gap: the stop carries on).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import metadata
from typing import Any

from prometheus_client import CollectorRegistry

from core.wire import Kind, MachineState, Record
from edge_agent.delivery.outbox import KIND_OF, Outbox
from edge_agent.delivery.publisher import Publisher
from edge_agent.derivation.state import MachineTracker
from edge_agent.drivers.base import Driver, TagReading, Value
from edge_agent.drivers.registry import make_driver
from edge_agent.drivers.runtime import Pace, now, sleep_or_stop
from edge_agent.metrics import AgentCollector
from edge_agent.pacing import PaceController
from edge_agent.tagmap import AgentConfig, MachineConfig

log = logging.getLogger(__name__)

_NUDGE = timedelta(microseconds=1)
_DRIVER_RESTART_S = 5.0


def agent_version() -> str:
    """The installed package's version (sent in the birth message)."""
    try:
        return metadata.version("plantfloor-mes")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def snapshot_key(machine: str) -> str:
    """The outbox state key of a machine's tracker snapshot."""
    return f"tracker/{machine}"


@dataclass(slots=True)
class _Machine:
    """A tracker and what the agent knows about feeding it."""

    config: MachineConfig
    tracker: MachineTracker
    driver: Driver | None  # None when its device has no tags to read
    state_tags: frozenset[str]
    last_ts: datetime | None = None  # the last read time handed to the tracker
    saved_at: float = field(default=0.0)  # time.monotonic() of the last snapshot saved
    dirty: bool = False  # read since that snapshot

    def observe(
        self, ts: datetime, values: Mapping[str, Value], errors: Mapping[str, str]
    ) -> list[Record]:
        if self.last_ts is not None and ts <= self.last_ts:
            ts = self.last_ts + _NUDGE  # behind a tick's confirmation (module docstring)
        self.last_ts = ts
        self.dirty = True
        return self.tracker.observe(ts, values, errors)


def _reads(
    readings: list[TagReading],
) -> Iterator[tuple[datetime, dict[str, Value], dict[str, str]]]:
    """One machine's readings of one batch as reads, in order: a tag seen again starts the next
    read. A read is stamped with its LATEST reading: a poll of several requests is one read
    (its state tags judged together), and a value must never carry a time before the PLC could
    have shown it, so the read takes the reply time of its last request."""
    values: dict[str, Value] = {}
    errors: dict[str, str] = {}
    ts: datetime | None = None
    for r in readings:
        if r.tag in values or r.tag in errors:
            assert ts is not None
            yield ts, values, errors
            values, errors, ts = {}, {}, None
        if r.error is None:
            values[r.tag] = r.value
        else:
            errors[r.tag] = r.error
        if ts is None or r.ts > ts:
            ts = r.ts
    if ts is not None:
        yield ts, values, errors


class EdgeAgent:
    """One gateway's agent: see the module docstring. Single use: build, `run`, done."""

    def __init__(
        self,
        config: AgentConfig,
        *,
        tick_s: float = 0.2,
        snapshot_interval_s: float = 1.0,
        shutdown_timeout_s: float = 10.0,
        version: str | None = None,
    ) -> None:
        self.config = config
        self.tick_s = tick_s
        self.snapshot_interval_s = snapshot_interval_s
        self.shutdown_timeout_s = shutdown_timeout_s
        gw = config.gateway
        self.drivers: dict[str, Driver] = {
            d.name: make_driver(d, tags)
            for d in config.devices
            if (tags := config.bound_tags(d.name))
        }
        self.pace = Pace()  # shared: every device slows evenly under overload (pacing)
        for driver in self.drivers.values():
            driver.pace = self.pace
        self._pacing: PaceController | None = None
        self.outbox = Outbox.open(
            config.outbox,
            gw.gateway,
            form=config.broker.wire_form,
            piece_records=config.broker.max_records_per_message,
        )
        try:
            self.machines = {m.code: self._machine(m) for m in config.machines}
            self.publisher = Publisher(
                self.outbox,
                config.broker,
                org=gw.org,
                plant=gw.plant,
                gateway=gw.gateway,
                agent_version=version or agent_version(),
                config_hash=config.config_hash(),
            )
        except BaseException:
            self.outbox.close()
            raise
        self.values_in = 0
        self.records_out: Counter[Kind] = Counter()
        self.driver_restarts = 0
        self._last_tick = time.monotonic()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._running = threading.Event()
        self.registry = CollectorRegistry()
        self.registry.register(AgentCollector(self))

    def _machine(self, m: MachineConfig) -> _Machine:
        snapshot = self.outbox.get_state(snapshot_key(m.code))
        tracker = MachineTracker(m.code, m.rules)
        if snapshot is not None:
            try:
                tracker = MachineTracker.restore(m.code, m.rules, snapshot)
            except (ValueError, KeyError, TypeError) as e:
                log.warning(
                    "cannot continue from the saved tracker state; starting afresh",
                    extra={"machine": m.code, "error": str(e)},
                )
        return _Machine(m, tracker, self.drivers.get(m.device), frozenset(m.rules.state_tags()))

    # ------------------------------------------------------------------------------ lifetime

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Acquire, derive and publish until `stop` is set (or `request_stop()`), then shut down
        cleanly; closes the outbox on the way out."""
        self._loop = asyncio.get_running_loop()
        self._stop = stop = stop or asyncio.Event()
        tasks: list[asyncio.Task[None]] = []
        try:
            self.publisher.start()
            self._pacing = PaceController(self.pace)
            self._tick()  # stops left open by a crash longer ago than offline_after_s end now
            tasks = [
                asyncio.create_task(self._supervise(d, stop), name=f"driver:{name}")
                for name, d in self.drivers.items()
            ]
            tasks.append(asyncio.create_task(self._ticker(stop), name="tick"))
            log.info(
                "edge agent running",
                extra={
                    "gateway": self.config.gateway.gateway,
                    "devices": len(self.drivers),
                    "machines": len(self.machines),
                    "tags": sum(len(m.config.tags) for m in self.machines.values()),
                    "next_seq": self.outbox.next_seq,
                },
            )
            self._running.set()
            await stop.wait()
        finally:
            self._running.clear()
            stop.set()
            await self._shutdown(tasks)

    def request_stop(self) -> None:
        """Ask `run` to return; safe from any thread (and before `run` started: a no-op)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    @property
    def running(self) -> bool:
        """True between start-up and the beginning of the shutdown."""
        return self._running.is_set()

    async def _shutdown(self, tasks: list[asyncio.Task[None]]) -> None:
        started = time.monotonic()
        budget = self.shutdown_timeout_s
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=budget / 2)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        try:
            self._stop_observing()
            self._save(self.machines.values(), force=True)
            drain = max(0.5, budget - (time.monotonic() - started) - 0.5)
            await asyncio.to_thread(self.publisher.stop, drain)
        finally:
            self.outbox.close()
        log.info(
            "edge agent stopped",
            extra={
                "seconds": round(time.monotonic() - started, 2),
                "next_seq": self.outbox.next_seq,
            },
        )

    def _stop_observing(self) -> None:
        """Observation ends here: open stops end (truncated) at their last good read and every
        machine goes `offline`, handed to the outbox with the snapshots saying so."""
        t = now()
        records: list[Record] = []
        produced: list[_Machine] = []
        for machine in self.machines.values():
            out = machine.tracker.stop_observing(t)
            if out:
                records += out
                produced.append(machine)
        self._hand_over(records, produced)

    async def _supervise(self, driver: Driver, stop: asyncio.Event) -> None:
        """Run a driver; one that fails (it should not) is logged and run again."""
        while not stop.is_set():
            try:
                await driver.run(self._on_readings, stop)
            except Exception:
                self.driver_restarts += 1
                log.exception("driver failed; restarting it", extra={"device": driver.name})
                await driver.close()
                await sleep_or_stop(stop, _DRIVER_RESTART_S)

    # ------------------------------------------------------------------------------ the flow

    def _on_readings(self, readings: list[TagReading]) -> None:
        """The drivers' sink: readings -> trackers -> records (and snapshots) -> outbox."""
        self.values_in += len(readings)
        by_machine: dict[str, list[TagReading]] = {}
        for r in readings:
            rows = by_machine.get(r.machine)
            if rows is None:
                by_machine[r.machine] = rows = []
            rows.append(r)
        records: list[Record] = []
        produced: list[_Machine] = []
        for code, rows in by_machine.items():
            machine = self.machines.get(code)
            if machine is None:
                continue
            out: list[Record] = []
            for ts, values, errors in _reads(rows):
                out += machine.observe(ts, values, errors)
            if out:
                records += out
                produced.append(machine)
        self._hand_over(records, produced)

    async def _ticker(self, stop: asyncio.Event) -> None:
        while not await sleep_or_stop(stop, self.tick_s):
            try:
                self._tick()
            except Exception:  # a bug here must not stop offline detection for good
                log.exception("agent tick failed")

    def _tick(self) -> None:
        self._last_tick = time.monotonic()
        if self._pacing is not None:
            self._pacing.update()
        t = now()
        records: list[Record] = []
        produced: list[_Machine] = []
        stale: list[_Machine] = []
        for machine in self.machines.values():
            out: list[Record] = []
            if self._quiet(machine, t):
                out += machine.observe(t, {}, {})
            out += machine.tracker.tick(t)
            if out:
                records += out
                produced.append(machine)
            elif machine.dirty and self._last_tick - machine.saved_at >= self.snapshot_interval_s:
                stale.append(machine)
        self._hand_over(records, produced, stale)

    def _quiet(self, machine: _Machine, t: datetime) -> bool:
        """A machine on a live subscription that has sent nothing for a while (docstring)."""
        if machine.last_ts is None or machine.driver is None:
            return False
        quiet = timedelta(seconds=machine.config.rules.offline_after_s / 2)
        return t - machine.last_ts >= quiet and machine.driver.watches(
            machine.config.code, machine.state_tags
        )

    def _hand_over(
        self, records: list[Record], produced: list[_Machine], stale: Iterable[_Machine] = ()
    ) -> None:
        state = self._snapshots([*produced, *stale])
        if not records and not state:
            return
        for r in records:
            self.records_out[KIND_OF[type(r)]] += 1
        self.outbox.add_many(records, state=state)

    def _save(self, machines: Iterable[_Machine], *, force: bool = False) -> None:
        state = self._snapshots([m for m in machines if force or m.dirty])
        if state:
            self.outbox.add_many((), state=state)

    def _snapshots(self, machines: list[_Machine]) -> dict[str, Any]:
        at = time.monotonic()
        out: dict[str, Any] = {}
        for m in machines:
            out[snapshot_key(m.config.code)] = m.tracker.snapshot()
            m.saved_at, m.dirty = at, False
        return out

    # ------------------------------------------------------------------------------- status

    def machine_states(self) -> dict[str, MachineState | None]:
        """Each machine's current state (None before its first good read)."""
        return {code: m.tracker.state for code, m in self.machines.items()}

    def health(self) -> tuple[bool, dict[str, Any]]:
        """For /health: healthy while the agent runs and its loop ticks; PLCs and
        the broker being unreachable is reported in the details, not as unhealthy (the agent
        is doing its job: holding data until they are back)."""
        ticking = time.monotonic() - self._last_tick < max(5.0, 10 * self.tick_s)
        publisher = self.publisher.stats()
        depth = self.outbox.depth()
        healthy = self.running and ticking
        return healthy, {
            "running": self.running,
            "ticking": ticking,
            "broker": publisher.state.value,
            "poll_slowdown": round(self.pace.factor, 2),
            "devices": {
                name: {
                    "connected": h.connected,
                    "last_ok": h.last_ok,
                    "consecutive_errors": h.consecutive_errors,
                    "last_error": h.last_error,
                }
                for name, d in self.drivers.items()
                for h in (d.health(),)
            },
            "machines": {code: s.value if s else None for code, s in self.machine_states().items()},
            "outbox": {
                "records": depth.records,
                "messages": depth.messages,
                "bytes": depth.bytes,
                "oldest_age_s": depth.oldest_age_s,
                "next_seq": self.outbox.next_seq,
            },
        }
