"""A task's lifecycle with who and when, its history, floating schedules moving with
completion, and tenancy: a schedule sees only its organization's meters, a task only its
plant's context."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from core.maintenance.lifecycle import TransitionRefused, transition
from core.tenancy import Tenant, tenant_transaction
from ingest.maintenance.completion import meter_at_completion
from ingest.maintenance.engine import MaintenanceEngine
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants
from tests.maintenance.helpers import Clock, add_machine, add_schedule, tasks_of

START = datetime(2026, 2, 2, 6, 0, tzinfo=UTC)


def _step(engine: MaintenanceEngine, tenant: Tenant, task: str, step: str, user: uuid.UUID,
          at: datetime, reason: str | None = None) -> str:
    with engine.pool.connection() as conn, tenant_transaction(
            conn, Tenant(tenant.organization_id, tenant.plant_id, user)):
        return transition(conn, uuid.UUID(task), step, user, at, reason,
                          meter_at=meter_at_completion)


def test_lifecycle_records_who_and_when_and_keeps_history(
        database: TestDatabase, tenants: Tenants, engine: MaintenanceEngine,
        clock: Clock) -> None:
    _, machine = add_machine(database, tenants)
    tech = tenants.a.users["a1"]
    schedule = add_schedule(database, tenants, machine_id=machine, trigger_kind="calendar",
                            calendar_every=7, calendar_unit="days", anchor_at=START,
                            checklist='["grease rails", "check belts"]', priority="high",
                            estimated_minutes=30, default_assignee_id=tech)
    tenant = Tenant(tenants.a.id, tenants.a1)
    clock.now = START + timedelta(days=7)
    [raised] = engine.calendar(tenant)
    [task] = tasks_of(database, "schedule_id", schedule)
    assert task["id"] == str(raised)
    assert (task["priority"], task["estimated_minutes"], task["assignee_id"]) == (
        "high", 30, str(tech))
    assert task["checklist"] == [{"item": "grease rails", "done": False},
                                 {"item": "check belts", "done": False}]

    with pytest.raises(TransitionRefused, match="needs a reason"):
        _step(engine, tenant, task["id"], "skip", tech, clock.now, reason=" ")
    times = [clock.now + timedelta(hours=h) for h in (1, 2, 3)]
    assert _step(engine, tenant, task["id"], "acknowledge", tech, times[0]) == "acknowledged"
    assert _step(engine, tenant, task["id"], "start", tech, times[1]) == "in_progress"
    with pytest.raises(TransitionRefused, match="cannot acknowledge a task that is in_progress"):
        _step(engine, tenant, task["id"], "acknowledge", tech, times[2])
    assert _step(engine, tenant, task["id"], "complete", tech, times[2]) == "done"
    [task] = tasks_of(database, "schedule_id", schedule)
    assert (task["acknowledged_by_user_id"], task["started_by_user_id"],
            task["completed_by_user_id"]) == (str(tech),) * 3
    assert [datetime.fromisoformat(task[k]) for k in
            ("acknowledged_at", "started_at", "completed_at")] == times
    with database.superuser() as conn:
        history = conn.execute("SELECT event, status, actor_id FROM mes.pm_task_history "
                               "WHERE task_id = %s ORDER BY at", (task["id"],)).fetchall()
    assert history == [("raised", "open", None), ("status", "acknowledged", tech),
                       ("status", "in_progress", tech), ("status", "done", tech)]


def test_skipping_needs_a_reason_and_records_it(database: TestDatabase, tenants: Tenants,
                                                engine: MaintenanceEngine, clock: Clock) -> None:
    _, machine = add_machine(database, tenants)
    tech = tenants.a.users["a1"]
    schedule = add_schedule(database, tenants, machine_id=machine, trigger_kind="calendar",
                            calendar_every=1, calendar_unit="days", anchor_at=START)
    tenant = Tenant(tenants.a.id, tenants.a1)
    clock.now = START + timedelta(days=1)
    engine.calendar(tenant)
    [task] = tasks_of(database, "schedule_id", schedule)
    _step(engine, tenant, task["id"], "skip", tech, clock.now, reason="machine scrapped")
    [task] = tasks_of(database, "schedule_id", schedule)
    assert (task["status"], task["skip_reason"], task["skipped_by_user_id"]) == (
        "skipped", "machine scrapped", str(tech))


def test_floating_schedule_counts_from_completion(database: TestDatabase, tenants: Tenants,
                                                  engine: MaintenanceEngine,
                                                  clock: Clock) -> None:
    _, machine = add_machine(database, tenants)
    tech = tenants.a.users["a1"]
    schedule = add_schedule(database, tenants, machine_id=machine, trigger_kind="calendar",
                            schedule_mode="floating", calendar_every=10, calendar_unit="days",
                            anchor_at=START)
    tenant = Tenant(tenants.a.id, tenants.a1)
    clock.now = START + timedelta(days=10)
    engine.calendar(tenant)
    [task] = tasks_of(database, "schedule_id", schedule)
    done_at = START + timedelta(days=14)  # four days late
    _step(engine, tenant, task["id"], "complete", tech, done_at)
    assert engine.next_calendar_at(tenant) is not None
    clock.now = START + timedelta(days=20)  # the fixed grid's due: not floating's
    engine.calendar(tenant)
    assert len(tasks_of(database, "schedule_id", schedule)) == 1
    clock.now = done_at + timedelta(days=10)
    engine.calendar(tenant)
    second = tasks_of(database, "schedule_id", schedule)[1]
    assert (second["occurrence"], datetime.fromisoformat(second["due_at"])) == (
        2, done_at + timedelta(days=10))


def test_a_schedule_never_sees_another_organizations_meters_and_tasks_stay_in_their_plant(
        database: TestDatabase, tenants: Tenants, engine: MaintenanceEngine,
        clock: Clock) -> None:
    _, machine_a = add_machine(database, tenants, "a1")
    # Organization B's schedule names A's machine: the composite key refuses it outright.
    with pytest.raises(Exception, match="foreign key"):
        add_schedule(database, tenants, "b1", machine_id=machine_a, trigger_kind="cycles",
                     interval_value=1, counter_tag="strokes", anchor_at=START)
    # A kind-targeted schedule of B matches B's machines only, even with A's kind.
    kind = "press-tenancy"
    _, machine_a = add_machine(database, tenants, "a1", kind=kind)
    with database.superuser() as conn:
        for i, v in enumerate((0, 500, 1000)):
            conn.execute("INSERT INTO mes.machine_counter (organization_id, plant_id, "
                         "machine_id, tag, ts, value) VALUES (%s, %s, %s, 'strokes', %s, %s)",
                         (tenants.a.id, tenants.a1, machine_a, START + timedelta(hours=i), v))
    schedule_b = add_schedule(database, tenants, "b1", machine_kind=kind, trigger_kind="cycles",
                              interval_value=10, counter_tag="strokes", anchor_at=START)
    schedule_a = add_schedule(database, tenants, "a1", machine_kind=kind,
                              trigger_kind="cycles", interval_value=10, counter_tag="strokes",
                              anchor_at=START)
    clock.now = START + timedelta(days=1)
    engine.sweep(Tenant(tenants.b.id, tenants.b.plants["b1"]))
    assert tasks_of(database, "schedule_id", schedule_b) == []
    engine.sweep(Tenant(tenants.a.id, tenants.a1))
    [task] = tasks_of(database, "schedule_id", schedule_a)
    assert task["occurrence"] == 100
    with database.app() as conn:
        for tenant, seen in ((Tenant(tenants.a.id, tenants.a1), 1),
                             (Tenant(tenants.a.id, tenants.a2), 0),
                             (Tenant(tenants.b.id), 0)):
            with tenant_transaction(conn, tenant):
                row = conn.execute("SELECT count(*) FROM mes.pm_tasks WHERE id = %s",
                                   (task["id"],)).fetchone()
            assert row == (seen,), tenant


@pytest.mark.parametrize("meter", [{}, {"trigger_kind": "combined", "interval_value": 500,
                                       "meter_kind": "runtime_hours"}],
                         ids=["calendar", "combined"])
def test_after_the_engine_was_down_one_overdue_task_is_raised_once(
        database: TestDatabase, tenants: Tenants, engine: MaintenanceEngine,
        clock: Clock, meter: dict[str, Any]) -> None:
    _, machine = add_machine(database, tenants)
    schedule = add_schedule(database, tenants, machine_id=machine, **{
        "trigger_kind": "calendar", "calendar_every": 1, "calendar_unit": "days",
        "anchor_at": START, "tolerance_pct": 50, **meter})
    tenant = Tenant(tenants.a.id, tenants.a1)
    clock.now = START + timedelta(days=5, hours=3)  # down across five due times
    engine.calendar(tenant)
    engine.calendar(tenant)  # and a second run (or engine) at the same time: nothing more
    [task] = tasks_of(database, "schedule_id", schedule)
    assert (task["occurrence"], task["missed_occurrences"]) == (5, 4)
    assert datetime.fromisoformat(task["due_at"]) == START + timedelta(days=5)
    assert datetime.fromisoformat(task["overdue_at"]) == START + timedelta(days=5, hours=12)
    clock.now = START + timedelta(days=6)
    engine.calendar(tenant)
    assert [t["occurrence"] for t in tasks_of(database, "schedule_id", schedule)] == [5, 6]
