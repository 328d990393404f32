"""Counters (rollover, reset, scale, interval, persistence) and telemetry (deadband, intervals)
through MachineTracker, with explicit read times."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.wire import CounterRecord, Record, TelemetryRecord
from edge_agent.derivation.counters import advance
from edge_agent.derivation.rules import MachineRules
from edge_agent.derivation.state import MachineTracker

T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)


def t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def tracker(
    counters: list[dict[str, Any]] = (), telemetry: list[dict[str, Any]] = ()
) -> MachineTracker:
    rules = MachineRules.model_validate({
        "state": {"kind": "code", "tag": "st", "codes": {1: "running"}},
        "offline_after_s": 3600,
        "counters": list(counters),
        "telemetry": list(telemetry),
    })  # fmt: skip
    return MachineTracker("m1", rules)


def feed(tr: MachineTracker, tag: str, reads: list[tuple[float, object] | float]) -> list[Record]:
    """Reads of one tag as (seconds, value); a bare number is a tick."""
    out: list[Record] = []
    for read in reads:
        if isinstance(read, int | float):
            out += tr.tick(t(read))
        else:
            out += tr.observe(t(read[0]), {"st": 1, tag: read[1]}, {})
    return out


def values(records: list[Record], kind: type = CounterRecord) -> list[tuple[float, float]]:
    return [((r.ts - T0).total_seconds(), r.value) for r in records if isinstance(r, kind)]


# ----------------------------------------------------------------------------------- counters


@pytest.mark.parametrize(
    ("last", "raw", "width", "step"),
    [
        (10, 15, 16, 5),
        (65530, 4, 16, 10),  # rollover
        (-3, 2, 16, 5),  # int16 counter through zero, read signed
        (32767, -32768, 16, 1),  # int16 through its top
        (1000, 3, 16, 3),  # reset: far from the top, counts since the reset
        (
            60000,
            10,
            16,
            5546,
        ),  # the heuristic's limit: a reset in the top quarter looks like a wrap
        (2**32 - 100, 50, 32, 150),  # 32-bit rollover
        (3_000_000_000, 7, 32, 7),  # reset of a 32-bit counter: never ~4e9
        (2**64 - 1, 5, 64, 5),  # 64-bit: every decrease is a reset
        (10.5, 12.25, 32, 1.75),  # float register
        (10.5, 0.5, 32, 0.5),  # float decrease: reset
        (7, 7, 16, 0),
    ],
)
def test_advance(last: float, raw: float, width: int, step: float) -> None:
    assert advance(last, raw, width) == step


def test_counter_across_16_bit_rollover_and_reset() -> None:
    tr = tracker([{"tag": "cyc", "kind": "cycles", "width": 16}])
    out = feed(tr, "cyc", [(0, 65000), (1, 65000), (2, 65534), (3, 2), (4, 100), (5, 0), (6, 4)])
    assert values(out) == [(0, 65000), (2, 65534), (3, 65538), (4, 65636), (6, 65640)]
    assert {r.tag for r in out if isinstance(r, CounterRecord)} == {"cycles"}


def test_counter_across_32_bit_rollover_with_scale_and_name() -> None:
    tr = tracker([{"tag": "rt_s", "kind": "runtime", "name": "runtime_h", "scale": 1 / 3600}])
    out = feed(tr, "rt_s", [(0, 2**32 - 1800), (1, 1800), (2, 5400)])
    assert [(s, round(v, 9)) for s, v in values(out)] == [
        (0, round((2**32 - 1800) / 3600, 9)), (1, round((2**32 + 1800) / 3600, 9)),
        (2, round((2**32 + 5400) / 3600, 9)),
    ]  # fmt: skip
    assert {r.tag for r in out if isinstance(r, CounterRecord)} == {"runtime_h"}


def test_counter_min_interval_sends_the_latest_total_with_its_read_time() -> None:
    tr = tracker([{"tag": "p", "kind": "parts", "min_interval_s": 10}])
    out = feed(tr, "p", [(0, 1), (2, 2), (4, 3), (6, 3), 9, 10.5, (11, 3), (12, 4), (30, 5)])
    assert values(out) == [(0, 1), (4, 3), (30, 5)]
    # the change at 12 waited for the interval after 4 (at 14) and was superseded by 30 before
    # a tick or read came: a read after the interval sends its own total.


def test_counter_pending_change_leaves_with_a_tick() -> None:
    tr = tracker([{"tag": "p", "kind": "parts", "min_interval_s": 10}])
    out = feed(tr, "p", [(0, 1), (3, 2), 5, 10])
    assert values(out) == [(0, 1), (3, 2)]


def test_unreadable_counter_values_are_skipped() -> None:
    tr = tracker([{"tag": "c", "kind": "cycles", "width": 16}])
    out = feed(tr, "c", [(0, 5), (1, None), (2, "n/a"), (3, float("nan")), (4, 6)])
    out += tr.observe(t(5), {"st": 1, "c": 9}, {"c": "timeout"})
    assert values(out) == [(0, 5), (4, 6)]


def test_counter_totals_survive_restore_across_a_rollover() -> None:
    tr = tracker([{"tag": "c", "kind": "cycles", "width": 16}])
    out = feed(tr, "c", [(0, 65000), (1, 65500)])
    snap = json.loads(json.dumps(tr.snapshot()))
    again = MachineTracker.restore("m1", tr.rules, snap)
    out2 = feed(again, "c", [(2, 65500), (3, 100)])  # unchanged, then wrapped while we restarted
    assert values(out) + values(out2) == [(0, 65000), (1, 65500), (3, 65636)]
    # the same snapshot restored twice (a crash before the next save) recounts nothing
    twice = MachineTracker.restore("m1", tr.rules, snap)
    assert values(feed(twice, "c", [(3, 100)])) == [(3, 65636)]


# ---------------------------------------------------------------------------------- telemetry


@pytest.mark.parametrize(
    ("spec", "reads", "expected"),
    [
        ({}, [(0, 1.0), (1, 1.0), (2, 1.5), (3, True)], [(0, 1.0), (2, 1.5), (3, 1.0)]),
        (
            {"deadband_abs": 0.5},
            [(0, 10.0), (1, 10.4), (2, 10.5), (3, 10.6), (4, 10.2), (5, 9.0)],
            [(0, 10.0), (3, 10.6), (5, 9.0)],
        ),
        (
            {"deadband_pct": 10},
            [(0, 100.0), (1, 109.0), (2, 111.0), (3, 101.0), (4, 99.0)],
            [(0, 100.0), (2, 111.0), (4, 99.0)],
        ),
        (  # both: must exceed each; near zero the absolute one holds
            {"deadband_abs": 1.0, "deadband_pct": 10},
            [(0, 0.0), (1, 0.8), (2, 1.5), (3, 1.6), (4, 50.0), (5, 54.0), (6, 56.0)],
            [(0, 0.0), (2, 1.5), (4, 50.0), (6, 56.0)],
        ),
        (
            {"min_interval_s": 5},
            [(0, 1.0), (1, 2.0), (2, 3.0), (6, 3.0), (7, 4.0), (8, 5.0)],
            [(0, 1.0), (6, 3.0)],  # 3.0 waited, then a read after the interval sent itself
        ),
        (  # a move back inside the deadband cancels the pending one
            {"min_interval_s": 5, "deadband_abs": 0.5},
            [(0, 1.0), (1, 2.0), (2, 1.2), 6],
            [(0, 1.0)],
        ),
        (
            {"min_interval_s": 5},
            [(0, 1.0), (1, 2.0), 3, 5, 6],
            [(0, 1.0), (1, 2.0)],
        ),  # tick sends it
        (
            {"deadband_abs": 5, "max_interval_s": 10},
            [(0, 1.0), (4, 2.0), (9, 1.0), (10, 1.5), (15, 1.0), (21, 1.0)],
            [(0, 1.0), (10, 1.5), (21, 1.0)],
        ),
        ({}, [(0, "open"), (1, None), (2, float("inf")), (3, 7)], [(3, 7.0)]),
    ],
    ids=[
        "every-change",
        "deadband-abs",
        "deadband-pct",
        "deadband-abs-and-pct",
        "min-interval",
        "move-back-cancels-pending",
        "tick-sends-pending",
        "max-interval-resends",
        "non-numbers-skipped",
    ],
)
def test_telemetry(
    spec: dict[str, Any], reads: list[Any], expected: list[tuple[float, float]]
) -> None:
    tr = tracker(telemetry=[{"tag": "temp", **spec}])
    assert values(feed(tr, "temp", reads), TelemetryRecord) == expected


def test_telemetry_name_and_restore() -> None:
    tr = tracker(telemetry=[{"tag": "ai3", "name": "motor_temp", "deadband_abs": 1}])
    out = feed(tr, "ai3", [(0, 20.0)])
    again = MachineTracker.restore("m1", tr.rules, json.loads(json.dumps(tr.snapshot())))
    out += feed(again, "ai3", [(1, 20.5), (2, 21.5)])
    assert [(r.tag, r.value) for r in out if isinstance(r, TelemetryRecord)] == [
        ("motor_temp", 20.0), ("motor_temp", 21.5),
    ]  # fmt: skip
