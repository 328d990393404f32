"""Meter schedules through the real ingest: rows published to the broker, written by the
ingest, evaluated after each commit. Crossing a threshold raises exactly one task, a replay
raises none, a PLC reset and a register rollover keep the meter right, runtime counts only
`running` and never offline time."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pytest

from core.wire import MachineState
from edge_agent.derivation.counters import advance
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants
from tests.maintenance.helpers import (
    add_machine,
    add_schedule,
    counters,
    hours_ago,
    states,
    tasks_of,
    telemetry,
    written,
)
from tests.support.wait import wait_until


def test_cycles_raise_exactly_one_task_and_a_replay_raises_none(
        database: TestDatabase, tenants: Tenants, ingest_with_engine, publisher) -> None:
    code, machine = add_machine(database, tenants)
    t0 = hours_ago(5)
    schedule = add_schedule(database, tenants, machine_id=machine, trigger_kind="cycles",
                            interval_value=100, counter_tag="strokes", anchor_at=t0)
    _, raised = ingest_with_engine()
    below = counters(code, "strokes", [(t0 + timedelta(minutes=i), 1000 + 10 * i)
                                       for i in range(10)])  # base 1000, +90
    publisher.publish([below])
    written(raised, 1)
    assert tasks_of(database, "schedule_id", schedule) == []

    crossing = counters(code, "strokes", [(t0 + timedelta(minutes=10 + i), 1100 + 10 * i)
                                          for i in range(5)])  # +140 in all
    publisher.publish([crossing])
    written(raised, 2)
    [task] = tasks_of(database, "schedule_id", schedule)
    assert (task["occurrence"], task["due_meter"], task["meter_at_raise"]) == (1, 100, 140)
    assert (task["status"], task["raised_by"], task["task_kind"]) == ("open", "meter",
                                                                     "preventive")

    publisher.publish([below, crossing, crossing])  # replayed: no new rows, no new meter
    written(raised, 5)
    assert len(tasks_of(database, "schedule_id", schedule)) == 1

    publisher.publish([counters(code, "strokes", [(t0 + timedelta(minutes=20), 1210)])])
    written(raised, 6)
    assert [t["occurrence"] for t in tasks_of(database, "schedule_id", schedule)] == [1, 2]


def test_a_plc_reset_and_a_register_rollover_keep_the_meter_right(
        database: TestDatabase, tenants: Tenants, ingest_with_engine, publisher) -> None:
    code, machine = add_machine(database, tenants)
    t0 = hours_ago(4)
    reset = add_schedule(database, tenants, machine_id=machine, trigger_kind="cycles",
                         interval_value=100, counter_tag="parts", anchor_at=t0)
    wrapped = add_schedule(database, tenants, machine_id=machine, trigger_kind="cycles",
                           interval_value=50, counter_tag="strokes", anchor_at=t0)
    _, raised = ingest_with_engine()
    # A total that goes down is a reset: 0 -> 80, reset, 5 -> 60: 80 + 5 + 55 = 140.
    parts = [0, 40, 80, 5, 60]
    # The edge unwraps a 16-bit register 65500 -> 65535 -> 20: the landed total keeps growing.
    raw = [65500, 65535, 20, 40]
    totals = [float(raw[0])]
    for a, b in itertools.pairwise(raw):
        totals.append(totals[-1] + advance(a, b, 16))
    publisher.publish([
        counters(code, "parts", [(t0 + timedelta(minutes=i), v) for i, v in enumerate(parts)]),
        counters(code, "strokes", [(t0 + timedelta(minutes=i), v)
                                   for i, v in enumerate(totals)])])
    written(raised, 2)
    [task] = tasks_of(database, "schedule_id", reset)
    assert task["meter_at_raise"] == 140
    [task] = tasks_of(database, "schedule_id", wrapped)
    assert task["meter_at_raise"] == 35 + 21 + 20  # 65500 -> 65535 -> (wrap) 20 -> 40


def test_runtime_hours_count_running_only_never_offline(
        database: TestDatabase, tenants: Tenants, ingest_with_engine, publisher) -> None:
    code, machine = add_machine(database, tenants)
    t0 = hours_ago(8)
    schedule = add_schedule(database, tenants, machine_id=machine,
                            trigger_kind="runtime_hours", interval_value=5, anchor_at=t0)
    _, raised = ingest_with_engine()
    h = timedelta(hours=1)
    publisher.publish([states(code, [
        (t0, MachineState.RUNNING), (t0 + 3 * h, MachineState.IDLE),
        (t0 + 4 * h, MachineState.RUNNING), (t0 + 5.5 * h, MachineState.OFFLINE)])])
    written(raised, 1)
    assert tasks_of(database, "schedule_id", schedule) == []  # 4.5 h running

    # Running again; the last landed row (a telemetry sample) is the horizon: +1 h.
    publisher.publish([states(code, [(t0 + 6 * h, MachineState.RUNNING)]),
                       telemetry(code, "speed", [(t0 + 7 * h, 1200.0)])])
    wait_until(lambda: tasks_of(database, "schedule_id", schedule) != [], 60, "the task")
    [task] = tasks_of(database, "schedule_id", schedule)
    assert task["meter_at_raise"] == pytest.approx(5.5)
    assert task["due_meter"] == 5
