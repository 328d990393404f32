"""The ground-truth log: what the simulated PLCs really showed, one JSON object per line.

Record types (`"type"`), all with `ts` (UTC, RFC 3339, the wall-clock time at which the
servers started showing it) and, except `start`/`stop`/`servers`, `sim_t` (machine time in
seconds since the start, the same for the same seed and options whatever the wall clock did):

- `start`: a run began: seed, speed, tick, machines, ports. A restarted simulator appends a
  new run to the same file.
- `state`: `machine` entered `state` (canonical), showing `packml` on the state register and
  `reason` on the reason register (`reason_code`: what the shipped tag map publishes for it,
  layout.reason_code); `category` planned/unplanned (null for running); `micro`
  true for a stop meant to be a micro-stop.
- `cycle`: `machine` completed a cycle; `counter` is the raw 16-bit register value, `total`
  the true number of cycles since the start, `parts` the parts counter.
- `temperature`: `machine`'s temperature `value` (degrees C) moved by at least
  TEMPERATURE_STEP from the last one logged (the shipped tag map's deadband): the ground truth
  of condition rules on the temperature (mes demo).
- `servers`: the protocol servers went down (`up` false) or came back; the model kept running.
- `stop`: the run ended cleanly.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from mes.sim.layout import machine_code, reason_code
from mes.sim.model import Cycle, Event, Snapshot

TEMPERATURE_STEP = 0.1


def _event_record(event: Event, ts: str, sim_t: float) -> dict[str, Any]:
    if isinstance(event, Cycle):
        return {
            "type": "cycle",
            "machine": machine_code(event.machine),
            "ts": ts,
            "sim_t": round(sim_t, 6),
            "counter": event.counter,
            "total": event.total,
            "parts": event.parts,
        }
    return {
        "type": "state",
        "machine": machine_code(event.machine),
        "ts": ts,
        "sim_t": round(sim_t, 6),
        "state": event.state.value,
        "packml": event.packml,
        "reason": event.reason,
        "reason_code": reason_code(event.reason),
        "category": event.category.value if event.category else None,
        "micro": event.micro,
    }


class TruthWriter:
    """Appends truth records to a JSON-lines file, one write and flush per model tick."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file: IO[str] | None = path.open("a", encoding="utf-8")
        self._temperatures: dict[int, float] = {}

    def events(self, events: Iterable[Event], ts: datetime, sim_t: float,
               snapshots: Iterable[Snapshot] = ()) -> None:
        """One tick: its events, and each machine's temperature that moved enough."""
        stamp = ts.isoformat(timespec="microseconds")
        records = [_event_record(e, stamp, sim_t) for e in events]
        for index, snap in enumerate(snapshots):
            last = self._temperatures.get(index)
            if last is None or abs(snap.temperature - last) >= TEMPERATURE_STEP:
                self._temperatures[index] = snap.temperature
                records.append({"type": "temperature", "machine": machine_code(index),
                                "ts": stamp, "sim_t": round(sim_t, 6),
                                "value": round(snap.temperature, 3)})
        self._write(records)

    def mark(self, kind: str, ts: datetime, **fields: Any) -> None:
        """A `start`, `servers` or `stop` record."""
        self._write([{"type": kind, "ts": ts.isoformat(timespec="microseconds"), **fields}])

    def _write(self, records: Iterable[dict[str, Any]]) -> None:
        if self._file is None:
            raise RuntimeError("truth log is closed")
        lines = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records)
        if lines:
            self._file.write(lines)
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Truth:
    """A truth log read back, for tests comparing an agent's output with what happened."""

    def __init__(self, records: list[dict[str, Any]]) -> None:
        self.records = records

    @classmethod
    def load(cls, path: Path) -> Truth:
        """Read every complete line (a line being written right now is left out)."""
        text = path.read_text(encoding="utf-8")
        lines = text.splitlines()
        if lines and not text.endswith("\n"):
            lines.pop()
        return cls([json.loads(line) for line in lines if line])

    def of(self, kind: str, machine: str | None = None) -> list[dict[str, Any]]:
        """Records of one type, optionally for one machine, in log order."""
        return [
            r for r in self.records
            if r["type"] == kind and (machine is None or r.get("machine") == machine)
        ]

    def states(self, machine: str | None = None) -> list[dict[str, Any]]:
        return self.of("state", machine)

    def cycles(self, machine: str | None = None) -> list[dict[str, Any]]:
        return self.of("cycle", machine)

    def machines(self) -> list[str]:
        """Machine codes of the last run."""
        starts = self.of("start")
        return list(starts[-1]["machines"]) if starts else []

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.records)
