"""What a schedule owes a machine now: the task drafts to raise. No I/O.

Inputs are the schedule, the machine's last task of that schedule (`Last`) and a meter reader
(`meter(since)`: hours or counts from `since` to the machine's latest landed row). The rules:

- **calendar, fixed**: occurrence n falls due at the anchor plus n steps (calendar.py); it is
  raised `lead_time` early. After the engine was down across several due times, catch-up
  `one` raises only the latest of them (counting the others in `missed`), `all` each.
- **meter, fixed**: occurrence n falls due when the meter since the anchor, plus
  `anchor_meter` (what the machine had used when the schedule started), reaches n x interval;
  raised `lead_value` early; the same catch-up.
- **floating** (calendar or meter): the next occurrence counts from the last task's closing
  (done or skipped; from the anchor before the first); while a task is open none is raised.
- **combined**: one occurrence counter for both parts; each occurrence counts from the
  previous one (its due time when fixed, its closing when floating) and is raised by
  whichever part gets there first, so the other part never raises it again.

Meters of a task (`due_meter`, `meter_at_raise`) are in the schedule's frame: since the anchor
(fixed) or since the base of the occurrence (floating, combined). Tolerance: a task becomes
overdue `tolerance_pct` of its interval after it is due (`overdue_at`, `overdue_meter`).
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.maintenance.calendar import Calendar
from core.maintenance.lifecycle import CLOSED

# A calendar that fell this many due times behind is caught up in steps: never an endless loop.
MAX_CATCH_UP = 10_000


@dataclass(frozen=True)
class Schedule:
    """A schedule as the engine needs it (one row of mes.pm_schedules, typed)."""

    id: uuid.UUID
    name: str
    trigger_kind: str
    mode: str
    anchor_at: datetime
    anchor_meter: float
    calendar: Calendar | None
    lead_time: timedelta
    interval: float | None
    lead_value: float
    meter_kind: str | None  # runtime_hours | cycles, for meter and combined schedules
    counter_tag: str | None
    tolerance_pct: float
    catch_up: str


@dataclass(frozen=True)
class Last:
    """The last task of a schedule on a machine."""

    occurrence: int
    due_at: datetime | None
    status: str
    closed_at: datetime | None  # completed_at or skipped_at


@dataclass(frozen=True)
class Draft:
    """A task to raise: its occurrence, due time and/or meter, and why."""

    occurrence: int
    raised_by: str  # calendar | meter
    due_at: datetime | None = None
    due_meter: float | None = None
    meter_at_raise: float | None = None
    overdue_at: datetime | None = None
    overdue_meter: float | None = None
    missed: int = 0


Meter = Callable[[datetime], float]


def decide(s: Schedule, last: Last | None, now: datetime, meter: Meter) -> list[Draft]:
    """The drafts schedule `s` owes now, given the machine's `last` task and its meter."""
    if s.trigger_kind == "combined":
        return _combined(s, last, now, meter)
    if s.mode == "floating":
        return _floating(s, last, now, meter)
    if s.trigger_kind == "calendar":
        return _fixed_calendar(s, last, now)
    return _fixed_meter(s, last, meter)


def _late(s: Schedule, due: datetime, previous: datetime) -> datetime:
    return due + (due - previous) * (s.tolerance_pct / 100)


def _late_meter(s: Schedule, due: float) -> float:
    assert s.interval is not None
    return due + s.interval * s.tolerance_pct / 100


def _caught_up(s: Schedule, drafts: list[Draft]) -> list[Draft]:
    if s.catch_up == "all" or len(drafts) <= 1:
        return drafts
    latest = drafts[-1]
    return [Draft(latest.occurrence, latest.raised_by, latest.due_at, latest.due_meter,
                  latest.meter_at_raise, latest.overdue_at, latest.overdue_meter,
                  missed=len(drafts) - 1)]


def _fixed_calendar(s: Schedule, last: Last | None, now: datetime) -> list[Draft]:
    cal = s.calendar
    assert cal is not None
    n = last.occurrence if last else 0
    # every/unit: straight from the anchor's grid (no drift); cron: fire after fire.
    previous = (last.due_at if last and last.due_at else None) or s.anchor_at
    drafts = []
    while len(drafts) < MAX_CATCH_UP:
        due = cal.after(previous) if cal.cron else cal.step(s.anchor_at, n + 1)
        if due - s.lead_time > now:
            break
        n += 1
        drafts.append(Draft(n, "calendar", due_at=due, overdue_at=_late(s, due, previous)))
        previous = due
    return _caught_up(s, drafts)


def _fixed_meter(s: Schedule, last: Last | None, meter: Meter) -> list[Draft]:
    assert s.interval is not None
    reading = s.anchor_meter + meter(s.anchor_at)
    n0 = (last.occurrence if last else 0) + 1
    n_max = math.floor((reading + s.lead_value) / s.interval + 1e-9)
    drafts = [Draft(n, "meter", due_meter=n * s.interval, meter_at_raise=reading,
                    overdue_meter=_late_meter(s, n * s.interval))
              for n in range(n0, min(n_max, n0 + MAX_CATCH_UP) + 1)]
    return _caught_up(s, drafts)


def _base(s: Schedule, last: Last | None) -> tuple[datetime, float] | None:
    """Where a floating occurrence counts from (time, meter already used); None while the
    last task is open."""
    if last is None:
        return s.anchor_at, s.anchor_meter
    if last.status not in CLOSED or last.closed_at is None:
        return None
    return last.closed_at, 0.0


def _floating(s: Schedule, last: Last | None, now: datetime, meter: Meter) -> list[Draft]:
    base = _base(s, last)
    if base is None:
        return []
    since, used = base
    n = (last.occurrence if last else 0) + 1
    if s.trigger_kind == "calendar":
        assert s.calendar is not None
        due = s.calendar.after(since)
        if due - s.lead_time > now:
            return []
        return [Draft(n, "calendar", due_at=due, overdue_at=_late(s, due, since))]
    assert s.interval is not None
    reading = used + meter(since)
    if reading + s.lead_value < s.interval:
        return []
    return [Draft(n, "meter", due_meter=s.interval, meter_at_raise=reading,
                  overdue_meter=_late_meter(s, s.interval))]


def _combined_base(s: Schedule, last: Last | None) -> tuple[datetime, float] | None:
    if s.mode == "floating" or last is None:
        return _base(s, last)
    return (last.due_at or s.anchor_at), 0.0


def next_calendar_at(s: Schedule, last: Last | None) -> datetime | None:
    """When the calendar part of `s` next raises a task (due time less lead), or None (no
    calendar part, or a floating schedule waiting for its open task)."""
    cal = s.calendar
    if cal is None:
        return None
    if s.trigger_kind == "combined" or s.mode == "floating":
        base = _combined_base(s, last) if s.trigger_kind == "combined" else _base(s, last)
        return None if base is None else cal.after(base[0]) - s.lead_time
    previous = (last.due_at if last and last.due_at else None) or s.anchor_at
    n = last.occurrence if last else 0
    due = cal.after(previous) if cal.cron else cal.step(s.anchor_at, n + 1)
    return due - s.lead_time


def meter_since(s: Schedule, last: Last | None) -> datetime | None:
    """From when `decide` reads the meter of `s` given `last` (None: it reads none), so that
    the caller can read every schedule's meter at once before deciding."""
    if s.meter_kind is None:
        return None
    if s.trigger_kind == "combined":
        base = _combined_base(s, last)
    elif s.mode == "floating":
        base = _base(s, last)
    else:
        return s.anchor_at
    return None if base is None else base[0]


def _combined(s: Schedule, last: Last | None, now: datetime, meter: Meter) -> list[Draft]:
    assert s.calendar is not None and s.interval is not None
    base = _combined_base(s, last)
    if base is None:
        return []
    since, used = base
    n = (last.occurrence if last else 0) + 1
    reading = used + meter(since)
    common = {"due_meter": s.interval, "meter_at_raise": reading,
              "overdue_meter": _late_meter(s, s.interval)}
    # The calendar part first: every due time passed since the base (several only for a fixed
    # schedule after the engine was down across them: caught up as the schedule says).
    drafts: list[Draft] = []
    previous = since
    while len(drafts) < MAX_CATCH_UP:
        due = s.calendar.after(previous)
        if due - s.lead_time > now:
            break
        drafts.append(Draft(n + len(drafts), "calendar", due_at=due,
                            overdue_at=_late(s, due, previous), **common))
        previous = due
        if s.mode == "floating":
            break
    if drafts:
        return _caught_up(s, drafts)
    if reading + s.lead_value >= s.interval:
        return [Draft(n, "meter", due_at=now, **common)]
    return []
