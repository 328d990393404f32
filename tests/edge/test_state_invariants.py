"""Seeded random runs of MachineTracker against the invariants the centre relies on, and the
same runs through a snapshot/restore at every step (a restart between any two calls)."""

from __future__ import annotations

import itertools
import json
import random
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.wire import CounterRecord, DowntimeRecord, MachineState, Record, StateRecord
from edge_agent.derivation.rules import MachineRules
from edge_agent.derivation.state import MachineTracker

T0 = datetime(2024, 5, 1, 7, 59, 30, tzinfo=UTC)
RULES = MachineRules.model_validate(
    {
        "state": {
            "kind": "code",
            "tag": "st",
            "codes": {1: "running", 2: "idle", 3: "fault", 4: "setup", 5: "starved", 6: "blocked"},
        },
        "reasons": {"tags": [{"tag": "fc", "codes": {12: "jam"}}]},
        "micro_stop_below_s": 20,
        "heartbeat_s": 30,
        "offline_after_s": 12,
        "counters": [{"tag": "c", "kind": "cycles", "width": 16}],
    }
)

Call = tuple[str, datetime, dict[str, Any], dict[str, str]]


def script(seed: int, steps: int = 400) -> list[Call]:
    """Reads 0.5-4 s apart (sometimes failing, sometimes pausing), ticks in between."""
    rnd = random.Random(seed)
    now, state, count, calls = T0, 1, 65000, []
    for _ in range(steps):
        now += timedelta(seconds=rnd.choice([0.5, 1, 1, 2, 4, 15]) if rnd.random() < 0.1 else 1)
        if rnd.random() < 0.15:
            state = rnd.choice([1, 1, 1, 2, 3, 4, 5, 6, 99])
        if state == 1:
            count += rnd.randint(0, 300)
        if rnd.random() < 0.08:
            calls.append(("read", now, {}, {"st": "timeout", "fc": "timeout", "c": "timeout"}))
        else:
            fc = rnd.choice([0, 12, 77]) if state != 1 else 0
            calls.append(("read", now, {"st": state, "fc": fc, "c": count}, {}))
        if rnd.random() < 0.5:
            calls.append(("tick", now + timedelta(milliseconds=300), {}, {}))
    return calls


def play(calls: list[Call], restart_every_step: bool) -> list[Record]:
    tracker, out = MachineTracker("m1", RULES), []
    for kind, ts, values, errors in calls:
        out += tracker.observe(ts, values, errors) if kind == "read" else tracker.tick(ts)
        if restart_every_step:
            snap = json.loads(json.dumps(tracker.snapshot()))
            tracker = MachineTracker.restore("m1", RULES, snap)
    return out


def check_invariants(records: list[Record]) -> None:
    state_ts = [r.ts for r in records if isinstance(r, StateRecord)]
    assert state_ts == sorted(set(state_ts)), "state records out of order or sharing a key"
    events: dict[uuid.UUID, list[DowntimeRecord]] = {}
    for r in records:
        if isinstance(r, DowntimeRecord):
            events.setdefault(r.event_id, []).append(r)
    spans = []
    for recs in events.values():
        assert recs[0].ended_at is None, "an event must be announced before it ends"
        ends = [r for r in recs if r.ended_at is not None]
        assert len(ends) <= 1 and all(r.started_at == recs[0].started_at for r in recs)
        end = ends[0].ended_at if ends else None
        if ends:
            short = (end - recs[0].started_at).total_seconds() < RULES.micro_stop_below_s
            assert ends[0].truncated is not None, "an ended event says whether it was cut"
            assert ends[0].micro_stop is (short and not ends[0].truncated)
        spans.append((recs[0].started_at, end))
    spans.sort(key=lambda s: s[0])
    for (_, end), (next_start, _) in itertools.pairwise(spans):
        assert end is not None and end <= next_start, "downtime events overlap"
    offline = [r.ts for r in records if isinstance(r, StateRecord) and r.state == "offline"]
    for ts in offline:
        assert not any(s <= ts and (e is None or ts < e) for s, e in spans), "downtime over a gap"
    grid = RULES.heartbeat_s
    previous: StateRecord | None = None
    for r in records:
        if isinstance(r, StateRecord):
            on_grid = r.ts.timestamp() % grid == 0
            same = previous is not None and (previous.state, previous.reason_code) == (
                r.state,
                r.reason_code,
            )
            assert on_grid or not same, f"a repeated state off the heartbeat grid at {r.ts}"
            previous = r
    totals = [r.value for r in records if isinstance(r, CounterRecord)]
    assert totals == sorted(totals), "counter total went down"


def normalised(records: list[Record]) -> list[Any]:
    ids: dict[uuid.UUID, int] = {}
    out = []
    for r in records:
        if isinstance(r, DowntimeRecord):
            r = (ids.setdefault(r.event_id, len(ids)), r.started_at, r.ended_at, r.reason_code)
        out.append(r)
    return out


@pytest.mark.parametrize("seed", range(8))
def test_random_runs_keep_the_invariants_and_survive_restarts(seed: int) -> None:
    calls = script(seed)
    plain = play(calls, restart_every_step=False)
    check_invariants(plain)
    assert any(isinstance(r, StateRecord) and r.state == MachineState.OFFLINE for r in plain)
    assert any(isinstance(r, DowntimeRecord) and r.micro_stop for r in plain)
    assert normalised(play(calls, restart_every_step=True)) == normalised(plain)
