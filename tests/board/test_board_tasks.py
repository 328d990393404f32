"""Tasks without a schedule, the plant's time zone and another plant's view, in the browser.

Plant a1 keeps its times in Asia/Tokyo (UTC+9, no daylight saving: the expected strings are
plain). A new machine of a1 gets a condition rule and a corrective rule; its coolant readings and
a 30-minute fault land through the ingest's write path and the maintenance engine raises the
tasks, as it does after an ingest commit: real tasks with real evidence.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import psycopg
import pytest
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from core.staging import write_staged
from core.tenancy import Tenant, tenant_transaction
from ingest.maintenance.engine import MaintenanceEngine
from tests.board.conftest import Board
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants
from tests.maintenance.helpers import add_machine

ZONE = "Asia/Tokyo"
CHECKS = ["Check coolant flow", "Clean the filter"]


@dataclass
class Raised:
    machine: uuid.UUID
    condition: uuid.UUID  # the condition rule's task
    corrective: uuid.UUID  # the corrective rule's task
    event: uuid.UUID  # the stop behind the corrective task
    stop: tuple[datetime, datetime]


def local(t: datetime) -> str:
    return t.astimezone(ZoneInfo(ZONE)).strftime("%Y-%m-%d %H:%M JST")


@pytest.fixture(scope="module")
def raised(database: TestDatabase, tenants: Tenants) -> Iterator[Raised]:
    org, plant = tenants.a, tenants.a1
    _, machine = add_machine(database, tenants)
    t0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)
    with database.superuser() as conn:
        conn.execute("UPDATE mes.plants SET timezone = %s WHERE id = %s", (ZONE, plant))
        conn.execute(
            "INSERT INTO mes.pm_condition_rules (organization_id, plant_id, machine_id, name, "
            "instructions, rule_kind, tag, comparison, threshold, clear_threshold, for_seconds, "
            "active_from, checklist) VALUES (%s, %s, %s, 'Coolant hot', "
            "'Check the coolant pump and the filter.', 'telemetry', 'coolant_temp', 'above', "
            "80, 70, 60, %s, %s)", (org.id, plant, machine, t0, Jsonb(CHECKS)))
        # The seeded plant-wide corrective rule would take the same stop: this test's rule only.
        conn.execute("UPDATE mes.pm_corrective_rules SET is_active = false WHERE plant_id = %s",
                     (plant,))
        conn.execute(
            "INSERT INTO mes.pm_corrective_rules (organization_id, plant_id, name, "
            "min_duration_s, active_from) VALUES (%s, %s, 'Breakdown', 600, %s)",
            (org.id, plant, t0))
    event, stop = uuid.uuid4(), (t0 + timedelta(minutes=20), t0 + timedelta(minutes=50))
    with psycopg.connect(database.app_url) as conn, tenant_transaction(conn, Tenant(org.id)):
        write_staged(conn, "machine_telemetry", [  # 75 .. 86 °C, a minute apart
            (org.id, plant, machine, "coolant_temp", t0 + timedelta(minutes=i), 75.0 + i)
            for i in range(12)])
        write_staged(conn, "downtime_event", [
            (org.id, plant, machine, event, *stop, "fault", "E-17", "unplanned", False, False)])
    pool = ConnectionPool(database.app_url, min_size=1, max_size=2, open=True,
                          kwargs={"autocommit": True}, name="board-engine")
    try:
        assert len(MaintenanceEngine(pool).after_commit(Tenant(org.id), {machine})) == 2
    finally:
        pool.close()
    with database.superuser() as conn:
        kinds = dict(conn.execute("SELECT task_kind, id FROM mes.pm_tasks WHERE machine_id = %s",
                                  (machine,)).fetchall())
    yield Raised(machine, kinds["condition"], kinds["corrective"], event, stop)


def test_times_are_in_the_plants_zone_and_the_zone_is_named(board: Board, tenants: Tenants,
                                                            raised: Raised) -> None:
    page = board.signed_in("a1_tech")
    assert page.locator(".zone").inner_text().startswith(f"Times in {ZONE};")
    # The seeded stop of 2026-01-05 08:00-08:05 UTC, on that day in Tokyo.
    page.goto(f"/board/machines/{tenants.a.machines['a1']}?day=2026-01-05")
    assert page.locator(".zone").inner_text().startswith(f"Times in {ZONE}")
    stops = page.locator(".stops").inner_text()
    assert "2026-01-05 17:00 JST \N{EN DASH} 2026-01-05 17:05 JST" in stops, stops
    assert "UTC" not in page.locator("main").inner_text()
    # Tokyo's day: its first known state (running from 17:00 local) begins 17/24 along.
    first = page.locator("svg.timeline rect[class^=state-]").first
    assert abs(float(first.get_attribute("x")) - 17 / 24 * 1000) < 0.5
    page.goto("/board/tasks")
    assert page.locator(".zone").inner_text() == f"Times in {ZONE}."
    corrective = page.locator(f'.task[data-task="{raised.corrective}"]')
    assert f"due {local(raised.stop[0])}" in corrective.inner_text()
    # Someone of the whole organization sees each plant's zone named.
    admin = board.signed_in("a_admin")
    assert admin.locator(".zone").inner_text().startswith(
        f"Times in Plant a1 {ZONE}, Plant a2 UTC;")


def test_tasks_without_a_schedule_show_where_they_came_from_and_are_worked(
        board: Board, raised: Raised) -> None:
    page = board.signed_in("a1_tech")
    page.goto("/board/tasks")
    condition = page.locator(f'.task[data-task="{raised.condition}"]')
    corrective = page.locator(f'.task[data-task="{raised.corrective}"]')
    assert condition.locator("h3").inner_text().startswith("Coolant hot")
    assert condition.locator(".source").inner_text().startswith("Condition rule Coolant hot")
    assert "Check the coolant pump and the filter." in condition.inner_text()
    readings = condition.locator(".evidence a")
    t0 = raised.stop[0] - timedelta(minutes=20)
    # The rows that tripped it: above 80 for the rule's 60 s.
    tripped = (local(t0 + timedelta(minutes=6)), local(t0 + timedelta(minutes=7)))
    assert readings.inner_text() == f"2 readings (81 to 82) from {tripped[0]} to {tripped[1]}"
    assert readings.get_attribute("href").startswith(f"/board/machines/{raised.machine}?day=")
    assert corrective.locator("h3").inner_text().startswith("Breakdown: fault E-17")
    assert corrective.locator(".source").inner_text().startswith("Corrective rule Breakdown")
    stop = corrective.locator(".evidence a")
    assert stop.inner_text() == (f"stop fault E-17 from {local(raised.stop[0])} "
                                 f"to {local(raised.stop[1])}")
    board.shot(page, "tasks-condition-and-corrective")
    phone = board.signed_in("a1_tech", width=360, height=740)
    for name, path in (("tasks-cards", "/board/tasks"),
                       ("machine-tasks", f"/board/machines/{raised.machine}")):
        phone.goto(path)
        assert board.overflow(phone) <= 0, f"{name}: wider than 360 px"
        board.shot(phone, f"{name}-360px")

    # The evidence opens the machine's day at the stop; the tasks are worked right there.
    stop.click()
    page.wait_for_url(f"**/board/machines/{raised.machine}?day=*")
    assert page.locator(f"#stop-{raised.event}").is_visible()
    card = page.locator(f'#machine-tasks .task[data-task="{raised.condition}"]')
    assert card.count() == 1
    assert page.locator(f'#machine-tasks .task[data-task="{raised.corrective}"]').count() == 1
    board.shot(page, "machine-with-tasks")
    machine_page = page.url.split("#")[0]

    def act(button: str, notice: str) -> None:
        with page.expect_navigation():
            card.get_by_role("button", name=button).click()
        assert page.get_by_role("status").inner_text() == notice
        assert page.url.startswith(machine_page), "back where the form was"

    act("Acknowledge", "Task acknowledged.")
    act(CHECKS[0], "Ticked.")
    assert card.get_by_role("button", name=CHECKS[0]).get_attribute("aria-pressed") == "true"
    assert card.get_by_role("button", name=CHECKS[1]).get_attribute("aria-pressed") == "false"
    card.get_by_label("Notes").fill("pump impeller worn, replaced")
    act("Complete", "Task completed.")
    assert "done" in page.locator(f'#machine-done [data-task="{raised.condition}"]').inner_text()

    page.goto("/board/tasks")
    card = page.locator(f'.task[data-task="{raised.corrective}"]')
    with page.expect_navigation():
        card.get_by_role("button", name="Start").click()
    assert page.get_by_role("status").inner_text() == "Task started."
    card.get_by_label("Reason to skip").fill("the fault was a sensor, replaced under warranty")
    with page.expect_navigation():
        card.get_by_role("button", name="Skip").click()
    assert page.get_by_role("status").inner_text() == "Task skipped."
    assert page.locator(f'#my-tasks [data-task="{raised.corrective}"], '
                        f'#free-tasks [data-task="{raised.corrective}"]').count() == 0
    done = page.locator(f'#done-tasks [data-task="{raised.corrective}"]').inner_text()
    assert "skipped" in done and "sensor" in done, done

    api = board.api
    condition_task = api.ok("a1_tech", "GET", f"/v1/pm/tasks/{raised.condition}")
    assert (condition_task["status"], condition_task["notes"]) == (
        "done", "pump impeller worn, replaced")
    assert [i["done"] for i in condition_task["checklist"]] == [True, False]
    assert api.ok("a1_tech", "GET", f"/v1/pm/tasks/{raised.corrective}")["status"] == "skipped"


def test_a_user_of_another_plant_sees_none_of_it(board: Board, tenants: Tenants,
                                                 raised: Raised) -> None:
    theirs = [str(tenants.a.machines["a1"]), str(raised.machine), str(raised.condition),
              str(raised.corrective), "Coolant hot", "Press a1"]
    for user in ("a2_tech", "b_admin"):
        page = board.signed_in(user)
        for path in ("/board", "/board/tasks", "/board/handover"):
            page.goto(path)
            html = page.content()
            assert not [x for x in theirs if x in html], (user, path)
        for path in (f"/board/machines/{raised.machine}",
                     f"/board/machines/{tenants.a.machines['a1']}"):
            response = page.goto(path)
            assert response is not None and response.status == 404, (user, path)
            assert page.get_by_role("heading", name="Not found").is_visible()
        board.shot(page, f"not-found-{user}")
        # Acting on a task of another plant, with this sign-in's own form token: not there.
        if user == "a2_tech":  # a technician: b_admin may not work tasks at all
            page.goto("/board/tasks")
            csrf = page.locator("input[name=csrf]").first.get_attribute("value")
            answer = page.request.post(f"/board/tasks/{raised.corrective}/acknowledge",
                                       form={"csrf": csrf}, max_redirects=0)
            assert answer.status == 303
            assert f"Not%20done%3A%20no%20PM%20task%20{raised.corrective}" in \
                answer.headers["location"], answer.headers["location"]
