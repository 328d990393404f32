"""Due times of the calendar part of a schedule, in the plant's time zone. No I/O.

`every N days|weeks|months` steps in local wall time, so a weekly Monday 06:00 task stays at
06:00 local across a DST change (the UTC instant moves by the hour). A wall time that does not
exist (inside the spring-forward gap) resolves as zoneinfo does with fold=0: the offset before
the change, i.e. an hour later on the clock. Months keep the anchor's day, clamped to the
month's last day (Jan 31 -> Feb 28 -> Mar 31: each step counts from the anchor, so clamping
never drifts). `cron` is a five-field crontab expression evaluated by apscheduler's
CronTrigger in the plant's zone.
"""

from __future__ import annotations

import calendar as _cal
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

UNITS = ("days", "weeks", "months")


def _add_months(local: datetime, months: int) -> datetime:
    total = local.month - 1 + months
    year, month = local.year + total // 12, total % 12 + 1
    day = min(local.day, _cal.monthrange(year, month)[1])
    return local.replace(year=year, month=month, day=day)


@dataclass(frozen=True)
class Calendar:
    """`every` `unit` steps, or a `cron` expression, in zone `tz`."""

    tz: ZoneInfo
    every: int | None = None
    unit: str | None = None
    cron: str | None = None

    def __post_init__(self) -> None:
        if (self.cron is None) == (self.every is None):
            raise ValueError("a calendar has either every/unit or cron")
        if self.every is not None and (self.every < 1 or self.unit not in UNITS):
            raise ValueError(f"every must be >= 1 and unit one of {', '.join(UNITS)}")
        if self.cron is not None:
            self.trigger  # noqa: B018 - refuse a bad expression now, with its message

    @property
    def trigger(self) -> CronTrigger:
        """The apscheduler trigger of a cron calendar."""
        assert self.cron is not None
        return CronTrigger.from_crontab(self.cron, timezone=self.tz)

    def step(self, start: datetime, n: int) -> datetime:
        """`start` plus n steps of every/unit in local wall time (cron: n fires after it)."""
        if self.cron is not None:
            t = start
            for _ in range(n):
                t = self.after(t)
            return t
        local = start.astimezone(self.tz).replace(tzinfo=None)
        k = n * (self.every or 0)
        if self.unit == "months":
            moved = _add_months(local, k)
        else:
            moved = local + timedelta(days=k * (7 if self.unit == "weeks" else 1))
        return moved.replace(tzinfo=self.tz)

    def after(self, t: datetime) -> datetime:
        """The first due time strictly after t: one step (every/unit) or the next cron fire."""
        if self.cron is None:
            return self.step(t, 1)
        fire = self.trigger.get_next_fire_time(None, t + timedelta(microseconds=1))
        assert fire is not None, "a crontab expression always fires again"
        return fire
