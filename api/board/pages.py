"""The board's pages (GET) and signing in and out."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from api.board import views
from api.board.auth import COOKIE, BoardCaller, BoardSession, Form
from api.board.render import page
from api.deps import caller_of
from api.repositories import maintenance
from api.stream import stream_response

router = APIRouter(prefix="/board", include_in_schema=False)


@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request) -> HTMLResponse:
    return page(request, "login.html", None)


@router.post("/login")
def login(request: Request, fields: Form) -> Response:
    token = fields.get("token", "").strip()
    if not token or caller_of(request, token) is None:
        return page(request, "login.html", None, status_code=401,
                    error="This token is unknown, expired or revoked.")
    response = RedirectResponse("/board", status_code=303)
    response.set_cookie(COOKIE, token, httponly=True, secure=True, samesite="strict",
                        path="/board",
                        max_age=int(request.app.state.settings.api.board_session_h * 3600))
    return response


@router.post("/logout")
def logout(request: Request, caller: BoardCaller, fields: Form) -> Response:
    response = RedirectResponse("/board/login", status_code=303)
    response.delete_cookie(COOKIE, path="/board", httponly=True, secure=True,
                           samesite="strict")
    return response


@router.get("", response_class=HTMLResponse)
def plant(request: Request, caller: BoardCaller, session: BoardSession,
          line: str = "", kind: str = "") -> HTMLResponse:
    zones = views.zones(session, caller=caller)
    tiles = views.tiles(session, now=datetime.now(UTC), zones=zones)
    lines = sorted({t.line for t in tiles if t.line})
    kinds = sorted({t.machine.kind for t in tiles if t.machine.kind})
    shown = [t for t in tiles if (not line or t.line == line)
             and (not kind or t.machine.kind == kind)]
    return page(request, "plant.html", caller, tiles=shown, lines=lines, kinds=kinds,
                line=line, kind=kind, zones=zones,
                zone_named=zones.named(t.machine.plant_id for t in tiles))


@router.get("/machines/{machine_id}", response_class=HTMLResponse)
def machine(request: Request, caller: BoardCaller, session: BoardSession,
            machine_id: uuid.UUID, day: str = "") -> HTMLResponse:
    try:
        chosen = date.fromisoformat(day) if day else None
    except ValueError:
        chosen = None  # a mistyped day shows today
    info = views.machine_day(session, machine_id=machine_id, day=chosen, now=datetime.now(UTC),
                             zones=views.zones(session, caller=caller))
    return page(request, "machine.html", caller, m=info,
                previous=(info.day - timedelta(days=1)).isoformat(),
                following=(info.day + timedelta(days=1)).isoformat())


@router.get("/tasks", response_class=HTMLResponse)
def tasks(request: Request, caller: BoardCaller, session: BoardSession) -> HTMLResponse:
    zones = views.zones(session, caller=caller)
    tasks = views.my_tasks(session, caller=caller, zones=zones)
    rows = tasks.mine + tasks.unassigned + tasks.done
    return page(request, "tasks.html", caller, tasks=tasks, zones=zones,
                zone_named=zones.named(r.machine.plant_id for r in rows))


@router.get("/handover", response_class=HTMLResponse)
def handover(request: Request, caller: BoardCaller, session: BoardSession) -> HTMLResponse:
    summary = views.current_shift(session, now=datetime.now(UTC))
    logged = [] if summary is None else views.handovers(session, shift_id=summary.shift.id)
    zones = views.zones(session, caller=caller)
    zone = zones.of(summary.shift.plant_id if summary else None)
    rows = views.TaskRows(session, zones)
    open_tasks = [] if summary is None else [
        rows.row(maintenance.get_task(session, task_id=t.id)) for t in summary.open_tasks]
    return page(request, "handover.html", caller, summary=summary, handovers=logged, zone=zone,
                open_tasks=open_tasks)


@router.get("/events")
def events(request: Request, caller: BoardCaller) -> StreamingResponse:
    """The stream for the board's script: the cookie stands in for the bearer header
    (EventSource cannot send headers)."""
    return stream_response(request, caller, None)
