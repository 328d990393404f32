"""The board's writes: HTML forms posting to the same repositories, role checks and version
checks as the API's routes. Each answers with a redirect back to its page (so a reload never
posts twice), carrying what happened as a notice; a refusal (a conflict, someone else's
completion, a stale version, a missing role) is that notice, said plainly."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from api import roles
from api.board.auth import BoardCaller, BoardSession, Form
from api.problems import ApiError, Forbidden
from api.repositories import downtime, maintenance, shifts
from core.tokens import Caller

router = APIRouter(prefix="/board", include_in_schema=False)


def _back(to: str, notice: str) -> RedirectResponse:
    sep = "&" if "?" in to else "?"
    return RedirectResponse(f"{to}{sep}notice={quote(notice)}", status_code=303)


def _page_of(fields: dict[str, str], default: str) -> str:
    """The board page a form came from (its `back` field), to return to: a path of the board
    only, never another site's address."""
    back = fields.get("back", "").split("#")[0]
    path, _, query = back.partition("?")
    ok = path.startswith("/board/") and "//" not in path and "\\" not in path
    kept = "&".join(p for p in query.split("&") if p.startswith("day="))  # not an old notice
    return (f"{path}?{kept}" if kept else path) if ok and back.isprintable() else default


def _attempt(caller: Caller, allowed: tuple[str, ...], to: str,
             done: str, write: Callable[[], object]) -> RedirectResponse:
    """Run `write` if the caller has one of `allowed`; refusals become the notice. A refused
    write changed nothing (the repositories check before they write), so the unit of work
    may end as usual."""
    try:
        if not set(allowed) & set(caller.roles):
            raise Forbidden(f"this needs one of the roles {', '.join(allowed)}")
        write()
    except ApiError as exc:
        return _back(to, f"Not done: {exc.detail}")
    return _back(to, done)


TASK_ACTIONS = {"acknowledge": "acknowledged", "start": "started", "complete": "completed",
                "skip": "skipped"}


@router.post("/tasks/{task_id}/checklist")
def tick_checklist(session: BoardSession, caller: BoardCaller, fields: Form,
                   task_id: uuid.UUID) -> RedirectResponse:
    """Tick (`done=yes`) or untick checklist item `index` of an open task, at the version the
    page showed. (Declared before the lifecycle steps' route, which would take its path.)"""
    to = _page_of(fields, "/board/tasks")
    index = fields.get("index", "")
    if not index.isdigit():
        return _back(to, "Not done: the checklist item (index) must be a whole number")
    done = fields.get("done") == "yes"
    return _attempt(caller, roles.TECHNICIANS, to, "Ticked." if done else "Unticked.",
                    lambda: maintenance.tick_item(session, task_id=task_id, index=int(index),
                                                  done=done,
                                                  if_match=fields.get("version") or None))


@router.post("/tasks/{task_id}/{action}")
def task_action(session: BoardSession, caller: BoardCaller, fields: Form, task_id: uuid.UUID,
                action: str) -> RedirectResponse:
    """Acknowledge, start, complete (with the meter reading) or skip (with a reason). The
    form's `version` is the If-Match: a task changed since the page was drawn is refused."""
    to = _page_of(fields, "/board/tasks")
    if action not in TASK_ACTIONS:
        return _back(to, f"Not done: unknown action {action}")
    values: dict[str, Any] = {}
    if action == "complete":
        meter = fields.get("meter_reading", "").strip()
        try:
            values = {"meter": float(meter) if meter else None,
                      "notes": fields.get("notes", "")[:8000]}
        except ValueError:
            return _back(to, "Not done: the meter reading must be a number")
    elif action == "skip":
        reason = fields.get("reason", "").strip()
        if not reason:
            return _back(to, "Not done: give a reason to skip a task")
        values = {"reason": reason[:2000]}
    return _attempt(caller, roles.TECHNICIANS, to, f"Task {TASK_ACTIONS[action]}.",
                    lambda: maintenance.act(session, task_id=task_id, action=action,
                                            if_match=fields.get("version") or None,
                                            **values))


@router.post("/downtime/{event_id}/reason")
def stop_reason(session: BoardSession, caller: BoardCaller, fields: Form,
                event_id: uuid.UUID) -> RedirectResponse:
    """Set a stop's reason and comment (operators, maintenance, admins)."""
    to = _page_of(fields, "/board")
    code = fields.get("reason_code", "").strip()
    if not code or len(code) > 64 or any(c in code for c in "\"'") or not code.isprintable():
        return _back(to, "Not done: a reason code is 1 to 64 printable characters, no quotes")
    return _attempt(caller, roles.DOWNTIME_EDITORS, to, "Reason saved.",
                    lambda: downtime.set_reason(session, event_id=event_id, reason_code=code,
                                                comment=fields.get("comment", "")[:2000]))


@router.post("/shifts/{shift_id}/handovers")
def log_handover(session: BoardSession, caller: BoardCaller, fields: Form,
                 shift_id: uuid.UUID) -> RedirectResponse:
    return _attempt(caller, roles.SHIFT_STAFF, "/board/handover", "Handover logged.",
                    lambda: shifts.log_handover(session, shift_id=shift_id,
                                                notes=fields.get("notes", "")[:8000]))


@router.post("/handovers/{handover_id}/acknowledge")
def acknowledge_handover(session: BoardSession, caller: BoardCaller, fields: Form,
                         handover_id: uuid.UUID) -> RedirectResponse:
    return _attempt(caller, roles.SHIFT_STAFF, "/board/handover",
                    "Handover acknowledged.",
                    lambda: shifts.acknowledge(session, handover_id=handover_id))
