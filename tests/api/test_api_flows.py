"""The main flows of each router through a running `mes api`: what people do, and what the
database records about who did it."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import pytest

from ingest.maintenance.raising import last_tasks, load_targets
from ingest.maintenance.triggers import next_calendar_at
from tests.api.conftest import Api
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import T0, Tenants


def z(t: datetime) -> str:
    """A UTC time as the API writes it."""
    return t.isoformat().replace("+00:00", "Z")


def _audit(database: TestDatabase, table: str, row_id: str) -> tuple[uuid.UUID, uuid.UUID]:
    with database.superuser() as conn:
        return conn.execute(f"SELECT created_by, updated_by FROM mes.{table} WHERE id = %s",
                            (row_id,)).fetchone()


def test_machines_state_timeline_and_time_in_state(api: Api, tenants: Tenants,
                                                   database: TestDatabase) -> None:
    machine = str(tenants.a.machines["a1"])
    listed = api.ok("a1_viewer", "GET", "/v1/machines")["items"]
    assert [m["id"] for m in listed] == [machine]
    state = api.ok("a1_viewer", "GET", f"/v1/machines/{machine}/state")
    assert state["state"] == "running"
    assert state["since"] == state["last_seen"] == z(T0 + timedelta(minutes=40))
    window = {"start": T0.isoformat(), "end": (T0 + timedelta(hours=1)).isoformat()}
    timeline = api.ok("a1_viewer", "GET", f"/v1/machines/{machine}/timeline", params=window)
    assert [(s["state"], s["start"], s["end"]) for s in timeline] == [
        ("running", z(T0), z(T0 + timedelta(minutes=20))),
        ("fault", z(T0 + timedelta(minutes=20)), z(T0 + timedelta(minutes=40))),
        ("running", z(T0 + timedelta(minutes=40)), z(T0 + timedelta(hours=1)))]
    tis = api.ok("a1_viewer", "GET", f"/v1/machines/{machine}/time-in-state", params=window)
    assert tis["seconds"] == {"running": 1200.0, "fault": 1200.0}
    assert tis["availability"] == 0.5
    renamed = api.ok("a1_lead", "PATCH", f"/v1/machines/{machine}", json={"name": "Press A1"})
    assert renamed["name"] == "Press A1"
    assert renamed["updated_by"] == str(api.users.ids["a1_lead"])
    assert _audit(database, "machines", machine)[1] == api.users.ids["a1_lead"]


def test_downtime_reason_and_split(api: Api, tenants: Tenants, database: TestDatabase) -> None:
    stops = api.ok("a1_operator", "GET", "/v1/downtime", params={"state": "fault"})["items"]
    # The seed gave the stop a person's reason ("jam"); the edge sent none.
    assert len(stops) == 1 and stops[0]["reason_code"] == "jam"
    assert stops[0]["edge_reason_code"] is None
    event = stops[0]["event_id"]
    set_ = api.ok("a1_operator", "PUT", f"/v1/downtime/{event}/reason",
                  json={"reason_code": "tool-change", "comment": "die swapped"})
    assert set_["reason_code"] == "tool-change" and set_["edge_reason_code"] is None
    corrected = api.ok("a1_tech", "PUT", f"/v1/downtime/{event}/reason",
                       json={"reason_code": "die-crack", "comment": "cracked, not swapped"})
    assert corrected["reason_code"] == "die-crack"
    [segment] = corrected["segments"]
    assert segment["updated_by"] == str(api.users.ids["a1_tech"])
    at = z(T0 + timedelta(minutes=3))
    split = api.ok("a1_operator", "POST", f"/v1/downtime/{event}/split",
                   json={"at": at, "reason_code": "waiting-material"})
    assert [(s["start"], s["reason_code"]) for s in split["segments"]] == [
        (z(T0), "die-crack"), (at, "waiting-material")]
    again = api.call("a1_operator", "POST", f"/v1/downtime/{event}/split", json={"at": at})
    assert again.status_code == 409
    outside = api.call("a1_operator", "POST", f"/v1/downtime/{event}/split",
                       json={"at": (T0 + timedelta(hours=1)).isoformat()})
    assert outside.status_code == 422 and outside.json()["errors"][0]["field"] == "at"
    found = api.ok("a1_viewer", "GET", "/v1/downtime",
                   params={"reason_code": "waiting-material"})["items"]
    assert [s["event_id"] for s in found] == [event]
    with database.superuser() as conn:
        created = conn.execute("SELECT created_by FROM mes.downtime_reasons WHERE event_id = %s"
                               " AND segment_start = %s", (event, at)).fetchone()
    assert created == (api.users.ids["a1_operator"],)


def test_work_order_machine_assignments(api: Api, tenants: Tenants,
                                        database: TestDatabase) -> None:
    order = api.ok("a1_operator", "POST", "/v1/work-orders", json={"number": "WO-FLOW-1"})
    assert order["plant_id"] == str(tenants.a1) and order["status"] == "planned"
    assert _audit(database, "work_orders", order["id"]) == (api.users.ids["a1_operator"],) * 2
    machine = str(tenants.a.machines["a1"])
    assigned = api.ok("a1_operator", "POST", f"/v1/work-orders/{order['id']}/machines",
                      json={"machine_id": machine})
    twice = api.call("a1_operator", "POST", f"/v1/work-orders/{order['id']}/machines",
                     json={"machine_id": machine})
    assert twice.status_code == 409
    released = api.ok("a1_operator", "POST",
                      f"/v1/work-orders/{order['id']}/machines/{assigned['id']}/release")
    assert released["released_at"] is not None
    history = api.ok("a1_viewer", "GET", f"/v1/machines/{machine}/work-orders")["items"]
    assert assigned["id"] in [h["id"] for h in history]
    moved = api.ok("a1_operator", "PATCH", f"/v1/work-orders/{order['id']}",
                   json={"status": "in_progress"})
    assert moved["status"] == "in_progress"


def test_ncr_lifecycle(api: Api, tenants: Tenants, database: TestDatabase) -> None:
    order = api.ok("a1_viewer", "GET", "/v1/work-orders",
                   params={"sort": "number"})["items"][0]
    ncr = api.ok("a1_operator", "POST", "/v1/ncrs", json={
        "number": "NCR-FLOW-1", "title": "Crack at bend", "severity": "major",
        "work_order_id": order["id"]})
    assert ncr["status"] == "open" and ncr["material_id"] == order["material_id"]
    assert ncr["plant_id"] == order["plant_id"]
    assert ncr["created_by"] == str(api.users.ids["a1_operator"])
    path = f"/v1/ncrs/{ncr['id']}"
    quality = str(api.users.ids["a1_quality"])
    assigned = api.ok("a1_quality", "POST", f"{path}/assign", json={"assignee_id": quality})
    assert assigned["assignee_id"] == quality
    stale = api.call("a1_quality", "POST", f"{path}/status", json={"status": "investigating"},
                     headers={"If-Match": ncr["version"]})
    assert stale.status_code == 412
    api.ok("a1_quality", "POST", f"{path}/status", json={"status": "investigating"},
           headers={"If-Match": assigned["version"]})
    closed_early = api.call("a1_quality", "POST", f"{path}/status", json={"status": "closed"})
    assert closed_early.status_code == 409
    resolved = api.ok("a1_quality", "POST", f"{path}/resolve",
                      json={"disposition": "rework", "resolution": "re-bent and checked"})
    assert resolved["status"] == "resolved" and resolved["disposition"] == "rework"
    assert resolved["resolved_by_user_id"] == quality and resolved["resolved_at"]
    assert api.call("a1_quality", "POST", f"{path}/resolve",
                    json={"disposition": "scrap"}).status_code == 409
    closed = api.ok("a1_quality", "POST", f"{path}/status", json={"status": "closed"})
    assert closed["status"] == "closed"
    assert _audit(database, "ncr", ncr["id"]) == (api.users.ids["a1_operator"],
                                                  api.users.ids["a1_quality"])
    listed = api.ok("a1_viewer", "GET", "/v1/ncrs", params={"status": "closed"})["items"]
    assert [n["id"] for n in listed] == [ncr["id"]]


def test_inspection_logged_by_the_caller(api: Api) -> None:
    log = api.ok("a1_quality", "POST", "/v1/inspections",
                 json={"result": "fail", "characteristic": "burr (mm)", "measured_value": 0.3})
    assert log["inspector_id"] == str(api.users.ids["a1_quality"])
    fails = api.ok("a1_viewer", "GET", "/v1/inspections", params={"result": "fail"})["items"]
    assert [f["id"] for f in fails] == [log["id"]]


def test_handover_logged_acknowledged_with_stops_and_open_tasks(
        api: Api, tenants: Tenants, database: TestDatabase) -> None:
    shift = api.ok("a1_lead", "POST", "/v1/shifts", json={
        "name": "Early", "starts_at": T0.isoformat(),
        "ends_at": (T0 + timedelta(hours=8)).isoformat()})
    assert shift["plant_id"] == str(tenants.a1)
    handover = api.ok("a1_operator", "POST", f"/v1/shifts/{shift['id']}/handovers",
                      json={"notes": "press slow after die change"})
    assert handover["logged_by_user_id"] == str(api.users.ids["a1_operator"])
    path = f"/v1/handovers/{handover['id']}"
    assert api.call("a1_operator", "POST", f"{path}/acknowledge").status_code == 409
    acked = api.ok("a1_tech", "POST", f"{path}/acknowledge")
    assert acked["acknowledged_by_user_id"] == str(api.users.ids["a1_tech"])
    assert acked["acknowledged_at"]
    assert api.call("a1_tech2", "POST", f"{path}/acknowledge").status_code == 409
    detail = api.ok("a1_viewer", "GET", path)
    machine = str(tenants.a.machines["a1"])
    assert [s["machine_id"] for s in detail["summary"]["stops"]] == [machine]
    assert detail["summary"]["open_tasks"]
    assert {t["machine_id"] for t in detail["summary"]["open_tasks"]} == {machine}
    assert _audit(database, "shift_handovers", handover["id"]) == (
        api.users.ids["a1_operator"], api.users.ids["a1_tech"])


def test_pm_task_completion_records_who_and_the_meter(api: Api, tenants: Tenants,
                                                      database: TestDatabase) -> None:
    machine = str(tenants.a.machines["a1"])
    schedule = api.ok("a1_tech", "POST", "/v1/pm/schedules", json={
        "machine": "a1-press", "name": "Grease", "every": "7 days"})
    assert schedule["plant_id"] == str(tenants.a1)
    assert (schedule["machine_id"], schedule["trigger_kind"], schedule["calendar_every"],
            schedule["calendar_unit"]) == (machine, "calendar", 7, "days")
    with database.superuser() as conn:
        task_id = conn.execute(
            "INSERT INTO mes.pm_tasks (organization_id, plant_id, schedule_id, machine_id,"
            " occurrence, due_at) VALUES (%s, %s, %s, %s, 1, %s) RETURNING id",
            (tenants.a.id, tenants.a1, schedule["id"], machine, T0)).fetchone()[0]
    open_tasks = api.ok("a1_tech", "GET", "/v1/pm/tasks", params={
        "status": ["open", "in_progress"], "machine_id": machine,
        "due_from": (T0 - timedelta(days=1)).isoformat(),
        "due_to": (T0 + timedelta(days=1)).isoformat()})["items"]
    assert [t["id"] for t in open_tasks] == [str(task_id)]
    path = f"/v1/pm/tasks/{task_id}"
    taken = api.ok("a1_tech", "POST", f"{path}/acknowledge")
    assert taken["assignee_id"] == str(api.users.ids["a1_tech"])
    assert (taken["status"], taken["acknowledged_by_user_id"]) == (
        "acknowledged", str(api.users.ids["a1_tech"]))
    assert api.call("a1_tech", "POST", f"{path}/acknowledge").status_code == 409
    assert api.ok("a1_tech", "POST", f"{path}/start")["status"] == "in_progress"
    done = api.ok("a1_tech", "POST", f"{path}/complete",
                  json={"meter_reading": 1234.5, "notes": "greased"})
    assert done["status"] == "done" and done["meter_at_completion"] == 1234.5
    assert done["completed_by_user_id"] == str(api.users.ids["a1_tech"])
    assert done["notes"] == "greased"
    assert api.call("a1_tech", "POST", f"{path}/skip", json={"reason": "x"}).status_code == 409
    mine = api.ok("a1_tech", "GET", "/v1/pm/tasks", params={
        "assignee_id": str(api.users.ids["a1_tech"]), "status": "done"})["items"]
    assert [t["id"] for t in mine] == [str(task_id)]


def test_a_schedule_is_refused_with_the_field_to_fix(api: Api) -> None:
    r = api.call("a1_tech", "POST", "/v1/pm/schedules", json={
        "machine": "a1-press", "name": "Grease", "every": "7 fortnights"})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["every"]
    r = api.call("a1_tech", "POST", "/v1/pm/schedules", json={
        "machine": "no-such-press", "name": "Grease", "every": "7 days"})
    assert r.status_code == 422
    assert [e["field"] for e in r.json()["errors"]] == ["machine"]


def test_a_floating_schedule_counts_from_the_completion_made_through_the_api(
        api: Api, tenants: Tenants, database: TestDatabase) -> None:
    machine = tenants.a.machines["a1"]
    schedule = api.ok("a1_tech", "POST", "/v1/pm/schedules", json={
        "machine": "a1-press", "name": "Belts", "every": "7 days", "mode": "floating",
        "anchor": T0.isoformat(), "checklist": ["check belts", "tension"]})
    assert (schedule["schedule_mode"], schedule["checklist"]) == (
        "floating", ["check belts", "tension"])
    with database.superuser() as conn:
        task_id = conn.execute(
            "INSERT INTO mes.pm_tasks (organization_id, plant_id, schedule_id, machine_id,"
            " occurrence, due_at, checklist) VALUES (%s, %s, %s, %s, 1, %s, %s) RETURNING id",
            (tenants.a.id, tenants.a1, schedule["id"], machine, T0 + timedelta(days=7),
             '[{"item": "check belts", "done": false}, {"item": "tension", "done": false}]'
             )).fetchone()[0]
    path = f"/v1/pm/tasks/{task_id}"
    ticked = api.ok("a1_tech", "POST", f"{path}/checklist", json={"index": 1, "done": True})
    assert ticked["checklist"] == [{"item": "check belts", "done": False},
                                   {"item": "tension", "done": True}]
    assert api.call("a1_tech", "POST", f"{path}/checklist", json={"index": 2}).status_code == 422
    done = api.ok("a1_tech", "POST", f"{path}/complete", json={})
    assert api.call("a1_tech", "POST", f"{path}/checklist", json={"index": 0}).status_code == 409
    completed_at = datetime.fromisoformat(done["completed_at"])
    with database.superuser() as conn:
        history = conn.execute("SELECT event, status FROM mes.pm_task_history "
                               "WHERE task_id = %s ORDER BY at", (task_id,)).fetchall()
        [target] = [t for t in load_targets(conn, [machine], ["calendar"])
                    if str(t.schedule.id) == schedule["id"]]
        last = last_tasks(conn, [target])[(target.schedule.id, machine)]
    # The tick is recorded (the history doubles as the notification outbox).
    assert history[:2] == [("raised", "open"), ("updated", "open")]
    assert ("status", "done") in history
    # Floating: the next occurrence counts from the completion, not from the anchor's grid.
    assert next_calendar_at(target.schedule, last) == completed_at + timedelta(days=7)


def test_two_technicians_completing_one_task_one_wins(api: Api, tenants: Tenants,
                                                      database: TestDatabase) -> None:
    with database.superuser() as conn:
        schedule = conn.execute("SELECT id FROM mes.pm_schedules WHERE plant_id = %s LIMIT 1",
                                (tenants.a1,)).fetchone()[0]
        task_id = conn.execute(
            "INSERT INTO mes.pm_tasks (organization_id, plant_id, schedule_id, machine_id,"
            " occurrence, due_meter) VALUES (%s, %s, %s, %s, 99, 5) RETURNING id",
            (tenants.a.id, tenants.a1, schedule, tenants.a.machines["a1"])).fetchone()[0]
    users = ["a1_tech", "a1_tech2"] * 3
    with ThreadPoolExecutor(len(users)) as pool:
        results = list(pool.map(lambda u: api.call(
            u, "POST", f"/v1/pm/tasks/{task_id}/complete", json={"meter_reading": 7}), users))
    codes = sorted(r.status_code for r in results)
    assert codes == [200] + [409] * (len(users) - 1), [r.text for r in results]
    winner = next(r for r in results if r.status_code == 200).json()
    with database.superuser() as conn:
        row = conn.execute("SELECT completed_by_user_id, status FROM mes.pm_tasks "
                           "WHERE id = %s", (task_id,)).fetchone()
    assert (str(row[0]), row[1]) == (winner["completed_by_user_id"], "done")


def test_stale_version_is_412(api: Api, tenants: Tenants) -> None:
    schedule = api.ok("a1_tech", "GET", "/v1/pm/schedules")["items"][0]
    path = f"/v1/pm/schedules/{schedule['id']}"
    api.ok("a1_tech", "PATCH", path, json={"instructions": "one"},
           headers={"If-Match": schedule["version"]})
    r = api.call("a1_tech2", "PATCH", path, json={"instructions": "two"},
                 headers={"If-Match": schedule["version"]})
    assert r.status_code == 412
    assert api.ok("a1_tech", "GET", path)["instructions"] == "one"


def test_pages_follow_the_cursor_without_repeats(api: Api) -> None:
    seen, cursor = [], None
    for _ in range(50):
        params = {"limit": 1, "sort": "number"} | ({"cursor": cursor} if cursor else {})
        page = api.ok("a_admin", "GET", "/v1/work-orders", params=params)
        seen += [w["number"] for w in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    everything = api.ok("a_admin", "GET", "/v1/work-orders",
                        params={"limit": 500, "sort": "number"})["items"]
    assert seen == [w["number"] for w in everything] and len(seen) >= 3
    assert seen == sorted(seen)


@pytest.mark.parametrize(("method", "path", "kw", "status", "field"), [
    ("GET", "/v1/machines/not-a-uuid", {}, 422, "machine_id"),
    ("GET", "/v1/machines", {"params": {"limit": 0}}, 422, "limit"),
    ("GET", "/v1/machines", {"params": {"cursor": "garbage"}}, 422, "cursor"),
    ("POST", "/v1/ncrs", {"json": {"number": "N-1"}}, 422, "title"),
    ("POST", "/v1/ncrs", {"json": {"number": "N-1", "title": "t", "severity": "huge"}}, 422,
     "severity"),
    ("POST", "/v1/shifts", {"json": {"name": "x", "starts_at": T0.isoformat(),
                                     "ends_at": T0.isoformat()}}, 422, "ends_at"),
    ("GET", f"/v1/ncrs/{uuid.uuid4()}", {}, 404, None),
    ("POST", "/v1/work-orders", {"json": {"number": "WO-a1"}}, 409, None),
    ("PUT", f"/v1/downtime/{uuid.uuid4()}/reason", {"json": {"reason_code": "a\"b"}}, 422,
     "reason_code"),
])
def test_bad_input_names_the_field_and_leaks_nothing(api: Api, method: str, path: str,
                                                     kw: dict, status: int,
                                                     field: str | None) -> None:
    r = api.call("a_all", method, path, **kw)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    body = r.json()
    if field:
        assert field in [e["field"] for e in body["errors"]], body
    for leak in ("SELECT", "INSERT", "psycopg", "Traceback", "sqlalchemy", "mes."):
        assert leak not in r.text
