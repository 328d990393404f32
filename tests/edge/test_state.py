"""MachineTracker: state changes, downtime events, offline gaps, heartbeats and persistence.

Every test drives the tracker with explicit read times; nothing sleeps.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.wire import (
    ENVELOPES,
    DowntimeCategory,
    DowntimeRecord,
    Kind,
    MachineState,
    Record,
    StateRecord,
    decode,
    encode,
)
from edge_agent.derivation.rules import MachineRules
from edge_agent.derivation.state import MachineTracker

S = MachineState
T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)
BAD = {"st": "timeout"}


def t(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def make_rules(**more: Any) -> MachineRules:
    data: dict[str, Any] = {
        "state": {
            "kind": "code",
            "tag": "st",
            "codes": {1: "running", 2: "idle", 3: "fault", 4: "setup", 5: "starved"},
        },
        "reasons": {"tags": [{"tag": "fc", "codes": {12: "jam", 13: "changeover"}}],
                    "reason_categories": {"changeover": "planned"}},
        "micro_stop_below_s": 60,
        "heartbeat_s": 3600,  # out of the way unless a test is about heartbeats
        "offline_after_s": 1000,  # long enough for reads minutes apart, unless a test shortens it
    }  # fmt: skip
    return MachineRules.model_validate({**data, **more})


Step = tuple[float, dict[str, Any]] | tuple[float, dict[str, Any], dict[str, str]] | float


def run(tracker: MachineTracker, steps: Sequence[Step]) -> list[Record]:
    """Reads are (seconds, values[, errors]); a bare number is a tick at that time."""
    out: list[Record] = []
    for step in steps:
        if isinstance(step, int | float):
            out += tracker.tick(t(step))
        else:
            errors = step[2] if len(step) == 3 else {}
            out += tracker.observe(t(step[0]), step[1], errors)
    assert_wire_valid(out)
    return out


def assert_wire_valid(records: Sequence[Record]) -> None:
    """Records must survive the wire contract's encode/decode with its validation."""
    by_kind: dict[Kind, list[Record]] = {}
    kinds = {"StateRecord": Kind.STATE, "DowntimeRecord": Kind.DOWNTIME,
             "CounterRecord": Kind.COUNTER, "TelemetryRecord": Kind.TELEMETRY}  # fmt: skip
    for r in records:
        by_kind.setdefault(kinds[type(r).__name__], []).append(r)
    for kind, recs in by_kind.items():
        env = ENVELOPES[kind](v=1, gateway="gw-1", seq=1, sent_at=T0, records=recs)
        assert decode(kind, encode(env)).records == recs


def states(records: Sequence[Record]) -> list[tuple[float, str, str | None]]:
    return [
        ((r.ts - T0).total_seconds(), r.state.value, r.reason_code)
        for r in records
        if isinstance(r, StateRecord)
    ]


def downtime(records: Sequence[Record]) -> list[DowntimeRecord]:
    return [r for r in records if isinstance(r, DowntimeRecord)]


def secs(ts: datetime | None) -> float | None:
    return None if ts is None else (ts - T0).total_seconds()


# ------------------------------------------------------------------------------------ states


def test_state_record_on_each_change_at_read_time() -> None:
    out = run(MachineTracker("m1", make_rules()), [
        (0, {"st": 1}), (1, {"st": 1}), (2.5, {"st": 2}), (3, {"st": 2}), (4, {"st": 1}),
    ])  # fmt: skip
    assert states(out) == [(0, "running", None), (2.5, "idle", None), (4, "running", None)]


def test_partial_reads_remember_state_and_reason_tags() -> None:
    tr = MachineTracker("m1", make_rules())
    out = run(tr, [(0, {"st": 3, "fc": 12}), (1, {"other": 5}), (2, {"fc": 0}), (3, {"st": 1})])
    assert states(out) == [(0, "fault", "jam"), (3, "running", None)]


def test_reads_out_of_order_are_ignored_and_counted() -> None:
    tr = MachineTracker("m1", make_rules())
    out = run(tr, [(5, {"st": 1}), (4, {"st": 3}), (6, {"st": 2})])
    assert states(out) == [(5, "running", None), (6, "idle", None)]
    assert tr.stale_reads == 1


def test_notifications_sharing_a_timestamp_are_merged_not_lost() -> None:
    rules = make_rules(counters=[{"tag": "c", "kind": "cycles"}], telemetry=[{"tag": "temp"}])
    tr = MachineTracker("m1", rules)
    out = run(tr, [(5, {"st": 1, "c": 3}), (5, {"temp": 20.0}), (5, {"st": 3, "fc": 12}), (6, {})])
    # The state change in the second notification of 5 cannot take the key (m1, 5) already used:
    # it is remembered and recorded with the next read.
    assert states(out) == [(5, "running", None), (6, "fault", "jam")]
    assert [type(r).__name__ for r in out if not isinstance(r, StateRecord)] == [
        "CounterRecord", "TelemetryRecord", "DowntimeRecord",
    ]  # fmt: skip
    assert tr.stale_reads == 1


def test_naive_timestamps_are_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        MachineTracker("m1", make_rules()).observe(datetime(2024, 5, 1), {"st": 1}, {})


# ----------------------------------------------------------------------------------- downtime


@pytest.mark.parametrize(
    ("stop_s", "micro"),
    [(0.5, True), (59.9, True), (60, False), (600, False)],
)
def test_downtime_start_and_end_share_event_id(stop_s: float, micro: bool) -> None:
    tr = MachineTracker("m1", make_rules())
    out = run(tr, [(0, {"st": 1}), (10, {"st": 3, "fc": 12}), (10 + stop_s, {"st": 1, "fc": 0})])
    start, end = downtime(out)
    assert start.event_id == end.event_id
    assert (start.state, start.reason_code, start.category) == (
        S.FAULT,
        "jam",
        DowntimeCategory.UNPLANNED,
    )
    assert (secs(start.started_at), start.ended_at, start.micro_stop) == (10, None, None)
    assert (end.state, end.reason_code, end.category) == (
        S.FAULT,
        "jam",
        DowntimeCategory.UNPLANNED,
    )
    assert (secs(end.started_at), secs(end.ended_at), end.micro_stop) == (10, 10 + stop_s, micro)
    assert (start.truncated, end.truncated) == (None, False)  # the machine ended it: whole
    assert tr.open_stop is None


@pytest.mark.parametrize(
    ("state", "fc", "category"),
    [
        (4, 0, DowntimeCategory.PLANNED),  # setup: planned by state
        (2, 0, DowntimeCategory.UNPLANNED),  # idle
        (5, 0, DowntimeCategory.UNPLANNED),  # starved
        (3, 13, DowntimeCategory.PLANNED),  # a fault whose reason is planned
    ],
)
def test_downtime_category(state: int, fc: int, category: DowntimeCategory) -> None:
    out = run(MachineTracker("m1", make_rules()), [(0, {"st": state, "fc": fc})])
    assert [d.category for d in downtime(out)] == [category]


def test_stop_changing_to_another_stop_ends_one_and_starts_the_next_at_the_same_time() -> None:
    out = run(MachineTracker("m1", make_rules()), [
        (0, {"st": 1}), (10, {"st": 3, "fc": 12}), (100, {"st": 4, "fc": 0}), (130, {"st": 1}),
    ])  # fmt: skip
    fault_start, fault_end, setup_start, setup_end = downtime(out)
    assert fault_start.event_id == fault_end.event_id != setup_start.event_id == setup_end.event_id
    assert (secs(fault_end.ended_at), fault_end.micro_stop) == (100, False)
    assert (setup_start.state, secs(setup_start.started_at)) == (S.SETUP, 100)
    assert (setup_start.category, setup_start.reason_code) == (DowntimeCategory.PLANNED, None)
    assert (secs(setup_end.ended_at), setup_end.micro_stop) == (130, True)
    assert states(out) == [(0, "running", None), (10, "fault", "jam"), (100, "setup", None),
                           (130, "running", None)]  # fmt: skip


def test_a_reason_arriving_after_the_stop_started_is_sent_with_the_same_event() -> None:
    out = run(MachineTracker("m1", make_rules()), [
        (0, {"st": 3, "fc": 0}), (1, {"st": 3, "fc": 12}), (2, {"st": 3, "fc": 13}),
        (3, {"st": 1, "fc": 0}),
    ])  # fmt: skip
    first, update, end = downtime(out)
    assert first.event_id == update.event_id == end.event_id
    assert [d.reason_code for d in (first, update, end)] == [None, "jam", "jam"]  # root cause kept
    assert update.ended_at is None and secs(update.started_at) == 0
    assert states(out) == [(0, "fault", None), (1, "fault", "jam"), (3, "running", None)]


def test_running_and_unmapped_codes_open_no_downtime() -> None:
    out = run(MachineTracker("m1", make_rules()), [(0, {"st": 1}), (1, {"st": 99}), (2, {"st": 1})])
    assert downtime(out) == []
    assert states(out) == [(0, "running", None), (1, "offline", None), (2, "running", None)]


# ------------------------------------------------------------------------------------ offline


def test_offline_is_a_gap_never_a_downtime() -> None:
    tr = MachineTracker("m1", make_rules(offline_after_s=10))
    out = run(tr, [
        (0, {"st": 1}), (1, {"st": 1}), (2, {}, BAD), (5, {}, BAD), 11, (11.5, {}, BAD), 12,
        (30, {}, BAD), 40, (41, {"st": 1}),
    ])  # fmt: skip
    # Data stopped at the first failed read (2); noticed once 10 s had passed since the last good.
    assert states(out) == [(0, "running", None), (2, "offline", None), (41, "running", None)]
    assert downtime(out) == []


def test_offline_closes_an_open_stop_at_the_last_good_read() -> None:
    tr = MachineTracker("m1", make_rules(offline_after_s=40))
    out = run(tr, [(0, {"st": 1}), (20, {"st": 3, "fc": 12}), (50, {"st": 3, "fc": 12}),
                   (51, {}, BAD), 85, 91, (200, {"st": 3, "fc": 12})])  # fmt: skip
    start, end, again = downtime(out)
    assert start.event_id == end.event_id != again.event_id
    # Ended at the last good read, 30 s after it began: cut short by the gap, so truncated and
    # not a micro-stop (its real length is unknown).
    assert (secs(end.ended_at), end.micro_stop, end.truncated) == (50, False, True)
    assert (secs(again.started_at), again.ended_at) == (200, None)  # data back: a new stop
    assert states(out) == [(0, "running", None), (20, "fault", "jam"), (51, "offline", None),
                           (200, "fault", "jam")]  # fmt: skip


def test_silent_driver_goes_offline_when_patience_ran_out() -> None:
    tr = MachineTracker("m1", make_rules(offline_after_s=10))
    out = run(tr, [(0, {"st": 2}), 5, 10, 10.5, 25])
    assert states(out) == [(0, "idle", None), (10, "offline", None)]
    _, end = downtime(out)
    assert secs(end.ended_at) == 0 and (end.micro_stop, end.truncated) == (False, True)


def test_a_short_stop_cut_by_a_gap_is_truncated_never_a_micro_stop() -> None:
    # A 13 s fault whose PLC went offline 1 s in: the stop seen lasted 1 s, far below
    # micro_stop_below_s (60), but its real length is unknown.
    tr = MachineTracker("m1", make_rules(offline_after_s=5))
    out = run(tr, [(0, {"st": 1}), (10, {"st": 3, "fc": 12}), (11, {"st": 3, "fc": 12}),
                   (12, {}, BAD), 17])  # fmt: skip
    start, end = downtime(out)
    assert start.event_id == end.event_id
    assert (secs(end.ended_at), end.truncated, end.micro_stop) == (11, True, False)
    assert states(out)[-1] == (12, "offline", None)


def test_stop_observing_ends_the_open_stop_truncated_and_goes_offline() -> None:
    tr = MachineTracker("m1", make_rules())
    out = run(tr, [(0, {"st": 1}), (10, {"st": 3, "fc": 12}), (12, {"st": 3, "fc": 12})])
    out += tr.stop_observing(t(13))
    assert_wire_valid(out)
    start, end = downtime(out)
    assert start.event_id == end.event_id and tr.open_stop is None
    assert (secs(end.ended_at), end.truncated, end.micro_stop) == (12, True, False)
    assert states(out) == [(0, "running", None), (10, "fault", "jam"), (13, "offline", None)]
    # Observation starts afresh: data coming back opens a new stop, and stopping again while
    # offline records nothing more.
    assert tr.stop_observing(t(14)) == []
    again = run(tr, [(20, {"st": 3, "fc": 12})])
    assert [d.ended_at for d in downtime(again)] == [None]
    assert downtime(again)[0].event_id != start.event_id


def test_stop_observing_after_a_failed_read_says_offline_from_that_read() -> None:
    tr = MachineTracker("m1", make_rules())
    out = run(tr, [(0, {"st": 2}), (5, {}, BAD)])
    out += tr.stop_observing(t(8))
    _, end = downtime(out)
    assert (secs(end.ended_at), end.truncated) == (0, True)
    assert states(out) == [(0, "idle", None), (5, "offline", None)]


def test_stop_observing_before_any_read_records_nothing() -> None:
    assert MachineTracker("m1", make_rules()).stop_observing(t(5)) == []


def test_a_good_read_after_a_silent_gap_first_records_the_gap() -> None:
    out = run(
        MachineTracker("m1", make_rules(offline_after_s=10)),
        [(0, {"st": 1}), (10, {"st": 1}), (30, {"st": 1})],
    )
    assert states(out) == [(0, "running", None), (20, "offline", None), (30, "running", None)]


def test_a_failure_sharing_the_last_good_reads_timestamp_does_not_start_the_gap() -> None:
    tr = MachineTracker("m1", make_rules(offline_after_s=10))
    out = run(tr, [(0, {"st": 1}), (0, {}, BAD), 11])
    assert states(out) == [(0, "running", None), (10, "offline", None)]


def test_a_failed_state_tag_alone_makes_the_read_bad() -> None:
    tr = MachineTracker("m1", make_rules(offline_after_s=10))
    out = run(tr, [(0, {"st": 1}), (1, {"st": 1, "fc": 0}, {"st": "bad quality"}), (12, {"fc": 0})])
    assert states(out) == [(0, "running", None), (1, "offline", None)]


def test_never_answering_plc_goes_offline_from_when_we_started_watching() -> None:
    silent = run(MachineTracker("m1", make_rules(offline_after_s=10)), [0, 5, 11])
    assert states(silent) == [(10, "offline", None)]
    failing = run(
        MachineTracker("m1", make_rules(offline_after_s=10)),
        [(3, {}, BAD), (8, {}, BAD), (14, {}, BAD)],
    )
    assert states(failing) == [(3, "offline", None)]


def test_short_read_failures_below_the_patience_change_nothing() -> None:
    out = run(MachineTracker("m1", make_rules(offline_after_s=10)), [
        (0, {"st": 3, "fc": 12}), (1, {}, BAD), (9, {}, BAD), 10, (10, {"st": 3, "fc": 12}),
        (11, {"st": 1}),
    ])  # fmt: skip
    assert states(out) == [(0, "fault", "jam"), (11, "running", None)]
    _, end = downtime(out)
    assert secs(end.ended_at) == 11


# --------------------------------------------------------------------------------- heartbeats


def test_heartbeats_sit_on_the_wall_clock_grid() -> None:
    tr = MachineTracker("m1", make_rules(heartbeat_s=60))
    reads: list[Step] = [(s, {"st": 1}) for s in range(7, 190, 20)]
    out = run(tr, [*reads, (240, {"st": 3, "fc": 12}), 250, (300, {"st": 3}), (301, {"st": 1})])
    assert states(out) == [
        (7, "running", None), (60, "running", None), (120, "running", None),
        (180, "running", None), (240, "fault", "jam"), (300, "fault", "jam"),
        (301, "running", None),
    ]  # fmt: skip
    assert all(r.ts.second == 0 and r.ts.microsecond == 0 for r in out[1:4])


def test_heartbeats_wait_for_a_read_while_online_and_follow_the_clock_while_offline() -> None:
    tr = MachineTracker("m1", make_rules(heartbeat_s=30, offline_after_s=45))
    assert states(run(tr, [(20, {"st": 2}), 50, 55])) == [
        (20, "idle", None)
    ]  # nothing read past 30
    out = run(tr, [(56, {}, BAD), 66, 100, 125, (130, {"st": 2})])
    # 30 is filled at the next knowledge (the gap's start): idle held until the first failed read.
    assert states(out) == [
        (30, "idle", None), (56, "offline", None), (60, "offline", None), (90, "offline", None),
        (120, "offline", None), (130, "idle", None),
    ]  # fmt: skip


def test_heartbeat_on_a_grid_point_that_has_a_change_is_not_doubled() -> None:
    out = run(MachineTracker("m1", make_rules(heartbeat_s=10)), [
        (5, {"st": 1}), (10, {"st": 2}), (20, {"st": 2}), (25, {"st": 2}),
    ])  # fmt: skip
    assert states(out) == [(5, "running", None), (10, "idle", None), (20, "idle", None)]


def test_a_read_older_than_an_offline_heartbeat_does_not_rewrite_history() -> None:
    tr = MachineTracker("m1", make_rules(heartbeat_s=10, offline_after_s=10))
    out = run(tr, [(0, {"st": 1}), 20, 41, (35, {"st": 2}), (42, {"st": 2})])
    assert states(out) == [
        (0, "running", None), (10, "offline", None), (20, "offline", None), (30, "offline", None),
        (40, "offline", None), (42, "idle", None),
    ]  # fmt: skip
    assert tr.stale_reads == 1


# -------------------------------------------------------------------------------- persistence


def roundtrip(tr: MachineTracker, rules: MachineRules | None = None) -> MachineTracker:
    data = json.loads(json.dumps(tr.snapshot()))
    return MachineTracker.restore(tr.code, rules or tr.rules, data)


def test_restart_inside_a_stop_keeps_its_event_id() -> None:
    tr = MachineTracker("m1", make_rules())
    before = run(tr, [(0, {"st": 1}), (10, {"st": 3, "fc": 12}), (15, {"st": 3, "fc": 12})])
    tr = roundtrip(tr)
    after = run(tr, [(20, {"st": 3, "fc": 12}), (80, {"st": 1})])
    (start,), (end,) = downtime(before), downtime(after)
    assert start.event_id == end.event_id
    assert (secs(end.started_at), secs(end.ended_at), end.reason_code) == (10, 80, "jam")
    assert states(after) == [(80, "running", None)]  # no repeated state record on restart


def test_restart_after_a_long_outage_is_an_offline_gap() -> None:
    tr = MachineTracker("m1", make_rules(heartbeat_s=60, offline_after_s=10))
    before = run(tr, [(0, {"st": 1}), (30, {"st": 5})])
    tr = roundtrip(tr)
    after = run(tr, [(200, {"st": 5})])
    (start,), (end, again) = downtime(before), downtime(after)
    assert start.event_id == end.event_id != again.event_id
    assert (secs(end.ended_at), secs(again.started_at)) == (30, 200)
    assert states(after) == [(40, "offline", None), (60, "offline", None), (120, "offline", None),
                             (180, "offline", None), (200, "starved", None)]  # fmt: skip


def test_restore_offline_and_with_changed_rules() -> None:
    tr = MachineTracker("m1", make_rules(heartbeat_s=60, offline_after_s=10))
    run(tr, [(0, {"st": 1}), 15])
    new_rules = make_rules(
        heartbeat_s=900, offline_after_s=10, counters=[{"tag": "c", "kind": "cycles"}]
    )
    tr = roundtrip(tr, new_rules)
    out = run(tr, [1000, (1001, {"st": 1, "c": 7})])
    assert states(out) == [(900, "offline", None), (1001, "running", None)]
    assert tr.state == S.RUNNING


def test_unknown_snapshot_version_is_refused() -> None:
    with pytest.raises(ValueError, match="snapshot version"):
        MachineTracker.restore("m1", make_rules(), {"v": 99})
