"""What each board page shows, gathered through the API's repositories in the caller's unit of
work (so row-level security confines it exactly as it confines the API)."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from api.deps import Page
from api.problems import NotFound
from api.repositories import downtime, machines, maintenance, shifts
from api.schemas.machines import CurrentState, DowntimeOut, Segment
from api.schemas.shifts import ShiftSummary
from core.maintenance.lifecycle import OPEN
from core.models import Machine, Plant, PmSchedule, PmTask
from core.tokens import Caller

ALL = Page(limit=500, cursor=None)


@dataclass
class Zones:
    """The time zone of each plant in the caller's scope (the registry's `timezone`): the
    board shows every time in the zone of the plant it belongs to, and names that zone."""

    plants: dict[uuid.UUID, Plant]
    default: ZoneInfo  # for rows of no plant: the caller's plant's zone, else the only one

    def of(self, plant_id: uuid.UUID | None) -> ZoneInfo:
        plant = self.plants.get(plant_id) if plant_id else None
        return ZoneInfo(plant.timezone) if plant else self.default

    def named(self, plant_ids: Iterable[uuid.UUID | None]) -> str:
        """The zone of these plants' times, for the page to say: one name when they share it,
        else each plant's."""
        ids = sorted({p for p in plant_ids if p in self.plants}, key=lambda p: self.plants[p].code)
        keys = {self.of(p).key for p in ids} or {self.default.key}
        if len(keys) == 1:
            return keys.pop()
        return ", ".join(f"{self.plants[p].name} {self.of(p).key}" for p in ids)


def zones(session: Session, *, caller: Caller) -> Zones:
    """The zones of the plants the caller may see (row-level security picks them)."""
    plants = {p.id: p for p in session.scalars(select(Plant))}
    own = plants.get(caller.plant_id) if caller.plant_id else None
    distinct = {p.timezone for p in plants.values()}
    default = own.timezone if own else distinct.pop() if len(distinct) == 1 else "UTC"
    return Zones(plants, ZoneInfo(default))


def local_day(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The instants (UTC) at which `day` starts and ends in `zone` (23 or 25 h across a DST
    change)."""
    start = datetime.combine(day, time(0), tzinfo=zone)
    end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
    return start.astimezone(UTC), end.astimezone(UTC)


@dataclass
class Tile:
    machine: Machine
    state: CurrentState | None
    stop: DowntimeOut | None
    availability: float | None

    @property
    def line(self) -> str:
        return str(self.machine.tags.get("line", ""))


def tiles(session: Session, *, now: datetime, zones: Zones) -> list[Tile]:
    """Every active machine in scope with its state, open stop and the availability of its
    plant's day so far."""
    found, _ = machines.list_machines(session, page=ALL, sort="code", plant_id=None, kind=None,
                                      active=True)
    stops, _ = downtime.list_downtime(
        session, page=ALL, sort="-started_at", machine_ids=[m.id for m in found], start=None,
        end=None, state=None, category=None, reason_code=None, open_only=True)
    open_stop = {}
    for stop in reversed(stops):  # the latest open stop of a machine wins
        open_stop[stop.machine_id] = stop
    result = []
    for m in found:
        start, end = local_day(now.astimezone(zones.of(m.plant_id)).date(), zones.of(m.plant_id))
        try:
            state = machines.current_state(session, machine_id=m.id)
        except NotFound:
            state = None
        share = machines.time_in_state(session, machine_id=m.id, start=start, end=end)
        result.append(Tile(m, state, open_stop.get(m.id), share.availability))
    return result


@dataclass
class MachineDay:
    machine: Machine
    zone: ZoneInfo
    day: date
    start: datetime
    end: datetime
    hours: list[tuple[float, str]]  # the timeline's marks: (x of 1000, local hour)
    segments: list[Segment]
    seconds: dict[str, float]
    availability: float | None
    stops: list[DowntimeOut]
    counters: dict[str, float]
    tasks: list[TaskRow]


def machine_day(session: Session, *, machine_id: uuid.UUID, day: date | None, now: datetime,
                zones: Zones) -> MachineDay:
    """A machine's day in its plant's zone (`day` None: today there)."""
    machine = machines.get_machine(session, machine_id=machine_id)
    zone = zones.of(machine.plant_id)
    day = day or now.astimezone(zone).date()
    start, end = local_day(day, zone)
    span = (end - start).total_seconds()
    hours = [((datetime.combine(day, time(h), tzinfo=zone) - start).total_seconds() / span * 1000,
              f"{h:02d}") for h in (0, 6, 12, 18)] + [(1000.0, "24")]
    share = machines.time_in_state(session, machine_id=machine_id, start=start, end=end)
    stops, _ = downtime.list_downtime(
        session, page=Page(limit=50, cursor=None), sort="-started_at", machine_ids=[machine_id],
        start=start, end=end, state=None, category=None, reason_code=None, open_only=False)
    tasks, _ = maintenance.list_tasks(session, page=Page(limit=20, cursor=None),
                                      sort="-updated_at", status=[], machine_id=machine_id,
                                      assignee_id=None, due_from=None, due_to=None)
    rows = TaskRows(session, zones)
    return MachineDay(machine, zone, day, start, end, hours,
                      machines.timeline(session, machine_id=machine_id, start=start, end=end),
                      {k: v for k, v in share.seconds.items() if v > 0}, share.availability,
                      stops, machines.latest_counters(session, machine_id=machine_id),
                      [rows.row(t) for t in tasks])


@dataclass
class Evidence:
    """What raised a task without a schedule, in the task's own words (pm_tasks.evidence):
    the stop of a corrective task, or the readings or states that tripped a condition rule;
    `href` opens the machine's day where it happened."""

    what: str  # "stop", "readings" or "states"
    first: datetime
    last: datetime | None
    detail: str  # the stop's state and reason, the tag, the states and reasons
    count: int
    href: str


@dataclass
class TaskRow:
    """A task as the board shows it: its title and where it came from (a PM schedule, a
    condition rule or a downtime event), what to do, and the meter to prefill."""

    task: PmTask
    machine: Machine
    title: str
    source: str
    instructions: str
    counter_tag: str | None
    meter: float | None  # the live counter of the schedule's tag: the default meter reading
    evidence: Evidence | None


@dataclass
class MyTasks:
    mine: list[TaskRow] = field(default_factory=list)
    unassigned: list[TaskRow] = field(default_factory=list)
    done: list[TaskRow] = field(default_factory=list)


def _due_key(row: TaskRow) -> tuple[Any, ...]:
    t = row.task
    return (t.due_at is None, t.due_at or datetime.max.replace(tzinfo=UTC), t.due_meter or 0)


_RULE = {"condition": "SELECT name, instructions FROM mes.pm_condition_rules WHERE id = :id",
         "corrective": "SELECT name, '' FROM mes.pm_corrective_rules WHERE id = :id"}
_SOURCE = {"preventive": "PM schedule", "condition": "Condition rule",
           "corrective": "Corrective rule"}


def _evidence(task: PmTask, zone: ZoneInfo) -> Evidence | None:
    rows = [r for r in task.evidence if isinstance(r, dict)]
    stamps = [datetime.fromisoformat(r[k]) for r in rows for k in ("ts", "started_at")
              if isinstance(r.get(k), str)]
    if not rows or not stamps:
        return None
    first, last = min(stamps), max(stamps)
    href = (f"/board/machines/{task.machine_id}?day={first.astimezone(zone).date()}")
    if "event_id" in rows[0]:
        stop = rows[0]
        ended = stop.get("ended_at")
        return Evidence("stop", first, datetime.fromisoformat(ended) if ended else None,
                        " ".join(filter(None, (stop.get("state"), stop.get("reason_code")))),
                        1, f"{href}#stop-{stop['event_id']}")
    if "value" in rows[0]:
        values = [r["value"] for r in rows if isinstance(r.get("value"), int | float)]
        detail = f"{min(values):g} to {max(values):g}" if values else ""
        return Evidence("readings", first, last, detail, len(rows), f"{href}#timeline-h")
    states = sorted({" ".join(filter(None, (r.get("state"), r.get("reason_code"))))
                     for r in rows})
    return Evidence("states", first, last, ", ".join(states), len(rows), f"{href}#timeline-h")


class TaskRows:
    """Builds TaskRows in one unit of work, reading each schedule, rule, machine and
    machine's counters once."""

    def __init__(self, session: Session, zones: Zones) -> None:
        self.session = session
        self.zones = zones
        self._machines: dict[uuid.UUID, Machine] = {}
        self._counters: dict[uuid.UUID, dict[str, float]] = {}
        self._sources: dict[uuid.UUID, tuple[str, str, str | None]] = {}

    def _source(self, task: PmTask) -> tuple[str, str, str | None]:
        """(name, instructions, counter tag) of the task's schedule or rule."""
        key = task.schedule_id or task.condition_rule_id or task.corrective_rule_id
        if key is None:  # a corrective task whose rule is gone: the event still says why
            return "", "", None
        if key not in self._sources:
            if task.schedule_id is not None:
                s: PmSchedule = maintenance.get_schedule(self.session, schedule_id=key)
                self._sources[key] = (s.name, s.instructions, s.counter_tag)
            else:
                found = self.session.execute(text(_RULE[task.task_kind]), {"id": key}).first()
                self._sources[key] = (found[0], found[1], None) if found else ("", "", None)
        return self._sources[key]

    def row(self, task: PmTask) -> TaskRow:
        m = task.machine_id
        if m not in self._machines:
            self._machines[m] = machines.get_machine(self.session, machine_id=m)
            self._counters[m] = machines.latest_counters(self.session, machine_id=m)
        name, instructions, tag = self._source(task)
        return TaskRow(task, self._machines[m], task.title or name,
                       f"{_SOURCE.get(task.task_kind, task.task_kind)} {name}".strip(),
                       instructions, tag, self._counters[m].get(tag) if tag else None,
                       _evidence(task, self.zones.of(self._machines[m].plant_id)))


def my_tasks(session: Session, *, caller: Caller, zones: Zones) -> MyTasks:
    """The caller's open tasks and the unassigned ones, by due; the caller's latest done."""
    open_tasks, _ = maintenance.list_tasks(session, page=ALL, sort="created_at", status=list(OPEN),
                                           machine_id=None, assignee_id=None, due_from=None,
                                           due_to=None)
    done, _ = maintenance.list_tasks(session, page=Page(limit=10, cursor=None),
                                     sort="-updated_at", status=["done", "skipped"],
                                     machine_id=None, assignee_id=caller.user_id,
                                     due_from=None, due_to=None)
    rows = TaskRows(session, zones)
    out = MyTasks()
    for task in open_tasks:
        if task.assignee_id == caller.user_id:
            out.mine.append(rows.row(task))
        elif task.assignee_id is None:
            out.unassigned.append(rows.row(task))
    out.mine.sort(key=_due_key)
    out.unassigned.sort(key=_due_key)
    out.done = [rows.row(t) for t in done]
    return out


def current_shift(session: Session, *, now: datetime) -> ShiftSummary | None:
    """The summary of the shift running now, else of the latest one that started."""
    found, _ = shifts.list_shifts(session, page=Page(limit=20, cursor=None), sort="-starts_at",
                                  start=None, end=None)
    started = [s for s in found if s.starts_at <= now]
    running = [s for s in started if s.ends_at > now]
    chosen = (running or started or found or [None])[0]
    return None if chosen is None else shifts.summary(session, shift_id=chosen.id)


def handovers(session: Session, *, shift_id: uuid.UUID) -> list[Any]:
    found, _ = shifts.list_handovers(session, page=Page(limit=20, cursor=None),
                                     sort="-logged_at", shift_id=shift_id, acknowledged=None)
    return found
