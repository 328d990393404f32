"""The board's pages (GET) and signing in and out."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse

from api.board import views
from api.board.auth import COOKIE, BoardCaller, BoardSession, Form
from api.board.render import page
from api.deps import caller_of
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
    tiles = views.tiles(session, now=datetime.now(UTC))
    lines = sorted({t.line for t in tiles if t.line})
    kinds = sorted({t.machine.kind for t in tiles if t.machine.kind})
    shown = [t for t in tiles if (not line or t.line == line)
             and (not kind or t.machine.kind == kind)]
    return page(request, "plant.html", caller, tiles=shown, lines=lines, kinds=kinds,
                line=line, kind=kind)


@router.get("/machines/{machine_id}", response_class=HTMLResponse)
def machine(request: Request, caller: BoardCaller, session: BoardSession,
            machine_id: uuid.UUID, day: str = "") -> HTMLResponse:
    try:
        at = datetime.fromisoformat(day).replace(tzinfo=UTC) if day else datetime.now(UTC)
    except ValueError:
        at = datetime.now(UTC)
    info = views.machine_day(session, machine_id=machine_id, day=at)
    return page(request, "machine.html", caller, m=info,
                previous=(info.start - timedelta(days=1)).date().isoformat(),
                following=(info.start + timedelta(days=1)).date().isoformat())


@router.get("/tasks", response_class=HTMLResponse)
def tasks(request: Request, caller: BoardCaller, session: BoardSession) -> HTMLResponse:
    return page(request, "tasks.html", caller, tasks=views.my_tasks(session, caller=caller))


@router.get("/handover", response_class=HTMLResponse)
def handover(request: Request, caller: BoardCaller, session: BoardSession) -> HTMLResponse:
    summary = views.current_shift(session, now=datetime.now(UTC))
    logged = [] if summary is None else views.handovers(session, shift_id=summary.shift.id)
    return page(request, "handover.html", caller, summary=summary, handovers=logged)


@router.get("/events")
def events(request: Request, caller: BoardCaller) -> StreamingResponse:
    """The stream for the board's script: the cookie stands in for the bearer header
    (EventSource cannot send headers)."""
    return stream_response(request, caller, None)
