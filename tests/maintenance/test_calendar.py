"""Calendar schedules, no database: due times in the plant's zone across DST, cron, lead,
catch-up after the engine was down, floating recurrence, combined triggers."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.maintenance.calendar import Calendar
from ingest.maintenance.triggers import Last, Schedule, decide, next_calendar_at

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def schedule(**kw: object) -> Schedule:
    base = Schedule(id=uuid.uuid4(), name="PM", trigger_kind="calendar", mode="fixed",
                    anchor_at=datetime(2026, 3, 16, 6, 0, tzinfo=BERLIN), anchor_meter=0.0,
                    calendar=Calendar(BERLIN, 1, "weeks"), lead_time=timedelta(0),
                    interval=None, lead_value=0.0, meter_kind=None, counter_tag=None,
                    tolerance_pct=0.0, catch_up="one")
    return replace(base, **kw)


def no_meter(_since: datetime) -> float:
    return 0.0


def test_weekly_monday_0600_stays_at_0600_local_across_spring_forward() -> None:
    cal = Calendar(BERLIN, 1, "weeks")
    anchor = datetime(2026, 3, 16, 6, 0, tzinfo=BERLIN)  # CET; DST starts 29 March
    dues = [cal.step(anchor, n) for n in range(1, 4)]
    assert [d.astimezone(BERLIN).strftime("%a %H:%M") for d in dues] == ["Mon 06:00"] * 3
    assert [d.astimezone(UTC).hour for d in dues] == [5, 4, 4]


def test_daily_task_across_fall_back_in_new_york() -> None:
    cal = Calendar(NEW_YORK, 1, "days")
    anchor = datetime(2026, 10, 31, 22, 30, tzinfo=NEW_YORK)  # EDT; EST from 1 November
    first, second = cal.step(anchor, 1), cal.step(anchor, 2)
    assert first.astimezone(NEW_YORK).hour == second.astimezone(NEW_YORK).hour == 22
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=24)
    assert first.astimezone(UTC) - anchor.astimezone(UTC) == timedelta(hours=25)


def test_monthly_keeps_the_anchor_day_clamped_without_drift() -> None:
    cal = Calendar(BERLIN, 1, "months")
    anchor = datetime(2026, 1, 31, 8, 0, tzinfo=BERLIN)
    assert [cal.step(anchor, n).day for n in (1, 2, 3)] == [28, 31, 30]


def test_cron_fires_in_local_time_across_dst() -> None:
    cal = Calendar(BERLIN, cron="0 6 * * mon")
    t = datetime(2026, 3, 23, 6, 0, tzinfo=BERLIN)
    fires = [t := cal.after(t) for _ in range(2)]
    assert [f.astimezone(UTC) for f in fires] == [
        datetime(2026, 3, 30, 4, 0, tzinfo=UTC), datetime(2026, 4, 6, 4, 0, tzinfo=UTC)]


def test_bad_cron_and_bad_unit_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="Wrong number of fields"):
        Calendar(BERLIN, cron="0 6 * *")
    with pytest.raises(ValueError, match="unit one of days, weeks, months"):
        Calendar(BERLIN, 1, "fortnights")


def test_lead_raises_early_and_not_before() -> None:
    s = schedule(lead_time=timedelta(days=2))
    due = datetime(2026, 3, 23, 6, 0, tzinfo=BERLIN)
    assert decide(s, None, due - timedelta(days=2, seconds=1), no_meter) == []
    [draft] = decide(s, None, due - timedelta(days=2), no_meter)
    assert (draft.occurrence, draft.due_at) == (1, due)
    assert next_calendar_at(s, None) == due - timedelta(days=2)


def test_catch_up_after_downtime_raises_one_overdue_task_or_all() -> None:
    s = schedule(tolerance_pct=10.0)
    now = datetime(2026, 4, 8, 12, 0, tzinfo=BERLIN)  # three Mondays passed unseen
    [one] = decide(s, None, now, no_meter)
    assert (one.occurrence, one.missed) == (3, 2)
    assert one.due_at == datetime(2026, 4, 6, 6, 0, tzinfo=BERLIN)
    assert one.overdue_at == one.due_at + timedelta(days=7) * 0.1
    every = decide(replace(s, catch_up="all"), None, now, no_meter)
    assert [d.occurrence for d in every] == [1, 2, 3]
    # Caught up: occurrence 3 exists, nothing is owed until the next Monday.
    last = Last(3, one.due_at, "open", None)
    assert decide(s, last, now, no_meter) == []
    assert decide(s, last, datetime(2026, 4, 13, 6, 0, tzinfo=BERLIN), no_meter)[0].occurrence == 4


def test_floating_counts_from_completion_and_waits_for_the_open_task() -> None:
    s = schedule(mode="floating", calendar=Calendar(BERLIN, 10, "days"))
    done = datetime(2026, 4, 2, 15, 0, tzinfo=BERLIN)
    assert decide(s, Last(1, None, "in_progress", None), done + timedelta(days=30), no_meter) == []
    last = Last(1, datetime(2026, 3, 26, 6, 0, tzinfo=BERLIN), "done", done)
    assert decide(s, last, done + timedelta(days=10) - timedelta(seconds=1), no_meter) == []
    [draft] = decide(s, last, done + timedelta(days=10), no_meter)
    assert (draft.occurrence, draft.due_at) == (2, done + timedelta(days=10))


def test_fixed_meter_lead_and_catch_up() -> None:
    s = schedule(trigger_kind="cycles", calendar=None, interval=100.0, lead_value=10.0,
                 meter_kind="cycles", counter_tag="strokes", anchor_meter=20.0)
    now = datetime(2026, 4, 1, tzinfo=UTC)
    assert decide(s, None, now, lambda _s: 69.0) == []
    [draft] = decide(s, None, now, lambda _s: 70.0)  # 20 + 70 + lead 10 reaches 100
    assert (draft.occurrence, draft.due_meter, draft.meter_at_raise) == (1, 100.0, 90.0)
    [late] = decide(s, Last(1, None, "open", None), now, lambda _s: 400.0)
    assert (late.occurrence, late.missed) == (4, 2)


def test_combined_raises_whichever_comes_first_and_the_other_not_again() -> None:
    anchor = datetime(2026, 1, 1, tzinfo=UTC)
    s = schedule(trigger_kind="combined", anchor_at=anchor, calendar=Calendar(UTC, 6, "months"),
                 interval=500.0, meter_kind="runtime_hours")
    # The meter first: 500 h in March.
    march = datetime(2026, 3, 10, tzinfo=UTC)
    [by_meter] = decide(s, None, march, lambda since: 500.0 if since == anchor else 0.0)
    assert (by_meter.occurrence, by_meter.raised_by, by_meter.due_at) == (1, "meter", march)
    last = Last(1, march, "open", None)
    # July 1st (the first calendar due) raises nothing: occurrence 2 counts from March.
    assert decide(s, last, datetime(2026, 7, 1, 0, 1, tzinfo=UTC), lambda _s: 100.0) == []
    [by_calendar] = decide(s, last, datetime(2026, 9, 10, tzinfo=UTC), lambda _s: 100.0)
    assert (by_calendar.occurrence, by_calendar.raised_by) == (2, "calendar")
    assert by_calendar.due_at == datetime(2026, 9, 10, tzinfo=UTC)
