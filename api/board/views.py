"""What each board page shows, gathered through the API's repositories in the caller's unit of
work (so row-level security confines it exactly as it confines the API)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from api.deps import Page
from api.problems import NotFound
from api.repositories import downtime, machines, maintenance, shifts
from api.schemas.machines import CurrentState, DowntimeOut, Segment
from api.schemas.shifts import ShiftSummary
from core.maintenance.lifecycle import OPEN
from core.models import Machine, PmSchedule, PmTask
from core.tokens import Caller

ALL = Page(limit=500, cursor=None)


def today(now: datetime) -> tuple[datetime, datetime]:
    start = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return start, start + timedelta(days=1)


@dataclass
class Tile:
    machine: Machine
    state: CurrentState | None
    stop: DowntimeOut | None
    availability: float | None

    @property
    def line(self) -> str:
        return str(self.machine.tags.get("line", ""))


def tiles(session: Session, *, now: datetime) -> list[Tile]:
    """Every active machine in scope with its state, open stop and today's availability."""
    found, _ = machines.list_machines(session, page=ALL, sort="code", plant_id=None, kind=None,
                                      active=True)
    stops, _ = downtime.list_downtime(
        session, page=ALL, sort="-started_at", machine_ids=[m.id for m in found], start=None,
        end=None, state=None, category=None, reason_code=None, open_only=True)
    open_stop = {}
    for stop in reversed(stops):  # the latest open stop of a machine wins
        open_stop[stop.machine_id] = stop
    start, end = today(now)
    result = []
    for m in found:
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
    start: datetime
    end: datetime
    segments: list[Segment]
    seconds: dict[str, float]
    availability: float | None
    stops: list[DowntimeOut]
    counters: dict[str, float]
    tasks: list[PmTask]


def machine_day(session: Session, *, machine_id: uuid.UUID, day: datetime) -> MachineDay:
    machine = machines.get_machine(session, machine_id=machine_id)
    start, end = today(day)
    share = machines.time_in_state(session, machine_id=machine_id, start=start, end=end)
    stops, _ = downtime.list_downtime(
        session, page=Page(limit=20, cursor=None), sort="-started_at", machine_ids=[machine_id],
        start=None, end=None, state=None, category=None, reason_code=None, open_only=False)
    tasks, _ = maintenance.list_tasks(session, page=Page(limit=20, cursor=None),
                                      sort="-updated_at", status=[], machine_id=machine_id,
                                      assignee_id=None, due_from=None, due_to=None)
    return MachineDay(machine, start, end,
                      machines.timeline(session, machine_id=machine_id, start=start, end=end),
                      {k: v for k, v in share.seconds.items() if v > 0}, share.availability,
                      stops, machines.latest_counters(session, machine_id=machine_id), tasks)


@dataclass
class TaskRow:
    task: PmTask
    machine: Machine
    schedule: PmSchedule
    meter: float | None  # the live counter of the schedule's tag: the default meter reading


@dataclass
class MyTasks:
    mine: list[TaskRow] = field(default_factory=list)
    unassigned: list[TaskRow] = field(default_factory=list)
    done: list[TaskRow] = field(default_factory=list)


def _due_key(row: TaskRow) -> tuple[Any, ...]:
    t = row.task
    return (t.due_at is None, t.due_at or datetime.max.replace(tzinfo=UTC), t.due_meter or 0)


def my_tasks(session: Session, *, caller: Caller) -> MyTasks:
    """The caller's open tasks and the unassigned ones, by due; the caller's latest done."""
    open_tasks, _ = maintenance.list_tasks(session, page=ALL, sort="created_at", status=list(OPEN),
                                           machine_id=None, assignee_id=None, due_from=None,
                                           due_to=None)
    done, _ = maintenance.list_tasks(session, page=Page(limit=10, cursor=None),
                                     sort="-updated_at", status=["done", "skipped"],
                                     machine_id=None, assignee_id=caller.user_id,
                                     due_from=None, due_to=None)
    counters: dict[uuid.UUID, dict[str, float]] = {}
    out = MyTasks()

    def row(task: PmTask) -> TaskRow:
        schedule = maintenance.get_schedule(session, schedule_id=task.schedule_id)
        if task.machine_id not in counters:
            counters[task.machine_id] = machines.latest_counters(session,
                                                                 machine_id=task.machine_id)
        tag = schedule.counter_tag
        return TaskRow(task, machines.get_machine(session, machine_id=task.machine_id),
                       schedule, counters[task.machine_id].get(tag) if tag else None)

    for task in open_tasks:
        if task.assignee_id == caller.user_id:
            out.mine.append(row(task))
        elif task.assignee_id is None:
            out.unassigned.append(row(task))
    out.mine.sort(key=_due_key)
    out.unassigned.sort(key=_due_key)
    out.done = [row(t) for t in done]
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
