"""`mes maintenance schedule add|list`, `tasks` and `task STEP` from the command line, and the
schedule validation's messages (BAD_SCHEDULES: broken inputs and what they must say)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from core.maintenance.schedules import ScheduleSpec
from core.tenancy import Tenant
from ingest.maintenance.engine import MaintenanceEngine
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants
from tests.maintenance.helpers import Clock

BAD_SCHEDULES = [
    ({"name": "x", "every": "1 week"}, "either machine"),
    ({"name": "x", "machine": "m", "kind": "press", "every": "1 week"}, "either machine"),
    ({"name": "x", "machine": "m"}, "give a trigger"),
    ({"name": "x", "machine": "m", "every": "fortnightly"}, "N days, N weeks or N months"),
    ({"name": "x", "machine": "m", "every": "0 days"}, "N >= 1"),
    ({"name": "x", "machine": "m", "cron": "61 * * * *"}, "cron '61 \\* \\* \\* \\*'"),
    ({"name": "x", "machine": "m", "every": "1 day", "cron": "0 6 * * *"}, "not both"),
    ({"name": "x", "machine": "m", "cycles": 100, "lead_meter": 100}, "must be below"),
    ({"name": "x", "machine": "m", "cycles": 100, "lead": "1 day"}, "use lead_meter"),
    ({"name": "x", "machine": "m", "every": "1 day", "lead": "soon"}, "N seconds, minutes, hours"),
    ({"name": "x", "machine": "m", "every": "1 day", "anchor": "2026-01-01T06:00"},
     "needs a UTC offset"),
    ({"name": "x", "machine": "m", "runtime_hours": 5, "cycles": 5}, "not both"),
]


@pytest.mark.parametrize(("spec", "message"), BAD_SCHEDULES)
def test_bad_schedules_are_refused_with_what_to_fix(spec: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ScheduleSpec(**spec)


def test_a_calendar_and_a_meter_make_a_combined_schedule() -> None:
    spec = ScheduleSpec(name="500 h or 6 months", kind="press", every="6 months",
                        runtime_hours=500, lead="1 week")
    cols = spec.columns()
    assert (spec.trigger_kind(), cols["meter_kind"], cols["calendar_every"],
            cols["calendar_unit"], cols["lead_time"]) == (
        "combined", "runtime_hours", 6, "months", timedelta(weeks=1))


def _mes(db: TestDatabase, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MES_")},
           "MES_DATABASE__URL": db.superuser_url, "MES_DATABASE__APP_URL": db.app_url}
    return subprocess.run([sys.executable, "-m", "mes.cli", "maintenance", *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_schedule_add_list_tasks_and_steps_from_the_command_line(
        database: TestDatabase, tenants: Tenants, engine: MaintenanceEngine,
        clock: Clock) -> None:
    anchor = datetime(2026, 5, 4, 6, 0, tzinfo=UTC)
    added = _mes(database, "schedule", "add", "--org", "org-a", "--plant", "a1", "--name",
                 "Grease rails", "--machine", "a1-press", "--every", "1 week", "--check",
                 "rails", "--check", "belts", "--priority", "high", "--assignee",
                 "tech-a1@org-a.test", "--anchor", anchor.isoformat())
    assert added.returncode == 0, added.stderr
    assert "(calendar)" in added.stdout
    refused = _mes(database, "schedule", "add", "--org", "org-a", "--plant", "a1", "--name",
                   "x", "--machine", "no-such", "--every", "1 week")
    assert refused.returncode == 1
    assert "no machine 'no-such' in this plant" in refused.stderr
    invalid = _mes(database, "schedule", "add", "--org", "org-a", "--plant", "a1", "--name",
                   "x", "--machine", "a1-press", "--every", "sometimes")
    assert invalid.returncode == 1 and "every: Value error" in invalid.stderr
    listed = _mes(database, "schedule", "list", "--org", "org-a", "--plant", "a1")
    assert "Grease rails" in listed.stdout and "1 weeks" in listed.stdout
    assert "a2-press" not in listed.stdout  # plant a2's schedules stay out of a1's context

    clock.now = anchor + timedelta(weeks=1)
    engine.calendar(Tenant(tenants.a.id, tenants.a1))
    tasks = _mes(database, "tasks", "--org", "org-a", "--plant", "a1")
    assert tasks.returncode == 0, tasks.stderr
    line = next(ln for ln in tasks.stdout.splitlines() if "Grease rails" in ln)
    assert "a1-press" in line and "high" in line and "tech-a1@org-a.test" in line
    task_id = re.search(r"^\s+([0-9a-f-]{36})$",
                        tasks.stdout.split(line, 1)[1], re.M)
    assert task_id
    skip = _mes(database, "task", "skip", task_id[1], "--org", "org-a", "--plant", "a1",
                "--user", "tech-a1@org-a.test")
    assert skip.returncode == 1 and "needs a reason" in skip.stderr
    done = _mes(database, "task", "complete", task_id[1], "--org", "org-a", "--plant", "a1",
                "--user", "tech-a1@org-a.test")
    assert done.returncode == 0 and done.stdout.strip().endswith("done")
    after = _mes(database, "tasks", "--org", "org-a", "--plant", "a1")
    assert "Grease rails" not in after.stdout
