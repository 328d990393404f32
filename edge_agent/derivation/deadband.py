"""Telemetry filtering at the edge: deadband, minimum interval and refresh interval per tag."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from core.wire import TelemetryRecord
from edge_agent.derivation.derive import number
from edge_agent.derivation.rules import TelemetrySpec


@dataclass
class TelemetryFilter:
    """Decides which reads of one analog tag are published.

    A read is published when it is the first, when it moved past the deadband from the last
    published value and `min_interval_s` has passed since that one, or when `max_interval_s` has
    passed (a refresh, moved or not). A move that comes too soon is kept as `pending` (the latest
    such read) and leaves with the next read or tick after the interval, with its own read time;
    a later read back inside the deadband cancels it. Non-numeric values are not telemetry and
    are skipped.
    """

    spec: TelemetrySpec
    machine: str
    sent_value: float | None = None
    sent_ts: datetime | None = None
    pending: tuple[datetime, float] | None = None
    # The snapshot of the last published value, made once per publish rather than once per
    # tracker snapshot (every second, for every analog tag of every machine).
    _saved: dict[str, Any] | None = field(default=None, repr=False, compare=False)
    # The name on the wire (spec.published_name), looked up once rather than at every publish.
    name: str = field(default="", init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.name = self.spec.published_name

    def moved(self, value: float) -> bool:
        """Whether `value` is past every deadband from the last published value."""
        if self.sent_value is None:
            return True
        diff = abs(value - self.sent_value)
        spec = self.spec
        if diff <= spec.deadband_abs:
            return False
        return not (spec.deadband_pct and diff <= abs(self.sent_value) * spec.deadband_pct / 100)

    def observe(self, ts: datetime, raw: object) -> list[TelemetryRecord]:
        """Take one read; returns the records to publish (zero or one)."""
        value = number(raw)
        if value is None:
            return []
        if self.sent_ts is None:
            return self._send(ts, value)
        elapsed = (ts - self.sent_ts).total_seconds()
        if self.spec.max_interval_s is not None and elapsed >= self.spec.max_interval_s:
            return self._send(ts, value)
        if not self.moved(value):
            self.pending = None
            return []
        if elapsed >= self.spec.min_interval_s:
            return self._send(ts, value)
        self.pending = (ts, value)
        return []

    def flush(self, now: datetime) -> list[TelemetryRecord]:
        """Publish a pending move once the minimum interval has passed."""
        if self.pending is None or self.sent_ts is None:
            return []
        if (now - self.sent_ts).total_seconds() < self.spec.min_interval_s:
            return []
        return self._send(*self.pending)

    def _send(self, ts: datetime, value: float) -> list[TelemetryRecord]:
        self.sent_value, self.sent_ts, self.pending, self._saved = value, ts, None, None
        return [TelemetryRecord(self.machine, self.name, ts, value)]

    def snapshot(self) -> dict[str, Any]:
        """JSON-serialisable state (a pending move is dropped: the next read supersedes it)."""
        if self._saved is None:
            self._saved = {
                "sent_value": self.sent_value,
                "sent_ts": _iso(self.sent_ts) if self.sent_ts else None,
            }
        return self._saved

    @classmethod
    def restore(cls, spec: TelemetrySpec, machine: str, data: dict[str, Any]) -> TelemetryFilter:
        """The inverse of `snapshot`."""
        sent_ts = data.get("sent_ts")
        return cls(
            spec,
            machine,
            sent_value=data.get("sent_value"),
            sent_ts=datetime.fromisoformat(sent_ts) if sent_ts else None,
        )


class _LastIso:
    """`datetime.isoformat` remembering its last argument: the tags of one read are published
    with one time object, so a tracker's snapshot formats it once, not once per tag."""

    def __init__(self) -> None:
        self._last: tuple[datetime | None, str] = (None, "")

    def __call__(self, ts: datetime) -> str:
        last, text = self._last
        if ts is not last:
            text = ts.isoformat()
            self._last = (ts, text)
        return text


_iso = _LastIso()
