"""State derivation per machine: tag values in, wire records out (docs/wire-format.md).

`MachineTracker` is pure logic: the agent hands it each read (`observe`) and the clock
(`tick`), and publishes what they return. Every timestamp is a read time or a point of the
heartbeat grid, never the time the tracker happened to run.

**States.** A state record on every change, stamped with the read that showed it. The
reason code of the open stop rides along on stop states.

**Heartbeats.** A state record at every multiple of `heartbeat_s` since the Unix epoch
(`heartbeat_s` divides an hour, so every hour boundary has a sample for the centre's hourly
time-in-state buckets), carrying the state in force at that point. While the PLC answers, a
grid point is filled only once a read at or after it has come in, so a heartbeat never claims a
state that a read still in flight could contradict; while `offline`, `tick` fills them up to now.
A grid point that already has a state record (a change at exactly that time) gets no second one.

**Downtime.** Entering a stop state (every state but running and offline) opens an event: a
`DowntimeRecord` with a fresh uuid `event_id`, `ended_at` null. Leaving it sends the same
`event_id` again with `ended_at` and `micro_stop` (duration < `micro_stop_below_s`). A change
from one stop state to another ends the first event and starts the next at the same read time.
The reason is the first one the reason tags give during the stop; if the first reads of a stop
carry no code and a later one does, the open event is sent again with it (same `event_id`), and
the root cause is kept when the code changes again during the same stop.

**Offline.** No good read of the state tags for more than `offline_after_s` makes the machine
`offline`, a data gap and never a stop (docs/wire-format.md):
- an open stop ends at the last good read, the last time the state was known, not when the
  gap was noticed (its `micro_stop` flag follows from that length);
- the `offline` state record says when the data stopped: the first failed read after the last
  good one, or, when no read came back at all (a silent driver, the agent itself down), the last
  good read + `offline_after_s`. Until then the last state holds, as it does between any two
  reads, so the state timeline and the downtime can differ by up to that much at a gap;
- the stop's end is forced by the gap, not by the machine: it is sent `truncated`, and a
  truncated stop is never a micro-stop (its real length is unknown);
- when reads succeed again, the state they show is recorded at that read and opens a new event
  if it is a stop: a stop interrupted by a gap is two events (the gap between is unknown time).
`stop_observing` (the agent shutting down) ends observation the same way, at once.
An unmapped state code can also give `offline` (see `rules`): that is a state change like any
other, stamped with the read that showed it.

**Reads.** A read is good when every state tag has a value and none is in `errors`. `values`
may be partial (a subscription's changes): state and reason tags are remembered between reads,
counters and telemetry use only the values of this read. Reads must come in time order: a read
older than the previous one is ignored. A read not newer than the last state record (a second
notification with the same timestamp, or a read overtaken by a heartbeat `tick` wrote while
offline) updates the remembered values, counters and telemetry but not the state, which
would need a second record under the same key: the next read derives it from the remembered
values. Both are counted in `stale_reads`.

**Persistence.** `snapshot()` is JSON-serialisable and `restore()` continues from it: counter
totals and raw values (no double count, no loss), the open stop's `event_id`, the state and
the heartbeat grid. The gap while the agent was down is judged like any gap: under
`offline_after_s` the machine simply carries on (the same stop keeps its `event_id`), longer
and it went `offline` at last good read + `offline_after_s`. Save the snapshot with the records
it produced (one outbox transaction), so that neither can be kept without the other.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from core.wire import (
    DowntimeCategory,
    DowntimeRecord,
    MachineState,
    Record,
    StateRecord,
)
from edge_agent.derivation.counters import CounterTotal
from edge_agent.derivation.deadband import TelemetryFilter
from edge_agent.derivation.derive import derive_reason, derive_state, expand
from edge_agent.derivation.rules import MachineRules

TagValue = bool | int | float | str | None
SNAPSHOT_VERSION = 1

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


def _us(ts: datetime) -> int:
    return (ts - _EPOCH) // _US


def _from_us(us: int) -> datetime:
    return _EPOCH + timedelta(microseconds=us)


def _iso(ts: datetime | None) -> str | None:
    return ts.isoformat() if ts is not None else None


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _aware(ts: datetime) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"timestamp {ts.isoformat()} has no time zone")
    return ts


@dataclass(frozen=True, slots=True)
class OpenStop:
    """The downtime event in progress."""

    event_id: uuid.UUID
    started_at: datetime
    state: MachineState
    reason: str | None
    category: DowntimeCategory

    def record(
        self,
        machine: str,
        ended_at: datetime | None = None,
        micro_below_s: float = 0.0,
        *,
        truncated: bool = False,
    ) -> DowntimeRecord:
        """The event's record: open, or ended at `ended_at` with its micro-stop and truncated
        flags (a truncated stop's length is unknown, so it is never a micro-stop)."""
        micro = cut = None
        if ended_at is not None:
            cut = truncated
            micro = not cut and (ended_at - self.started_at).total_seconds() < micro_below_s
        return DowntimeRecord(
            event_id=self.event_id,
            machine=machine,
            started_at=self.started_at,
            state=self.state,
            category=self.category,
            ended_at=ended_at,
            reason_code=self.reason,
            micro_stop=micro,
            truncated=cut,
        )


class MachineTracker:
    """One machine's state, downtime, counters and telemetry (see the module docstring)."""

    def __init__(self, code: str, rules: MachineRules) -> None:
        self.code = code
        self.rules = rules
        self.stale_reads = 0
        self._rule = expand(rules.state)
        self._state_tags = frozenset(rules.state_tags())
        self._remembered = self._state_tags | {r.tag for r in rules.reasons.tags}
        self._values: dict[str, object] = {}
        self._step_us = round(rules.heartbeat_s * 1_000_000)
        self._state: MachineState | None = None
        self._stop: OpenStop | None = None
        self._no_data = False
        self._watch_start: datetime | None = None
        self._last_good: datetime | None = None
        self._gap_start: datetime | None = None
        self._last_read: datetime | None = None
        self._last_state_ts: datetime | None = None
        self._hb_next: int | None = None
        self._counters = [CounterTotal(spec, code) for spec in rules.counters]
        self._telemetry = [TelemetryFilter(spec, code) for spec in rules.telemetry]
        self._keep_telemetry()

    def _keep_telemetry(self) -> None:
        """Start keeping the telemetry part of `snapshot()` up to date: the entries of filters
        that published since the last snapshot are made again, the rest are kept (a machine has
        up to hundreds of analog tags; a read moves some of them)."""
        self._telemetry_saved = {t.name: t.snapshot() for t in self._telemetry}
        self._telemetry_sent: dict[str, TelemetryFilter] = {}

    @property
    def state(self) -> MachineState | None:
        """The current state; None before anything is known."""
        return self._state

    @property
    def open_stop(self) -> OpenStop | None:
        """The downtime event in progress, if any."""
        return self._stop

    # ------------------------------------------------------------------------------ inputs

    def observe(
        self, ts: datetime, values: Mapping[str, TagValue], errors: Mapping[str, str]
    ) -> list[Record]:
        """Take one read made at `ts`: tag values, and errors by tag for tags that failed."""
        ts = _aware(ts)
        if self._last_read is not None and ts < self._last_read:
            self.stale_reads += 1
            return []
        self._last_read = ts
        if self._watch_start is None:
            self._watch_start = ts
        out: list[Record] = []
        for tag in errors:
            self._values.pop(tag, None)
        for tag in self._remembered:
            if tag in values and tag not in errors:
                self._values[tag] = values[tag]
        derived = None
        if self._state_tags.isdisjoint(errors):
            derived = derive_state(self._rule, self._values, self._state)
        if derived is None:
            fresh = self._last_good is None or ts > self._last_good  # not the good read's twin
            if self._gap_start is None and not self._no_data and fresh:
                self._gap_start = ts
            self._check_offline(ts, out)
            if self._no_data:
                self._heartbeats(ts, out, inclusive=True)
        else:
            self._check_offline(ts, out)
            if self._last_state_ts is None or ts > self._last_state_ts:
                self._good_read(ts, derived, out)
            elif derived == self._state and not self._no_data:
                self._last_good, self._gap_start = ts, None  # nothing to record: still good
            else:
                self.stale_reads += 1
        for counter in self._counters:
            tag = counter.spec.tag
            if tag in values and tag not in errors:
                out.extend(counter.observe(ts, values[tag]))
        for telemetry in self._telemetry:
            tag = telemetry.spec.tag
            if tag in values and tag not in errors:
                sent = telemetry.observe(ts, values[tag])
                if sent:
                    out += sent
                    self._telemetry_sent[telemetry.name] = telemetry
        return out

    def tick(self, now: datetime) -> list[Record]:
        """Let time pass: offline detection, heartbeats while offline, delayed counter and
        telemetry records whose minimum interval has passed."""
        now = _aware(now)
        if self._watch_start is None:
            self._watch_start = now
        out: list[Record] = []
        self._check_offline(now, out)
        if self._no_data:
            self._heartbeats(now, out, inclusive=True)
        for counter in self._counters:
            out.extend(counter.flush(now))
        for telemetry in self._telemetry:
            sent = telemetry.flush(now)
            if sent:
                out += sent
                self._telemetry_sent[telemetry.name] = telemetry
        return out

    def stop_observing(self, now: datetime) -> list[Record]:
        """The agent stops watching (shutdown): end observation as a data gap would, noticed
        at `now`. The open stop ends, truncated, at the last good read and the machine is
        `offline` from the first failed read since, else from `now` (never before a state or
        heartbeat already recorded). Reads after this start afresh, as after any gap."""
        now = _aware(now)
        out: list[Record] = []
        self._check_offline(now, out)
        if self._no_data or self._state is None:  # already a gap, or nothing ever known
            return out
        at = self._gap_start or now
        if self._last_state_ts is not None and at <= self._last_state_ts:
            at = self._last_state_ts + _US
        self._heartbeats(at, out, inclusive=False)
        self._go_offline(at, out)
        return out

    # --------------------------------------------------------------------------- internals

    def _good_read(self, ts: datetime, state: MachineState, out: list[Record]) -> None:
        self._last_good, self._gap_start, self._no_data = ts, None, False
        reason = derive_reason(self.rules.reasons, state, self._values)
        self._heartbeats(ts, out, inclusive=False)
        if state != self._state:
            if self._stop is not None:
                self._end_stop(ts, out)
            if state.is_stop:
                self._stop = OpenStop(
                    event_id=uuid.uuid4(),
                    started_at=ts,
                    state=state,
                    reason=reason,
                    category=self.rules.reasons.category(state, reason),
                )
                out.append(self._stop.record(self.code))
            self._state = state
            self._emit_state(ts, out)
        elif self._stop is not None and self._stop.reason is None and reason is not None:
            category = self.rules.reasons.category(state, reason)
            self._stop = replace(self._stop, reason=reason, category=category)
            out.append(self._stop.record(self.code))
            self._emit_state(ts, out)
        self._heartbeats(ts, out, inclusive=True)

    def _end_stop(self, ended_at: datetime, out: list[Record], *, truncated: bool = False) -> None:
        assert self._stop is not None
        out.append(
            self._stop.record(
                self.code, ended_at, self.rules.micro_stop_below_s, truncated=truncated
            )
        )
        self._stop = None

    def _check_offline(self, now: datetime, out: list[Record]) -> None:
        if self._no_data:
            return
        since = self._last_good or self._watch_start
        patience = timedelta(seconds=self.rules.offline_after_s)
        if since is None or now - since <= patience:
            return
        at = self._gap_start or since + patience
        self._heartbeats(at, out, inclusive=False)
        self._go_offline(at, out)

    def _go_offline(self, at: datetime, out: list[Record]) -> None:
        """Observation ended (a gap, or the agent stopping): the open stop ends, truncated, at
        the last good read, and the machine is `offline` from `at`."""
        if self._stop is not None:
            assert self._last_good is not None  # a stop is only opened by a good read
            self._end_stop(self._last_good, out, truncated=True)
        self._no_data, self._gap_start = True, None
        if self._state != MachineState.OFFLINE:
            self._state = MachineState.OFFLINE
            self._emit_state(at, out)

    def _emit_state(self, ts: datetime, out: list[Record]) -> None:
        assert self._state is not None
        reason = self._stop.reason if self._stop is not None else None
        out.append(StateRecord(self.code, ts, self._state, reason))
        self._last_state_ts = ts
        us = _us(ts)
        if self._hb_next is None or self._hb_next <= us:
            self._hb_next = (us // self._step_us + 1) * self._step_us

    def _heartbeats(self, until: datetime, out: list[Record], *, inclusive: bool) -> None:
        if self._state is None or self._hb_next is None:
            return
        limit = _us(until) + (1 if inclusive else 0)
        reason = self._stop.reason if self._stop is not None else None
        while self._hb_next < limit:
            ts = _from_us(self._hb_next)
            out.append(StateRecord(self.code, ts, self._state, reason))
            self._last_state_ts = ts
            self._hb_next += self._step_us

    # ------------------------------------------------------------------------- persistence

    def snapshot(self) -> dict[str, Any]:
        """Everything needed to continue after a restart, as JSON-serialisable data."""
        stop = self._stop
        return {
            "v": SNAPSHOT_VERSION,
            "state": self._state.value if self._state is not None else None,
            "no_data": self._no_data,
            "watch_start": _iso(self._watch_start),
            "last_good": _iso(self._last_good),
            "gap_start": _iso(self._gap_start),
            "last_read": _iso(self._last_read),
            "last_state_ts": _iso(self._last_state_ts),
            "hb_next_us": self._hb_next,
            "stop": None
            if stop is None
            else {
                "event_id": str(stop.event_id),
                "started_at": stop.started_at.isoformat(),
                "state": stop.state.value,
                "reason": stop.reason,
                "category": stop.category.value,
            },
            "counters": {c.spec.published_name: c.snapshot() for c in self._counters},
            "telemetry": self._telemetry_snapshot(),
        }

    def _telemetry_snapshot(self) -> dict[str, Any]:
        saved = self._telemetry_saved
        for name, t in self._telemetry_sent.items():
            saved[name] = t.snapshot()
        self._telemetry_sent.clear()
        return dict(saved)

    @classmethod
    def restore(cls, code: str, rules: MachineRules, snapshot: Mapping[str, Any]) -> MachineTracker:
        """A tracker continuing from `snapshot()`; counters and telemetry tags no longer in the
        rules are dropped, new ones start fresh. Raises ValueError on an unknown snapshot."""
        if snapshot.get("v") != SNAPSHOT_VERSION:
            raise ValueError(f"unknown tracker snapshot version {snapshot.get('v')!r}")
        tracker = cls(code, rules)
        state = snapshot["state"]
        tracker._state = MachineState(state) if state is not None else None
        tracker._no_data = bool(snapshot["no_data"])
        tracker._watch_start = _dt(snapshot["watch_start"])
        tracker._last_good = _dt(snapshot["last_good"])
        tracker._gap_start = _dt(snapshot["gap_start"])
        tracker._last_read = _dt(snapshot["last_read"])
        tracker._last_state_ts = _dt(snapshot["last_state_ts"])
        hb_next = snapshot["hb_next_us"]
        if hb_next is not None:  # the grid may have changed with the rules: realign
            step = tracker._step_us
            hb_next = -(-hb_next // step) * step
        tracker._hb_next = hb_next
        stop = snapshot["stop"]
        if stop is not None:
            tracker._stop = OpenStop(
                event_id=uuid.UUID(stop["event_id"]),
                started_at=datetime.fromisoformat(stop["started_at"]),
                state=MachineState(stop["state"]),
                reason=stop["reason"],
                category=DowntimeCategory(stop["category"]),
            )
        counters = snapshot.get("counters", {})
        tracker._counters = [
            CounterTotal.restore(c.spec, code, counters[c.spec.published_name])
            if c.spec.published_name in counters
            else c
            for c in tracker._counters
        ]
        telemetry = snapshot.get("telemetry", {})
        tracker._telemetry = [
            TelemetryFilter.restore(t.spec, code, telemetry[t.spec.published_name])
            if t.spec.published_name in telemetry
            else t
            for t in tracker._telemetry
        ]
        tracker._keep_telemetry()
        return tracker
