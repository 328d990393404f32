"""`mes maintenance run | tasks | task STEP | schedule add|list | rule add|list|disable |
corrective add|list|disable`.

Everything but `run` works as the application role under one organization's (and plant's)
tenant context, named by codes; `run` is the engine on its own (docs/maintenance.md).
"""

from __future__ import annotations

import argparse
import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import FrameType
from typing import TypeVar

import psycopg
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from core import logging as mes_logging
from core.config_model import StrictModel
from core.errors import UserFacingError
from core.maintenance.lifecycle import STEPS, transition
from core.maintenance.rules import (
    ConditionRuleSpec,
    CorrectiveRuleSpec,
    insert_condition_rule,
    insert_corrective_rule,
)
from core.maintenance.schedules import ScheduleRefused, ScheduleSpec, insert_schedule
from core.settings import load_settings
from core.status_server import StatusServer
from core.tenancy import Tenant, tenant_transaction
from ingest.maintenance.completion import meter_at_completion
from ingest.maintenance.settings import MaintenanceSettings

SpecT = TypeVar("SpecT", bound=StrictModel)


def register(sub: argparse._SubParsersAction) -> None:
    """Add `mes maintenance ...` to the `mes` parser."""
    m = sub.add_parser("maintenance", help="maintenance engine, tasks and schedules")
    msub = m.add_subparsers(dest="maintenance_command", required=True, metavar="COMMAND")
    run = msub.add_parser("run", help="run the engine on its own until stopped",
                          description="Evaluate every plant's schedules and rules (sweep every "
                          "maintenance.sweep_s, calendar at due times) and deliver task events, "
                          "until SIGTERM or SIGINT. The ingest runs the same engine after each "
                          "commit unless maintenance.enabled is false.")
    run.add_argument("--status-port", type=int, metavar="PORT",
                     help="serve /health and /metrics on this port (default: none)")
    run.add_argument("--status-host", default="127.0.0.1", metavar="HOST")
    run.set_defaults(func=cmd_run)

    tasks = msub.add_parser("tasks", help="open tasks of a plant, by due time")
    _tenant_args(tasks)
    tasks.add_argument("--machine", help="only this machine (code)")
    tasks.add_argument("--all", action="store_true", help="closed tasks too")
    tasks.add_argument("--limit", type=int, default=50)
    tasks.set_defaults(func=cmd_tasks)

    task = msub.add_parser("task", help="take a task a step: acknowledge, start, complete, skip")
    task.add_argument("step", choices=sorted(STEPS))
    task.add_argument("task_id", type=uuid.UUID)
    _tenant_args(task)
    task.add_argument("--user", required=True, help="who takes the step (e-mail)")
    task.add_argument("--reason", help="why it is skipped (required for skip)")
    task.set_defaults(func=cmd_task)

    sched = msub.add_parser("schedule", help="add or list schedules")
    ssub = sched.add_subparsers(dest="schedule_command", required=True, metavar="COMMAND")
    add = ssub.add_parser("add", help="add a schedule (docs/maintenance.md, \"Schedules\")")
    _target_args(add)
    add.add_argument("--every", help="calendar: N days | N weeks | N months")
    add.add_argument("--cron", help="calendar: a crontab expression, in the plant's zone")
    add.add_argument("--runtime-hours", type=float, help="meter: hours in running")
    add.add_argument("--cycles", type=float, help="meter: increase of a counter tag")
    add.add_argument("--tag", default="cycles", help="the counter tag of --cycles")
    add.add_argument("--lead", help="raise this early (N minutes|hours|days|weeks)")
    add.add_argument("--lead-meter", type=float, default=0, help="raise this many hours or "
                     "cycles early")
    add.add_argument("--floating", action="store_true", help="count from each completion")
    add.add_argument("--tolerance-pct", type=float, default=0)
    add.add_argument("--catch-up", choices=("one", "all"), default="one")
    add.add_argument("--check", action="append", default=[], metavar="ITEM",
                     help="a checklist item (repeat)")
    add.add_argument("--priority", choices=("low", "normal", "high", "urgent"),
                     default="normal")
    add.add_argument("--estimated-minutes", type=int)
    add.add_argument("--assignee", help="default assignee (e-mail)")
    add.add_argument("--anchor", type=datetime.fromisoformat,
                     help="start of the grid and the meter (ISO 8601 with offset; default now)")
    add.set_defaults(func=cmd_schedule_add)
    ls = ssub.add_parser("list", help="schedules of a plant")
    _tenant_args(ls)
    ls.set_defaults(func=cmd_schedule_list)
    _register_rules(msub)


def _register_rules(msub: argparse._SubParsersAction) -> None:
    rule = msub.add_parser("rule", help="add, list or disable condition rules")
    rsub = rule.add_subparsers(dest="rule_command", required=True, metavar="COMMAND")
    add = rsub.add_parser("add", help="add a condition rule (docs/maintenance.md, "
                          "\"Condition rules\")")
    _target_args(add)
    add.add_argument("--tag", help="telemetry: the tag watched")
    add.add_argument("--above", type=float, help="telemetry: trips above this value")
    add.add_argument("--below", type=float, help="telemetry: trips below this value")
    add.add_argument("--lasting", help="telemetry: for at least this long (N seconds|minutes"
                     "|hours)")
    add.add_argument("--clear", type=float, help="telemetry: the episode ends back past this "
                     "value (hysteresis; default the threshold)")
    add.add_argument("--state", help="state count: the state counted (e.g. fault)")
    add.add_argument("--reason", help="state count: only rows with this reason code")
    add.add_argument("--count", type=int, help="state count: trips at this many rows ...")
    add.add_argument("--within", help="state count: ... within this time (e.g. 8 hours)")
    add.add_argument("--clear-count", type=int, help="state count: the episode ends when "
                     "the window holds fewer rows than this (default --count)")
    add.add_argument("--estimated-minutes", type=int)
    add.add_argument("--instructions", default="")
    _rule_task_args(add)
    add.set_defaults(func=cmd_rule_add)

    corr = msub.add_parser("corrective", help="add, list or disable corrective rules "
                           "(tasks from downtime)")
    csub = corr.add_subparsers(dest="corrective_command", required=True, metavar="COMMAND")
    cadd = csub.add_parser("add", help="add a corrective rule (docs/maintenance.md, "
                           "\"Corrective work\")")
    _tenant_args(cadd)
    cadd.add_argument("--name", required=True)
    cadd.add_argument("--state", dest="states", action="append", metavar="STATE",
                      help="a stop state that counts (repeat; default fault)")
    cadd.add_argument("--min-duration", help="a stop at least this long (N minutes|hours)")
    cadd.add_argument("--reason", dest="reasons", action="append", metavar="CODE",
                      help="a stop with this reason code (repeat)")
    _rule_task_args(cadd)
    cadd.set_defaults(func=cmd_corrective_add)

    for sub, table in ((rsub, "pm_condition_rules"), (csub, "pm_corrective_rules")):
        ls = sub.add_parser("list", help="the rules of an organization or plant")
        _tenant_args(ls)
        ls.set_defaults(func=cmd_rule_list, table=table)
        off = sub.add_parser("disable", help="stop a rule from raising tasks (its tasks stay)")
        off.add_argument("rule_id", type=uuid.UUID)
        _tenant_args(off)
        off.set_defaults(func=cmd_rule_disable, table=table)


def _rule_task_args(p: argparse.ArgumentParser) -> None:
    """What the tasks of a rule get: checklist, priority, assignee; and its start."""
    p.add_argument("--check", action="append", default=[], metavar="ITEM",
                   help="a checklist item (repeat)")
    p.add_argument("--priority", choices=("low", "normal", "high", "urgent"), default="high")
    p.add_argument("--assignee", help="default assignee (e-mail)")
    p.add_argument("--active-from", type=datetime.fromisoformat,
                   help="rows before this are not looked at (ISO 8601 with offset; default "
                   "now)")


def _target_args(add: argparse.ArgumentParser) -> None:
    """Plant, name and target (one machine or a kind) of a schedule or condition rule."""
    _tenant_args(add, plant_required=True)
    add.add_argument("--name", required=True)
    target = add.add_mutually_exclusive_group(required=True)
    target.add_argument("--machine", help="one machine (code)")
    target.add_argument("--kind", help="every machine of this kind in the plant")


def _tenant_args(p: argparse.ArgumentParser, plant_required: bool = False) -> None:
    p.add_argument("--org", required=True, help="organization code")
    p.add_argument("--plant", required=plant_required, help="plant code")


@contextmanager
def _unit(args: argparse.Namespace, user_email: str | None = None
          ) -> Iterator[tuple[psycopg.Connection, Tenant]]:
    """A tenant transaction for --org/--plant (and the acting user) as the application role."""
    settings = load_settings(args.config, MaintenanceSettings)
    try:
        conn = psycopg.connect(settings.database.application_url(), autocommit=True)
    except psycopg.OperationalError as e:
        raise UserFacingError(f"cannot connect to the database: {e}") from None
    with conn:
        row = conn.execute("SELECT mes.lookup_organization(%s)", (args.org,)).fetchone()
        if not row or row[0] is None:
            raise UserFacingError(f"no organization {args.org!r}")
        tenant = Tenant(row[0])
        with tenant_transaction(conn, tenant):
            if args.plant:
                row = conn.execute("SELECT id FROM mes.plants WHERE code = %s",
                                   (args.plant,)).fetchone()
                if row is None:
                    raise UserFacingError(f"no plant {args.plant!r} in {args.org!r}")
                tenant = Tenant(tenant.organization_id, row[0])
            if user_email:
                row = conn.execute("SELECT id FROM mes.users WHERE email = %s",
                                   (user_email,)).fetchone()
                if row is None:
                    raise UserFacingError(f"no user {user_email!r} in {args.org!r}")
                tenant = Tenant(tenant.organization_id, tenant.plant_id, row[0])
        with tenant_transaction(conn, tenant):
            yield conn, tenant


def cmd_run(args: argparse.Namespace) -> int:
    """The engine on its own until SIGTERM or SIGINT."""
    from ingest.maintenance.runner import open_runner

    settings = load_settings(args.config, MaintenanceSettings)
    mes_logging.configure(settings.log.level, settings.log.format)
    stop = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    runner = open_runner(settings.database, settings.maintenance)
    status = None
    if args.status_port is not None:
        status = StatusServer(args.status_host, args.status_port, runner.health,
                              CollectorRegistry(), setting="--status-port").start()
    runner.start()
    while not stop.wait(1.0):  # a timed wait, so that the signal handler gets to run
        pass
    runner.stop()
    if status is not None:
        status.stop()
    return 0


def _at(t: datetime | None) -> str:
    return t.isoformat(timespec="minutes") if t else "-"


def cmd_tasks(args: argparse.Namespace) -> int:
    """Open tasks (or all with --all) of the plant or organization, by due time."""
    with _unit(args) as (conn, _):
        rows = conn.execute(
            "SELECT t.id, p.code, m.code, t.task_kind, t.title, t.occurrence, t.status, "
            "t.priority, t.due_at, t.due_meter, t.meter_at_raise, t.overdue_at, "
            "u.email FROM mes.pm_tasks t JOIN mes.machines m ON m.id = t.machine_id "
            "JOIN mes.plants p ON p.id = t.plant_id LEFT JOIN mes.users u ON u.id = t.assignee_id "
            "WHERE (%(all)s OR t.status IN ('open', 'acknowledged', 'in_progress')) "
            "AND (%(machine)s::text IS NULL OR m.code = %(machine)s) "
            "ORDER BY t.due_at NULLS LAST, t.created_at LIMIT %(n)s",
            {"all": args.all, "machine": args.machine, "n": args.limit}).fetchall()
    now = datetime.now(UTC)
    print(f"{'plant':8} {'machine':10} {'kind':10} {'status':12} {'prio':7} {'due':17} "
          f"{'meter':>15}  title / id")
    for (id_, plant, machine, kind, title, n, status, prio, due, due_meter, reading, overdue,
         assignee) in rows:
        meter = f"{reading or 0:.1f}/{due_meter:.1f}" if due_meter is not None else ""
        late = " OVERDUE" if overdue and overdue < now and status not in ("done", "skipped") \
            else ""
        print(f"{plant:8} {machine:10} {kind:10} {status:12} {prio:7} {_at(due):17} "
              f"{meter:>15}  {title} #{n}{late}" + (f" -> {assignee}" if assignee else "")
              + f"\n{'':8} {id_}")
    print(f"{len(rows)} task(s)")
    return 0


def cmd_task(args: argparse.Namespace) -> int:
    """Take one lifecycle step as --user."""
    with _unit(args, args.user) as (conn, tenant):
        assert tenant.user_id is not None
        status = transition(conn, args.task_id, args.step, tenant.user_id, datetime.now(UTC),
                            args.reason, meter_at=meter_at_completion)
    print(f"{args.task_id}: {status}")
    return 0


def _spec(cls: type[SpecT], what: str, **fields: object) -> SpecT:
    """`cls(**fields)`, or a UserFacingError that names each bad field."""
    try:
        return cls(**{k: v for k, v in fields.items() if v is not None})
    except ValidationError as e:
        raise UserFacingError(f"{what} refused:\n" + "\n".join(
            f"  {'.'.join(map(str, err['loc'])) or what}: {err['msg']}"
            for err in e.errors())) from None


def _insert(args: argparse.Namespace, what: str, insert: Callable[..., uuid.UUID],
            spec: object) -> uuid.UUID:
    with _unit(args) as (conn, tenant):
        try:
            return insert(conn, spec, tenant.organization_id, tenant.plant_id)
        except ScheduleRefused as e:
            raise UserFacingError(f"{what} refused: {e}") from None


def cmd_schedule_add(args: argparse.Namespace) -> int:
    """Validate and add one schedule."""
    spec = _spec(
        ScheduleSpec, "schedule", name=args.name, machine=args.machine, kind=args.kind,
        every=args.every, cron=args.cron, runtime_hours=args.runtime_hours, cycles=args.cycles,
        tag=args.tag, lead=args.lead, lead_meter=args.lead_meter,
        mode="floating" if args.floating else "fixed", tolerance_pct=args.tolerance_pct,
        catch_up=args.catch_up, checklist=args.check, priority=args.priority,
        estimated_minutes=args.estimated_minutes, assignee=args.assignee, anchor=args.anchor)
    schedule = _insert(args, "schedule", insert_schedule, spec)
    print(f"schedule {schedule} added ({spec.trigger_kind()})")
    return 0


def cmd_rule_add(args: argparse.Namespace) -> int:
    """Validate and add one condition rule."""
    spec = _spec(
        ConditionRuleSpec, "rule", name=args.name, machine=args.machine, kind=args.kind,
        tag=args.tag, above=args.above, below=args.below, lasting=args.lasting,
        clear=args.clear, state=args.state, reason=args.reason, count=args.count,
        within=args.within, clear_count=args.clear_count,
        estimated_minutes=args.estimated_minutes, instructions=args.instructions,
        checklist=args.check, priority=args.priority, assignee=args.assignee,
        active_from=args.active_from)
    rule = _insert(args, "rule", insert_condition_rule, spec)
    print(f"condition rule {rule} added ({'telemetry' if spec.tag else 'state count'})")
    return 0


def cmd_corrective_add(args: argparse.Namespace) -> int:
    """Validate and add one corrective rule (the plant's, or the organization's)."""
    spec = _spec(
        CorrectiveRuleSpec, "rule", name=args.name, states=args.states,
        min_duration=args.min_duration, reasons=args.reasons, checklist=args.check,
        priority=args.priority, assignee=args.assignee, active_from=args.active_from)
    rule = _insert(args, "rule", insert_corrective_rule, spec)
    print(f"corrective rule {rule} added")
    return 0


_RULE_LISTS = {
    "pm_condition_rules": (
        "SELECT r.id, p.code, coalesce(m.code, 'kind ' || r.machine_kind), r.name, "
        "CASE r.rule_kind WHEN 'telemetry' THEN r.tag || ' ' || r.comparison || ' ' "
        "|| r.threshold || ' for ' || r.for_seconds || ' s, clear ' || r.clear_threshold "
        "ELSE r.count_threshold || ' x ' || r.state || coalesce(' ' || r.reason_code, '') "
        "|| ' in ' || r.window_seconds || ' s' END, r.is_active "
        "FROM mes.pm_condition_rules r LEFT JOIN mes.machines m ON m.id = r.machine_id "
        "LEFT JOIN mes.plants p ON p.id = r.plant_id ORDER BY p.code, r.name"),
    "pm_corrective_rules": (
        "SELECT r.id, p.code, 'any machine', r.name, array_to_string(r.states, ',') "
        "|| coalesce(' >= ' || r.min_duration_s || ' s', '') "
        "|| coalesce(' reason ' || array_to_string(r.reason_codes, ','), ''), r.is_active "
        "FROM mes.pm_corrective_rules r LEFT JOIN mes.plants p ON p.id = r.plant_id "
        "ORDER BY p.code, r.name"),
}


def cmd_rule_list(args: argparse.Namespace) -> int:
    """Condition or corrective rules of the plant or organization."""
    with _unit(args) as (conn, _):
        rows = conn.execute(_RULE_LISTS[args.table]).fetchall()
    for id_, plant, target, name, condition, active in rows:
        print(f"{plant or '-':8} {target:16} {condition:40} {name}"
              f"{'' if active else ' (disabled)'}\n{'':8} {id_}")
    print(f"{len(rows)} rule(s)")
    return 0


def cmd_rule_disable(args: argparse.Namespace) -> int:
    """Set a rule inactive (RLS: only one of the --org/--plant's)."""
    with _unit(args) as (conn, _):
        row = conn.execute(f"UPDATE mes.{args.table} SET is_active = false WHERE id = %s "
                           "RETURNING name", (args.rule_id,)).fetchone()
    if row is None:
        raise UserFacingError(f"no rule {args.rule_id} in {args.org!r}"
                              + (f", plant {args.plant!r}" if args.plant else ""))
    print(f"rule {args.rule_id} ({row[0]}) disabled")
    return 0


def cmd_schedule_list(args: argparse.Namespace) -> int:
    """Schedules of the plant or organization."""
    with _unit(args) as (conn, _):
        rows = conn.execute(
            "SELECT s.id, p.code, coalesce(m.code, 'kind ' || s.machine_kind), s.name, "
            "s.trigger_kind, s.schedule_mode, coalesce(s.calendar_every || ' ' || "
            "s.calendar_unit, s.cron, ''), s.interval_value, s.counter_tag, s.is_active "
            "FROM mes.pm_schedules s LEFT JOIN mes.machines m ON m.id = s.machine_id "
            "LEFT JOIN mes.plants p ON p.id = s.plant_id ORDER BY p.code, s.name").fetchall()
    for id_, plant, target, name, kind, mode, calendar, interval, tag, active in rows:
        meter = f"{interval:g} {tag or 'h'}" if interval is not None else ""
        print(f"{plant or '-':8} {target:16} {kind:13} {mode:8} {calendar:14} {meter:12} "
              f"{name}{'' if active else ' (inactive)'}\n{'':8} {id_}")
    print(f"{len(rows)} schedule(s)")
    return 0
