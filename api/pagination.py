"""Cursor (keyset) pagination: a page continues after the last item of the previous one, so
rows inserted meanwhile neither repeat nor vanish, and a deep page costs what the first does.

A list is ordered by one sort column and the id (a tiebreak); the cursor is that pair of the
last item, opaque to the client (base64 JSON). `sort` is a column name, `-name` descending.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from api.deps import Page
from api.problems import Invalid

T = TypeVar("T")


def _encode(values: Sequence[Any]) -> str:
    text = json.dumps([v.isoformat() if isinstance(v, datetime) else str(v) for v in values])
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def _decode(cursor: str, columns: Sequence[InstrumentedAttribute[Any]]) -> list[Any]:
    try:
        raw = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(raw, list) or len(raw) != len(columns):
            raise ValueError
        return [_parse(col, value) for col, value in zip(columns, raw, strict=True)]
    except (ValueError, TypeError, binascii.Error, json.JSONDecodeError):
        raise Invalid("cursor", "not a cursor of this list: pass next_cursor as it came") from None


def _parse(column: InstrumentedAttribute[Any], value: str) -> Any:
    kind = column.type.python_type
    if kind is datetime:
        return datetime.fromisoformat(value)
    if kind is uuid.UUID:
        return uuid.UUID(value)
    return kind(value)


def paginate(session: Session, stmt: Select[Any], *, page: Page, sort: str,
             columns: Mapping[str, InstrumentedAttribute[Any]],
             tiebreak: InstrumentedAttribute[Any]) -> tuple[list[Any], str | None]:
    """Run `stmt` (selecting one entity) for `page`, ordered by `sort` (a key of `columns`,
    `-` for descending) then `tiebreak`; return the items and the next cursor (None at the
    end)."""
    name = sort.removeprefix("-")
    if name not in columns:
        raise Invalid("sort", f"one of {', '.join(sorted(columns))}, or -name for descending")
    keys = (columns[name], tiebreak)
    descending = sort.startswith("-")
    if page.cursor:
        after = tuple_(*keys) < tuple_(*_decode(page.cursor, keys)) if descending \
            else tuple_(*keys) > tuple_(*_decode(page.cursor, keys))
        stmt = stmt.where(after)
    order = [k.desc() for k in keys] if descending else list(keys)
    rows = list(session.scalars(stmt.order_by(*order).limit(page.limit + 1)))
    if len(rows) <= page.limit:
        return rows, None
    rows = rows[: page.limit]
    last = rows[-1]
    return rows, _encode([getattr(last, k.key) for k in keys])
