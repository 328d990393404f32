"""The demo's maintenance: schedules and a condition rule seeded from
config/maintenance/demo.yaml on the North plant, the tasks in the live view, and the summary's
check of the tasks against what the simulator's truth log implies:

- cycles: the occurrence raised is floor(cycles the truth counts between the first and last
  landed counter rows / interval) (the schedule's meter starts at its first row);
- calendar (cron): one task per machine and due minute since the seeding;
- runtime and condition tasks are counted (their exact due instant depends on when rows land).
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg.types.json import Jsonb
from rich.table import Table

from core.maintenance.calendar import Calendar
from core.maintenance.schedules import ScheduleSpec, insert_schedule
from core.tenancy import Tenant, tenant_transaction
from mes.services.broker import PROJECT_ROOT

DEMO_MAINTENANCE = PROJECT_ROOT / "config" / "maintenance" / "demo.yaml"


@dataclass
class SeededMaintenance:
    """What was seeded, and when (the schedules' anchor)."""

    tenant: Tenant
    anchor: datetime
    specs: dict[uuid.UUID, ScheduleSpec]


def seed_maintenance(app_url: str, organization_id: uuid.UUID, plants: dict[str, uuid.UUID],
                     path: Path = DEMO_MAINTENANCE) -> SeededMaintenance:
    """Insert the file's schedules and condition rules, anchored now."""
    doc = yaml.safe_load(path.read_text())
    tenant = Tenant(organization_id, plants[doc["plant"]])
    anchor = datetime.now(UTC)
    specs = {}
    with psycopg.connect(app_url, autocommit=True) as conn, tenant_transaction(conn, tenant):
        for entry in doc.get("schedules", []):
            spec = ScheduleSpec(**entry, anchor=anchor)
            specs[insert_schedule(conn, spec, organization_id, tenant.plant_id)] = spec
        for rule in doc.get("conditions", []):
            cols: dict[str, Any] = dict(rule)
            cols.update(machine_kind=cols.pop("kind", None), organization_id=organization_id,
                        plant_id=tenant.plant_id, active_from=anchor,
                        checklist=Jsonb(cols.get("checklist", [])))
            conn.execute(f"INSERT INTO mes.pm_condition_rules ({', '.join(cols)}) "
                         f"VALUES ({', '.join(['%s'] * len(cols))})", list(cols.values()))
    return SeededMaintenance(tenant, anchor, specs)


def read_tasks(app_url: str, tenant: Tenant) -> list[tuple[Any, ...]]:
    """(machine, kind, title, occurrence, status, raised at, schedule id) of every task."""
    with psycopg.connect(app_url) as conn, tenant_transaction(conn, tenant):
        return conn.execute(
            "SELECT m.code, t.task_kind, t.title, t.occurrence, t.status, t.created_at, "
            "t.schedule_id FROM mes.pm_tasks t JOIN mes.machines m ON m.id = t.machine_id "
            "ORDER BY t.created_at").fetchall()


def render_tasks(tasks: list[tuple[Any, ...]], shown: int = 8) -> Table:
    """The newest tasks, and a count per kind."""
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t[1]] = counts.get(t[1], 0) + 1
    title = "maintenance tasks: " + (", ".join(f"{k} {n}" for k, n in sorted(counts.items()))
                                     or "none yet")
    table = Table(title=title, title_justify="left")
    for column in ("raised", "machine", "kind", "task", "#", "status"):
        table.add_column(column)
    for machine, kind, title_, n, status, at, _ in tasks[-shown:]:
        table.add_row(f"{at:%H:%M:%S}", machine, kind, title_, str(n), status)
    return table


def _truth_cycles(truth: Path, machine: str, since: datetime, until: datetime) -> int:
    count = 0
    for line in truth.read_text().splitlines():
        r = json.loads(line)
        if r.get("type") == "cycle" and r["machine"] == machine and \
                since < datetime.fromisoformat(r["ts"]) <= until:
            count += 1
    return count


def check_tasks(app_url: str, seeded: SeededMaintenance, truth: Path,
                machines: list[str]) -> tuple[list[str], bool]:
    """Summary lines and whether every checked count matched."""
    tasks = read_tasks(app_url, seeded.tenant)
    lines, ok = [], True
    by_schedule: dict[Any, list[tuple[Any, ...]]] = {}
    for t in tasks:
        by_schedule.setdefault(t[6], []).append(t)
    now = datetime.now(UTC)
    with psycopg.connect(app_url) as conn, tenant_transaction(conn, seeded.tenant):
        for schedule, spec in seeded.specs.items():
            raised = by_schedule.get(schedule, [])
            if spec.cycles and spec.machine:
                row = conn.execute(
                    "SELECT min(c.ts), max(c.ts) FROM mes.v_machine_counter c JOIN "
                    "mes.machines m ON m.id = c.machine_id WHERE m.code = %s AND c.tag = %s "
                    "AND c.ts >= %s", (spec.machine, spec.tag, seeded.anchor)).fetchone()
                first, last = row if row else (None, None)
                cycles = _truth_cycles(truth, spec.machine, first, last) if first else 0
                expected = math.floor(cycles / spec.cycles)
                got = max((t[3] for t in raised), default=0)
                ok &= got == expected
                lines.append(f"  {spec.name}: {cycles} cycles landed per the truth -> "
                             f"occurrence {expected}; raised up to {got}")
            elif spec.cron:
                cal = Calendar(UTC, cron=spec.cron)
                due, t = 0, seeded.anchor
                while (t := cal.after(t)) <= now:
                    due += 1
                per_machine = {m: sum(1 for x in raised if x[0] == m) for m in machines}
                # A minute that turned while the summary was read may or may not be raised yet.
                fine = all(n in (due, due - 1) for n in per_machine.values())
                ok &= fine
                lines.append(f"  {spec.name}: {due} due minute(s) per machine since the "
                             f"seeding; raised {per_machine}")
            else:
                lines.append(f"  {spec.name}: {len(raised)} task(s) raised")
    conditions = [t for t in tasks if t[1] == "condition"]
    lines.append(f"  condition rules: {len(conditions)} task(s), one per episode")
    return lines, ok
