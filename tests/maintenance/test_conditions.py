"""Condition rules and corrective work through the real ingest: one inspection task per
episode with hysteresis and evidence; one corrective task per downtime event, also when the
event is updated when it ends."""

from __future__ import annotations

import uuid
from datetime import timedelta

from core.wire import DowntimeCategory, DowntimeEnvelope, DowntimeRecord, Kind, MachineState, encode
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants
from tests.ingest.helpers import topic_for
from tests.maintenance.helpers import (
    add_machine,
    hours_ago,
    states,
    tasks_of,
    telemetry,
    written,
)


def _rule(db: TestDatabase, tenants: Tenants, **cols) -> uuid.UUID:
    cols = {"organization_id": tenants.a.id, "plant_id": tenants.a1, "name": "Inspect", **cols}
    with db.superuser() as conn:
        row = conn.execute(f"INSERT INTO mes.pm_condition_rules ({', '.join(cols)}) VALUES "
                           f"({', '.join(['%s'] * len(cols))}) RETURNING id",
                           list(cols.values())).fetchone()
    assert row is not None
    return row[0]



def test_temperature_rule_raises_once_per_episode_and_hysteresis_holds(
        database: TestDatabase, tenants: Tenants, ingest_with_engine, publisher) -> None:
    code, machine = add_machine(database, tenants)
    t0 = hours_ago(3)
    rule = _rule(database, tenants, machine_id=machine, rule_kind="telemetry",
                 tag="spindle_temp", comparison="above", threshold=60, clear_threshold=55,
                 for_seconds=300, active_from=t0)
    _, raised = ingest_with_engine()
    m = timedelta(minutes=1)
    # 61..64 for 4 minutes: not long enough. Then above 60 from minute 10 to 16: trips at 15.
    first = [(t0 + i * m, 61.0 + i % 4) for i in range(5)] + [(t0 + 5 * m, 50.0)]
    first += [(t0 + (10 + i) * m, 62.0) for i in range(7)]
    publisher.publish([telemetry(code, "spindle_temp", first)])
    written(raised, 1)
    [task] = tasks_of(database, "condition_rule_id", rule)
    assert (task["occurrence"], task["task_kind"], task["raised_by"]) == (1, "condition",
                                                                         "condition")
    assert [e["value"] for e in task["evidence"]] == [62.0] * 6  # minutes 10..15
    # Dips to 57 (between clear and threshold: hysteresis, still the same episode), climbs.
    publisher.publish([telemetry(code, "spindle_temp",
                                 [(t0 + (20 + i) * m, v) for i, v in
                                  enumerate([57.0, 58.0, 65.0, 66.0, 65.0, 66.0, 65.0, 66.0])])])
    written(raised, 2)
    assert len(tasks_of(database, "condition_rule_id", rule)) == 1
    # Below 55 clears it; then hot again for 5 minutes: episode 2.
    publisher.publish([telemetry(code, "spindle_temp",
                                 [(t0 + 30 * m, 54.0)] + [(t0 + (31 + i) * m, 70.0)
                                                          for i in range(6)])])
    written(raised, 3)
    assert [t["occurrence"] for t in tasks_of(database, "condition_rule_id", rule)] == [1, 2]
    with database.superuser() as conn:
        episodes = conn.execute("SELECT episode, tripped_at, cleared_at FROM "
                                "mes.pm_condition_episodes WHERE rule_id = %s ORDER BY episode",
                                (rule,)).fetchall()
    assert [(e, tr - t0, cl and cl - t0) for e, tr, cl in episodes] == [
        (1, 15 * m, 30 * m), (2, 36 * m, None)]


def test_fault_count_rule_raises_once_when_n_faults_fall_in_the_window(
        database: TestDatabase, tenants: Tenants, ingest_with_engine, publisher) -> None:
    code, machine = add_machine(database, tenants)
    t0 = hours_ago(20)
    rule = _rule(database, tenants, machine_id=machine, rule_kind="state_count", state="fault",
                 reason_code="F12", count_threshold=5, window_seconds=8 * 3600,
                 active_from=t0)
    _, raised = ingest_with_engine()
    h = timedelta(hours=1)
    faults = [t0 + i * h for i in (0, 1, 2, 3)]  # four in 8 h: not yet
    publisher.publish([states(code, [(t, MachineState.FAULT) for t in faults], reason="F12"),
                       states(code, [(t0 + 3.5 * h, MachineState.FAULT)], reason="F13")])
    written(raised, 2)
    assert tasks_of(database, "condition_rule_id", rule) == []
    publisher.publish([states(code, [(t0 + 4 * h, MachineState.FAULT),
                                     (t0 + 5 * h, MachineState.FAULT)], reason="F12")])
    written(raised, 3)
    [task] = tasks_of(database, "condition_rule_id", rule)
    assert len(task["evidence"]) == 5
    assert {e["reason_code"] for e in task["evidence"]} == {"F12"}


def test_a_long_fault_opens_one_corrective_task_also_after_its_end_arrives(
        database: TestDatabase, tenants: Tenants, ingest_with_engine, publisher) -> None:
    code, machine = add_machine(database, tenants)
    t0 = hours_ago(2)
    with database.superuser() as conn:
        row = conn.execute(
            "INSERT INTO mes.pm_corrective_rules (organization_id, plant_id, name, "
            "min_duration_s, reason_codes, active_from) VALUES (%s, %s, 'Breakdown', 600, "
            "ARRAY['E-STOP'], %s) RETURNING id", (tenants.a.id, tenants.a1, t0)).fetchone()
    assert row is not None
    _, raised = ingest_with_engine()
    topic = topic_for("org-a", "a1", "gw-a1", Kind.DOWNTIME)
    short, long_ = uuid.uuid4(), uuid.uuid4()

    def stop(event: uuid.UUID, start_min: int, end_min: int | None, reason: str | None) -> bytes:
        record = DowntimeRecord(
            event_id=event, machine=code, started_at=t0 + timedelta(minutes=start_min),
            state=MachineState.FAULT, category=DowntimeCategory.UNPLANNED, reason_code=reason,
            ended_at=t0 + timedelta(minutes=end_min) if end_min is not None else None)
        return encode(DowntimeEnvelope(v=1, gateway="gw-a1", seq=uuid.uuid4().int % 10**9,
                                       sent_at=t0, records=[record]))

    publisher.publish([(topic, stop(short, 0, 3, "F1")), (topic, stop(long_, 10, None, "F1"))])
    written(raised, 2)
    [task] = tasks_of(database, "downtime_event_id", long_)  # still open, 110 min and counting
    assert (task["task_kind"], task["raised_by"], task["machine_id"]) == (
        "corrective", "downtime", str(machine))
    assert tasks_of(database, "downtime_event_id", short) == []
    publisher.publish([(topic, stop(long_, 10, 40, "F1")),  # the end arrives: nothing new
                       (topic, stop(short, 0, 3, "F1"))])
    written(raised, 4)
    assert len(tasks_of(database, "downtime_event_id", long_)) == 1
    estop = uuid.uuid4()
    publisher.publish([(topic, stop(estop, 50, 51, "E-STOP"))])  # short, but its reason counts
    written(raised, 5)
    assert len(tasks_of(database, "downtime_event_id", estop)) == 1
