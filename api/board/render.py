"""The board's templates and what every page gets: the caller, its roles, the form token."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from api import roles
from api.board.auth import csrf_token
from api.schemas.common import version_of
from core.tokens import Caller

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

STATE_LABELS = {"running": "Running", "idle": "Idle", "starved": "Starved",
                "blocked": "Blocked", "setup": "Setup", "planned_stop": "Planned stop",
                "fault": "Fault", "offline": "Offline"}


def duration(seconds: float) -> str:
    """How long, to the precision a glance needs (board.js writes the same)."""
    s = max(0, int(seconds))
    if s >= 2 * 86400:
        return f"{s // 86400}d {s % 86400 // 3600}h"
    return f"{s // 3600}h {s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m {s % 60:02d}s"


def percent(value: float | None) -> str:
    return "no data" if value is None else f"{value * 100:.0f} %"


def when(t: datetime | None, zone: ZoneInfo) -> str:
    """A time in the zone of the plant it belongs to, with the zone's abbreviation."""
    return "" if t is None else t.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")


def clock(t: datetime, zone: ZoneInfo) -> str:
    """A time of today (in `zone`) as its hour and minute, else as `when` has it: the tile's
    "stop since" (the page's script writes new ones the same way)."""
    local = t.astimezone(zone)
    same_day = local.date() == datetime.now(UTC).astimezone(zone).date()
    return local.strftime("%H:%M") if same_day else when(t, zone)


templates.env.filters.update(duration=duration, percent=percent, when=when, clock=clock,
                             version=version_of)
templates.env.globals.update(STATE_LABELS=STATE_LABELS)


def page(request: Request, name: str, caller: Caller | None, status_code: int = 200,
         **context: Any) -> HTMLResponse:
    """Render `name` with the caller's roles (which write forms to show) and the form token."""
    can = {} if caller is None else {
        "edit_stops": bool(set(caller.roles) & set(roles.DOWNTIME_EDITORS)),
        "work_tasks": bool(set(caller.roles) & set(roles.TECHNICIANS)),
        "handover": bool(set(caller.roles) & set(roles.SHIFT_STAFF)),
    }
    return templates.TemplateResponse(
        request, name, {"caller": caller, "can": can, "csrf": csrf_token(request),
                        "now": datetime.now(UTC), "notice": request.query_params.get("notice"),
                        **context}, status_code=status_code)
