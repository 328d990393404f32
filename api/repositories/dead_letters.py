"""Dead letters of the caller's organization, through the definer functions of sql/0014 (the
application role has no privilege on the table): which letters are the caller's is decided
there, from the unit of work's tenant context."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY, BIGINT
from sqlalchemy.orm import Session

from api.deps import Page
from api.problems import Invalid
from core.intake.replay import Letter

_IDS = bindparam("ids", type_=ARRAY(BIGINT))


def list_letters(session: Session, *, page: Page, reason: str | None,
                 replayed: bool | None) -> tuple[list[dict[str, Any]], str | None]:
    """A page of letters, newest first; the cursor is the last id of the previous page."""
    before = None
    if page.cursor is not None:
        if not page.cursor.isdigit():
            raise Invalid("cursor", "not a cursor of this list: pass next_cursor as it came")
        before = int(page.cursor)
    rows = session.execute(
        text("SELECT * FROM mes.api_dead_letters(:reason, :replayed, :before, :n)"),
        {"reason": reason, "replayed": replayed, "before": before, "n": page.limit + 1},
    ).mappings().all()
    items = [dict(r) for r in rows[: page.limit]]
    return items, str(items[-1]["id"]) if len(rows) > page.limit else None


def waiting(session: Session, ids: Sequence[int]) -> list[Letter]:
    """The caller's waiting letters among `ids`, with their payloads."""
    rows = session.execute(text("SELECT * FROM mes.api_waiting_dead_letters(:ids)")
                           .bindparams(_IDS), {"ids": list(ids)})
    return [(r.id, r.topic, bytes(r.payload), r.payload_size) for r in rows]


def mark_replayed(session: Session, ids: Sequence[int]) -> None:
    if ids:
        session.execute(text("SELECT mes.api_mark_dead_letters_replayed(:ids)")
                        .bindparams(_IDS), {"ids": list(ids)})
