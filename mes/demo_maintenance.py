"""The demo's maintenance: schedules and a condition rule seeded from
config/maintenance/demo.yaml on the North plant, the tasks in the live view, and the summary's
check of each schedule's and rule's tasks against what the simulator's truth log implies
(after one final evaluation of everything that landed):

- cycles: the occurrence raised is floor(cycles the truth counts between the first and last
  landed counter rows / interval) (the schedule's meter starts at its first row);
- runtime: floor(seconds in running per the truth's state records, from the seeding to the
  machine's latest landed row / interval), within a band of a sampling slack per state change;
- condition (temperature): per machine, the episodes the rule's definition finds in the
  truth's temperature samples from the seeding to the latest landed row, within a band of the
  edge's deadband and a sampling slack;
- calendar (cron): one task per machine and due minute since the seeding.
"""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import yaml
from psycopg_pool import ConnectionPool
from rich.table import Table

from core.maintenance.calendar import Calendar
from core.maintenance.rules import ConditionRuleSpec, insert_condition_rule
from core.maintenance.schedules import ScheduleSpec, insert_schedule, parse_duration
from core.tenancy import Tenant, tenant_transaction
from ingest.maintenance.engine import MaintenanceEngine
from ingest.maintenance.meters import Meters
from mes.services.broker import PROJECT_ROOT
from mes.sim.truth import TEMPERATURE_STEP, Truth

DEMO_MAINTENANCE = PROJECT_ROOT / "config" / "maintenance" / "demo.yaml"
# How late (wall seconds) the edge may see a change the truth logs: its poll period (0.5 s,
# mes.sim.tagmap) plus a simulator tick (0.1 s).
SAMPLING_SLACK_S = 0.6


@dataclass
class SeededMaintenance:
    """What was seeded, and when (the schedules' anchor)."""

    tenant: Tenant
    anchor: datetime
    specs: dict[uuid.UUID, ScheduleSpec]
    rules: dict[uuid.UUID, ConditionRuleSpec]


def seed_maintenance(app_url: str, organization_id: uuid.UUID, plants: dict[str, uuid.UUID],
                     path: Path = DEMO_MAINTENANCE) -> SeededMaintenance:
    """Insert the file's schedules and condition rules, anchored now."""
    doc = yaml.safe_load(path.read_text())
    tenant = Tenant(organization_id, plants[doc["plant"]])
    anchor = datetime.now(UTC)
    specs, rules = {}, {}
    with psycopg.connect(app_url, autocommit=True) as conn, tenant_transaction(conn, tenant):
        for entry in doc.get("schedules", []):
            spec = ScheduleSpec(**entry, anchor=anchor)
            specs[insert_schedule(conn, spec, organization_id, tenant.plant_id)] = spec
        for entry in doc.get("conditions", []):
            rule = ConditionRuleSpec(**entry, active_from=anchor)
            rules[insert_condition_rule(conn, rule, organization_id, tenant.plant_id)] = rule
    return SeededMaintenance(tenant, anchor, specs, rules)


def read_tasks(app_url: str, tenant: Tenant) -> list[tuple[Any, ...]]:
    """(machine, kind, title, occurrence, status, raised at, schedule id, condition rule id)
    of every task."""
    with psycopg.connect(app_url) as conn, tenant_transaction(conn, tenant):
        return conn.execute(
            "SELECT m.code, t.task_kind, t.title, t.occurrence, t.status, t.created_at, "
            "t.schedule_id, t.condition_rule_id FROM mes.pm_tasks t "
            "JOIN mes.machines m ON m.id = t.machine_id ORDER BY t.created_at").fetchall()


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
    for machine, kind, title_, n, status, at, *_ in tasks[-shown:]:
        table.add_row(f"{at:%H:%M:%S}", machine, kind, title_, str(n), status)
    return table


def _truth_cycles(truth: Truth, machine: str, since: datetime, until: datetime) -> int:
    return sum(1 for r in truth.cycles(machine)
               if since < datetime.fromisoformat(r["ts"]) <= until)


def _truth_running_s(truth: Truth, machine: str, since: datetime, until: datetime
                     ) -> tuple[float, int]:
    """Seconds in running between since and until per the truth's state records (the state
    at `since` is the last one before it), and in how many stretches."""
    states = [(datetime.fromisoformat(r["ts"]), r["state"]) for r in truth.states(machine)]
    running, stretches = 0.0, 0
    for k, (ts, state) in enumerate(states):
        end = states[k + 1][0] if k + 1 < len(states) else until
        start, end = max(ts, since), min(end, until)
        if state == "running" and end > start:
            running += (end - start).total_seconds()
            stretches += 1
    return running, stretches


def _episodes(samples: list[tuple[datetime, float]], above: bool, threshold: float,
              clear: float, for_s: float) -> int:
    """Episodes of a telemetry rule in samples (docs/maintenance.md, "Condition rules"),
    counted here on their own, not by the engine's code."""
    sign = 1.0 if above else -1.0
    count, on, run_start = 0, False, None
    for ts, value in samples:
        v = sign * value
        if on:
            on = v > sign * clear
            continue
        if v <= sign * threshold:
            run_start = None
            continue
        run_start = run_start or ts
        if (ts - run_start).total_seconds() >= for_s:
            count, on, run_start = count + 1, True, None
    return count


def _band(values: list[int]) -> str:
    return str(values[0]) if min(values) == max(values) else f"{min(values)}..{max(values)}"


def _horizons(conn: psycopg.Connection) -> dict[str, datetime]:
    """Each machine's latest landed row (any series): where its meters stop."""
    return dict(conn.execute(
        "SELECT m.code, greatest((SELECT max(ts) FROM mes.v_machine_status_history h "
        "WHERE h.machine_id = m.id), (SELECT max(ts) FROM mes.v_machine_counter c "
        "WHERE c.machine_id = m.id), (SELECT max(ts) FROM mes.v_machine_telemetry t "
        "WHERE t.machine_id = m.id)) FROM mes.machines m").fetchall())


def _landed_runtime_s(conn: psycopg.Connection, machine: str, since: datetime) -> float:
    """The engine's runtime meter of `machine` since `since`, in seconds (for the summary)."""
    row = conn.execute("SELECT id FROM mes.machines WHERE code = %s", (machine,)).fetchone()
    if row is None:
        return 0.0
    return Meters(conn, datetime.now(UTC)).reading(row[0], "runtime_hours", None, since) * 3600


def final_sweep(app_url: str, tenant: Tenant) -> None:
    """One more evaluation of everything that landed (a second engine: exactly once holds),
    so that the tasks checked are those of every landed row."""
    pool = ConnectionPool(app_url, min_size=1, max_size=1, kwargs={"autocommit": True})
    try:
        MaintenanceEngine(pool).sweep(tenant)
    finally:
        pool.close()


def check_tasks(app_url: str, seeded: SeededMaintenance, truth_path: Path,
                machines: list[str]) -> tuple[list[str], bool]:
    """Summary lines (PASS or FAIL per schedule and rule, and machine) and whether all
    passed. Each expected count comes from the simulator's truth log: cycles, time in
    running, temperature samples and the clock, with a band where the edge's sampling (its
    poll period, the telemetry deadband) can move a boundary."""
    final_sweep(app_url, seeded.tenant)
    truth = Truth.load(truth_path)
    tasks = read_tasks(app_url, seeded.tenant)
    lines: list[str] = []
    by_source: dict[Any, list[tuple[Any, ...]]] = {}
    for t in tasks:
        by_source.setdefault(t[6] or t[7], []).append(t)

    def verdict(ok: bool, text: str) -> bool:
        lines.append(f"  {'PASS' if ok else 'FAIL'}  {text}")
        return ok

    ok = True
    now = datetime.now(UTC)
    with psycopg.connect(app_url) as conn, tenant_transaction(conn, seeded.tenant):
        horizons = _horizons(conn)
        for schedule, spec in seeded.specs.items():
            raised = by_source.get(schedule, [])
            got = max((t[3] for t in raised), default=0)
            if spec.cycles and spec.machine:
                row = conn.execute(
                    "SELECT min(c.ts), max(c.ts) FROM mes.v_machine_counter c JOIN "
                    "mes.machines m ON m.id = c.machine_id WHERE m.code = %s AND c.tag = %s "
                    "AND c.ts >= %s", (spec.machine, spec.tag, seeded.anchor)).fetchone()
                first, last = row if row else (None, None)
                cycles = _truth_cycles(truth, spec.machine, first, last) if first else 0
                expected = math.floor(cycles / spec.cycles)
                ok &= verdict(got == expected, f"{spec.name} (every {spec.cycles:g} cycles, "
                              f"{spec.machine}): {cycles} cycles landed per the truth -> "
                              f"occurrence {expected}; raised up to {got}")
            elif spec.runtime_hours and spec.machine:
                until = horizons.get(spec.machine) or seeded.anchor
                running, stretches = _truth_running_s(truth, spec.machine, seeded.anchor,
                                                      until)
                # Each end of a stretch in running lands up to SAMPLING_SLACK_S late.
                slack = SAMPLING_SLACK_S * stretches
                interval = spec.runtime_hours * 3600
                expected = [math.floor(max(0.0, running + d) / interval)
                            for d in (0.0, -slack, slack)]
                landed = _landed_runtime_s(conn, spec.machine, seeded.anchor)
                ok &= verdict(min(expected) <= got <= max(expected),
                              f"{spec.name} (every {interval:g} s running, {spec.machine}): "
                              f"{running:.1f} s running per the truth in {stretches} "
                              f"stretch(es) (+-{slack:.1f} s; {landed:.1f} s per the landed "
                              f"rows) -> occurrence {_band(expected)}; raised up to {got}")
            elif spec.cron:
                cal = Calendar(UTC, cron=spec.cron)
                due, t = 0, seeded.anchor
                while (t := cal.after(t)) <= now:
                    due += 1
                per_machine = {m: sum(1 for x in raised if x[0] == m) for m in machines}
                # A minute that turned while the summary was read may or may not be raised yet.
                fine = all(n in (due, due - 1) for n in per_machine.values())
                ok &= verdict(fine, f"{spec.name} (cron {spec.cron}): {due} due minute(s) per "
                              f"machine since the seeding; raised {per_machine}")
            else:
                lines.append(f"  ----  {spec.name}: {len(raised)} task(s) raised (no truth "
                             "check for this kind of schedule)")
        for rule, spec in seeded.rules.items():
            raised = by_source.get(rule, [])
            if spec.tag != "temperature":
                lines.append(f"  ----  {spec.name}: {len(raised)} task(s) (no truth for tag "
                             f"{spec.tag})")
                continue
            threshold = spec.above if spec.above is not None else spec.below
            assert threshold is not None
            above = spec.above is not None
            clear = threshold if spec.clear is None else spec.clear
            for_s = parse_duration(spec.lasting).total_seconds() if spec.lasting else 0.0
            # The edge reports a move of 0.1 C or more: a value within that of the threshold
            # or the clearing value, or a run within the slack of the time, may go either way.
            step = TEMPERATURE_STEP if above else -TEMPERATURE_STEP
            for machine in _targets(spec, machines):
                until = horizons.get(machine) or seeded.anchor
                samples = [(ts, r["value"]) for r in truth.of("temperature", machine)
                           if seeded.anchor < (ts := datetime.fromisoformat(r["ts"])) <= until]
                expected = [_episodes(samples, above, threshold + k * step, clear - k * step,
                                      max(0.0, for_s + k * SAMPLING_SLACK_S))
                            for k in (0, -1, 1)]
                got = sum(1 for t in raised if t[0] == machine)
                ok &= verdict(min(expected) <= got <= max(expected),
                              f"{spec.name} ({spec.tag} {'above' if above else 'below'} "
                              f"{threshold:g} for {for_s:g} s, clear {clear:g}; {machine}): "
                              f"{_band(expected)} episode(s) per the truth; raised {got}")
    return lines, ok


def _targets(spec: ConditionRuleSpec, machines: list[str]) -> list[str]:
    return [spec.machine] if spec.machine else machines
