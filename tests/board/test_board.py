"""The board in Debian's chromium against `mes api`, its database and the ingest's write path.

Here the state change behind a tile's colour is written through core.staging.write_staged under
the machine's tenant (what the ingest does with a message): the fast check of the page's side.
test_board_live.py takes the same change through the whole running pipeline (simulator, agent,
broker, ingest) and holds it to the issue's 2 s."""

from __future__ import annotations

import time
from datetime import UTC, datetime

from api.board.render import STATE_LABELS
from tests.board.conftest import Board, write_state
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants


def tile(page, tenants_org, code: str):
    return page.locator(f'.tile[data-machine="{tenants_org.machines[code]}"]')


def test_sign_in_shows_the_plant_in_the_users_scope_only(board: Board,
                                                         tenants: Tenants) -> None:
    page = board.signed_in("a1_tech")
    assert page.get_by_role("heading", name="Plant").is_visible()
    assert tile(page, tenants.a, "a1").count() == 1
    assert tile(page, tenants.a, "a2").count() == 0, "another plant of the organization"
    assert tile(page, tenants.b, "b1").count() == 0, "another organization"
    cookie = next(c for c in page.context.cookies() if c["name"] == "mes_board")
    assert (cookie["httpOnly"], cookie["secure"], cookie["sameSite"]) == (True, True, "Strict")
    assert cookie["expires"] > time.time()
    board.shot(page, "plant")


def test_a_wrong_token_is_refused(board: Board) -> None:
    page = board.session()
    page.goto("/board/login")
    page.get_by_label("Your API token").fill("mes_" + "0" * 32 + "_" + "x" * 43)
    page.get_by_role("button", name="Sign in").click()
    assert page.get_by_role("alert").inner_text() == "This token is unknown, expired or revoked."
    assert not [c for c in page.context.cookies() if c["name"] == "mes_board"]
    page.goto("/board")
    assert page.url.endswith("/board/login"), "without a sign-in the board sends you to login"


def test_a_tiles_colour_follows_a_state_change_within_2_s(board: Board, database: TestDatabase,
                                                         tenants: Tenants) -> None:
    page = board.signed_in("a_admin")
    a1 = tile(page, tenants.a, "a1")
    before = a1.get_attribute("data-state")
    new = "fault" if before != "fault" else "running"
    page.wait_for_timeout(300)  # the page's EventSource is open
    write_state(database, tenants.a, "a1", datetime.now(UTC), new, "E42")
    written = time.monotonic()
    page.wait_for_selector(f'.tile[data-machine="{tenants.a.machines["a1"]}"].state-{new}',
                           timeout=2000)
    assert time.monotonic() - written < 2
    assert a1.locator("[data-field=state]").inner_text() in ("Fault", "Running")
    assert "state-" + before not in a1.get_attribute("class")
    colour = a1.evaluate("e => getComputedStyle(e).backgroundColor")
    assert colour == ("rgb(179, 38, 30)" if new == "fault" else "rgb(27, 122, 58)")
    board.shot(page, "plant-after-state-change")


def test_a_technician_completes_a_task_and_a_second_session_sees_the_conflict(
        board: Board, tenants: Tenants) -> None:
    first = board.signed_in("a1_tech")
    second = board.signed_in("a1_tech2")
    for page in (first, second):
        page.goto("/board/tasks")
    task = first.locator("#free-tasks .task").first
    task_id = task.get_attribute("data-task")
    # The second technician is typing into the same task: the live reload leaves the page be.
    stale = second.locator(f'.task[data-task="{task_id}"]')
    stale.get_by_label("Meter reading").fill("10350")
    board.shot(first, "tasks")
    task.get_by_label("Meter reading").fill("10342")
    task.get_by_role("button", name="Complete").click()
    first.get_by_role("status").wait_for()
    assert first.get_by_role("status").inner_text() == "Task completed."
    assert first.locator(f'#my-tasks [data-task="{task_id}"], #free-tasks [data-task="{task_id}"]'
                         ).count() == 0
    done = first.locator(f'#done-tasks [data-task="{task_id}"]')
    assert "done" in done.inner_text() and "meter 10342" in done.inner_text()
    # The second technician's page was drawn before: completing is refused, said plainly.
    stale.get_by_role("button", name="Complete").click()
    second.get_by_role("status").wait_for()
    notice = second.get_by_role("status").inner_text()
    assert notice.startswith("Not done:") and "changed" in notice, notice
    assert board.api.ok("a1_tech", "GET", f"/v1/pm/tasks/{task_id}")["completed_by_user_id"] \
        == str(board.api.users.ids["a1_tech"])


def test_logout_ends_the_session(board: Board) -> None:
    page = board.signed_in("a1_tech")
    page.get_by_role("button", name="Sign out").click()
    page.wait_for_url("**/board/login")
    assert not [c for c in page.context.cookies() if c["name"] == "mes_board"]
    page.goto("/board/tasks")
    assert page.url.endswith("/board/login")


def test_every_page_fits_360_px_without_horizontal_scroll(board: Board,
                                                          tenants: Tenants) -> None:
    page = board.signed_in("a1_lead", width=360, height=740)
    machine = f"/board/machines/{tenants.a.machines['a1']}?day=2026-01-05"
    for name, path in (("plant", "/board"), ("machine", machine), ("tasks", "/board/tasks"),
                       ("handover", "/board/handover")):
        page.goto(path)
        overflow = board.overflow(page)
        assert overflow <= 0, f"{name}: {overflow} px of horizontal scroll at 360 px"
        board.shot(page, f"{name}-360px")


def test_the_keyboard_reaches_the_actions(board: Board, tenants: Tenants) -> None:
    page = board.signed_in("a1_lead")
    page.goto(f"/board/machines/{tenants.a.machines['a1']}?day=2026-01-05")
    reached = []
    for _ in range(60):
        page.keyboard.press("Tab")
        reached.append(page.evaluate("document.activeElement.textContent.trim() || "
                                     "document.activeElement.getAttribute('aria-label') || "
                                     "document.activeElement.id"))
    assert reached[0] == "Skip to content"
    for action in ("Save reason", "Sign out"):
        assert action in reached, (action, reached)


def test_machine_view_draws_the_days_timeline_and_stops(board: Board, tenants: Tenants) -> None:
    page = board.signed_in("a1_operator")
    day = (datetime(2026, 1, 5, tzinfo=UTC)).date().isoformat()
    page.goto(f"/board/machines/{tenants.a.machines['a1']}?day={day}")
    states = page.locator("svg.timeline rect[class^=state-]")
    assert states.count() >= 3  # running, fault, running from the seed
    assert page.locator("svg.timeline .state-fault title").first.text_content().startswith("Fault")
    page.get_by_label("Reason").first.fill("die-change")
    page.get_by_role("button", name="Save reason").first.click()
    page.get_by_role("status").wait_for()
    assert page.get_by_role("status").inner_text() == "Reason saved."
    assert "die-change" in page.locator(".stops").inner_text()
    board.shot(page, "machine")


def test_a_handover_is_logged_and_acknowledged_by_the_next_shift(board: Board) -> None:
    lead = board.signed_in("a1_lead")
    lead.goto("/board/handover")
    assert lead.get_by_role("heading", name="Stops this shift").is_visible()
    notes = "Press a1 runs slow after the die change; watch the feeder."
    lead.get_by_label("Handover notes").fill(notes)
    lead.get_by_role("button", name="Log handover").click()
    lead.get_by_role("status").wait_for()
    assert lead.get_by_role("status").inner_text() == "Handover logged."
    mine = lead.locator(".handover", has_text=notes)
    assert "Logged by you" in mine.inner_text()
    assert mine.get_by_role("button", name="Acknowledge").count() == 0
    board.shot(lead, "handover")
    operator = board.signed_in("a1_operator")
    operator.goto("/board/handover")
    operator.locator(".handover", has_text=notes).get_by_role("button",
                                                                name="Acknowledge").click()
    operator.get_by_role("status").wait_for()
    assert operator.get_by_role("status").inner_text() == "Handover acknowledged."
    assert "Acknowledged" in operator.locator(".handover", has_text=notes).inner_text()


def _luminance(rgb: str) -> float:
    """WCAG relative luminance of a computed colour "rgb(r, g, b)"."""
    channels = [int(c) / 255 for c in rgb[rgb.index("(") + 1:rgb.index(")")].split(",")[:3]]
    r, g, b = (c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_every_field_is_labelled_and_every_state_colour_is_readable(board: Board,
                                                                   tenants: Tenants) -> None:
    page = board.signed_in("a1_lead")
    machine = f"/board/machines/{tenants.a.machines['a1']}?day=2026-01-05"
    for path in ("/board", machine, "/board/tasks", "/board/handover"):
        page.goto(path)
        unlabelled = page.evaluate("""() => [...document.querySelectorAll(
            'input:not([type=hidden]), select, textarea')]
            .filter(e => !e.labels.length && !e.getAttribute('aria-label')).map(e => e.name)""")
        assert unlabelled == [], (path, unlabelled)
    # Each state's text on its colour, as the stylesheet draws a tile: WCAG AA (4.5:1).
    pairs = page.evaluate("""states => states.map(s => {
        const e = document.createElement('div'); e.className = 'tile state-' + s;
        document.body.append(e); const c = getComputedStyle(e);
        return [s, c.color, c.backgroundColor]; })""", list(STATE_LABELS))
    for state, fg, bg in pairs:
        light, dark = sorted((_luminance(fg), _luminance(bg)), reverse=True)
        ratio = (light + 0.05) / (dark + 0.05)
        assert ratio >= 4.5, f"{state}: {fg} on {bg} is {ratio:.2f}:1"
