"""Exactly once: two engine processes sweeping the same plant at the same time raise each
occurrence once and skip none; an engine killed (SIGKILL) between deciding and committing
leaves nothing behind, and the next run raises every occurrence once."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants
from tests.maintenance.helpers import add_machine, add_schedule, tasks_of

START = datetime(2026, 1, 1, 6, 0, tzinfo=UTC)


def _child(db: TestDatabase, tenants: Tenants, steps: int, *extra: str
           ) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "tests.maintenance.engine_child", db.app_url,
         str(tenants.a.id), str(tenants.a2), START.isoformat(), str(steps),
         str(timedelta(days=1).total_seconds()), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_two_engines_at_once_raise_each_occurrence_once(database: TestDatabase,
                                                        tenants: Tenants) -> None:
    kind = "lathe-two-engines"
    machines = [add_machine(database, tenants, "a2", kind=kind)[1] for _ in range(4)]
    schedule = add_schedule(database, tenants, "a2", machine_kind=kind, trigger_kind="calendar",
                            calendar_every=1, calendar_unit="days", anchor_at=START,
                            catch_up="all")
    steps = 60
    engines = [_child(database, tenants, steps) for _ in range(2)]
    outputs = [e.communicate(timeout=240) for e in engines]
    assert [e.returncode for e in engines] == [0, 0], [err for _, err in outputs]
    raised = sum(int(out) for out, _ in outputs)
    tasks = tasks_of(database, "schedule_id", schedule)
    # Day 0 is the anchor itself: occurrences 1..steps-1 fall due within the run.
    expected = {(m, n) for m in machines for n in range(1, steps)}
    assert {(t["machine_id"], t["occurrence"]) for t in tasks} == {(str(m), n)
                                                                   for m, n in expected}
    assert len(tasks) == len(expected) == raised  # none twice: each insert counted once


def test_an_engine_killed_before_commit_leaves_nothing_and_none_is_skipped(
        database: TestDatabase, tenants: Tenants) -> None:
    _, machine = add_machine(database, tenants, "a2")
    schedule = add_schedule(database, tenants, "a2", machine_id=machine,
                            trigger_kind="calendar", calendar_every=1, calendar_unit="days",
                            anchor_at=START, catch_up="all")
    crashed = _child(database, tenants, 5, "--crash")
    crashed.communicate(timeout=120)
    assert crashed.returncode == -9
    assert tasks_of(database, "schedule_id", schedule) == []
    again = _child(database, tenants, 5)
    out, err = again.communicate(timeout=120)
    assert out.strip() == "4"
    assert again.returncode == 0, err
    assert [t["occurrence"] for t in tasks_of(database, "schedule_id", schedule)] == [1, 2, 3, 4]
