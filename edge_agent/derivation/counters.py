"""Counter totals: a PLC counter register unwrapped into a running total that only grows.

The PLC's register wraps (a 16-bit counter goes 65535 -> 0) and is sometimes reset (a new
batch, a PLC restart). Seen from two successive reads, a decrease is either:

- a **rollover** when the forward distance `(raw - last) mod 2**width` is under a quarter of
  the register's range (16-bit: 16384 counts, 32-bit: about 1.07e9): the register went past
  its top and on; the total grows by that distance;
- otherwise a **reset**: the register restarted from zero; the total grows by the new raw
  value (what was counted since the reset). Counts between the last read and the reset are
  unknowable and lost; a reset never adds ~2**width.

A 64-bit register never rolls over in practice: every decrease is a reset, and so is every
decrease of a fractional (float) register. Limits, by construction: a 16-bit counter reset in
the top quarter of its range counts as a rollover (too many by at most 16384), and a register
that advanced more than its range between two reads (a long outage of a fast 16-bit counter)
cannot be told from a smaller advance. Signed registers are read modulo 2**width, so an int16
counter running through -32768 unwraps like a uint16 one.

The first read ever sets the total to the raw value (so a 64-bit counter's total is the PLC's);
after that the total is carried in the snapshot, so an agent restart neither recounts nor loses.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from core.wire import CounterRecord
from edge_agent.derivation.derive import number
from edge_agent.derivation.rules import CounterSpec

Raw = int | float


def advance(last: Raw, raw: Raw, width: int) -> Raw:
    """How far the counter moved from `last` to `raw` (never negative), per the module's rules."""
    if isinstance(last, int) and isinstance(raw, int):
        modulus = 1 << width
        last_u, raw_u = last % modulus, raw % modulus
        if raw_u >= last_u:
            return raw_u - last_u
        forward = raw_u - last_u + modulus
        if width < 64 and forward < modulus // 4:
            return forward
        return raw_u
    return raw - last if raw >= last else raw


def _as_raw(value: object) -> Raw | None:
    if isinstance(value, int):  # before number(): a 64-bit count must not pass through float
        return int(value)
    result = number(value)
    if result is None:
        return None
    return int(result) if result.is_integer() else result


@dataclass
class CounterTotal:
    """One counter's running total and what has been published of it.

    With `min_interval_s` 0 every change is published at its read time; otherwise at most one
    record per interval: a change inside the interval waits (`pending`) and leaves with the next
    read or tick after the interval, stamped with the read time that last changed it.
    """

    spec: CounterSpec
    machine: str
    last_raw: Raw | None = None
    total: Raw = 0
    sent_ts: datetime | None = None
    pending_ts: datetime | None = None

    def observe(self, ts: datetime, value: object) -> list[CounterRecord]:
        """Take one read of the register; returns the records to publish (zero or one)."""
        raw = _as_raw(value)
        if raw is None:
            return []
        if isinstance(raw, int):
            raw %= 1 << self.spec.width
        if self.last_raw is None:
            self.total, changed = raw, True
        else:
            step = advance(self.last_raw, raw, self.spec.width)
            self.total, changed = self.total + step, step != 0
        self.last_raw = raw
        if changed:
            self.pending_ts = ts
        return self.flush(ts)

    def flush(self, now: datetime) -> list[CounterRecord]:
        """Publish the pending total when the minimum interval since the last one has passed."""
        if self.pending_ts is None:
            return []
        if self.sent_ts is not None and (
            (now - self.sent_ts).total_seconds() < self.spec.min_interval_s
        ):
            return []
        ts, self.pending_ts, self.sent_ts = self.pending_ts, None, self.pending_ts
        value = self.total * self.spec.scale
        return [CounterRecord(self.machine, self.spec.published_name, ts, float(value))]

    def snapshot(self) -> dict[str, Any]:
        """JSON-serialisable state."""
        return {
            "last_raw": self.last_raw,
            "total": self.total,
            "sent_ts": self.sent_ts.isoformat() if self.sent_ts else None,
            "pending_ts": self.pending_ts.isoformat() if self.pending_ts else None,
        }

    @classmethod
    def restore(cls, spec: CounterSpec, machine: str, data: dict[str, Any]) -> CounterTotal:
        """The inverse of `snapshot`."""
        return cls(
            spec,
            machine,
            last_raw=data["last_raw"],
            total=data["total"],
            sent_ts=_dt(data["sent_ts"]),
            pending_ts=_dt(data["pending_ts"]),
        )


def _dt(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None
