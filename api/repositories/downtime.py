"""Downtime: the edge's stops (read through the tenant view) and the reasons people give them.

A reason, a comment or a split never rewrites the edge's event: each is a segment row in
`mes.downtime_reasons` (sql/0012) from its start to the next segment's start or the event's
end. The effective reason of a segment is the people's, else (for the event's start) the
edge's.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime

from sqlalchemy import exists, or_, select
from sqlalchemy.orm import Session

from api.deps import Page
from api.pagination import paginate
from api.problems import Conflict, Invalid, NotFound
from api.repositories.base import add, change
from api.schemas.machines import DowntimeOut, ReasonSegment
from core.models import DowntimeReason
from core.models.views import DowntimeEventView as E


def _segments(session: Session, events: list[E]) -> dict[uuid.UUID, list[DowntimeReason]]:
    by_event: dict[uuid.UUID, list[DowntimeReason]] = defaultdict(list)
    if events:
        rows = session.scalars(select(DowntimeReason)
                               .where(DowntimeReason.event_id.in_([e.event_id for e in events]))
                               .order_by(DowntimeReason.segment_start))
        for row in rows:
            by_event[row.event_id].append(row)
    return by_event


def _out(event: E, segments: list[DowntimeReason]) -> DowntimeOut:
    at_start = next((s for s in segments if s.segment_start == event.started_at), None)
    reason = at_start.reason_code if at_start and at_start.reason_code else event.reason_code
    return DowntimeOut(
        event_id=event.event_id, machine_id=event.machine_id, plant_id=event.plant_id,
        started_at=event.started_at, ended_at=event.ended_at, state=event.state,
        category=event.category, micro_stop=event.micro_stop,
        edge_reason_code=event.reason_code, reason_code=reason,
        segments=[ReasonSegment.model_validate(s) for s in segments])


def with_reasons(session: Session, events: list[E]) -> list[DowntimeOut]:
    by_event = _segments(session, events)
    return [_out(e, by_event[e.event_id]) for e in events]


def list_downtime(session: Session, *, page: Page, sort: str, machine_ids: list[uuid.UUID],
                  start: datetime | None, end: datetime | None, state: str | None,
                  category: str | None, reason_code: str | None,
                  open_only: bool) -> tuple[list[DowntimeOut], str | None]:
    """Stops overlapping [start, end), filtered; `reason_code` matches the edge's or a
    person's reason."""
    stmt = select(E)
    if machine_ids:
        stmt = stmt.where(E.machine_id.in_(machine_ids))
    if start is not None:
        stmt = stmt.where(or_(E.ended_at.is_(None), E.ended_at > start))
    if end is not None:
        stmt = stmt.where(E.started_at < end)
    if state is not None:
        stmt = stmt.where(E.state == state)
    if category is not None:
        stmt = stmt.where(E.category == category)
    if open_only:
        stmt = stmt.where(E.ended_at.is_(None))
    if reason_code is not None:
        stmt = stmt.where(or_(E.reason_code == reason_code, exists().where(
            DowntimeReason.event_id == E.event_id, DowntimeReason.reason_code == reason_code)))
    events, cursor = paginate(session, stmt, page=page, sort=sort, tiebreak=E.event_id,
                              columns={"started_at": E.started_at, "updated_at": E.updated_at})
    return with_reasons(session, events), cursor


def _event(session: Session, event_id: uuid.UUID) -> E:
    event = session.scalars(select(E).where(E.event_id == event_id)).first()
    if event is None:
        raise NotFound(f"no downtime event {event_id}")
    return event


def get_downtime(session: Session, *, event_id: uuid.UUID) -> DowntimeOut:
    return with_reasons(session, [_event(session, event_id)])[0]


def set_reason(session: Session, *, event_id: uuid.UUID, reason_code: str,
               comment: str) -> DowntimeOut:
    """Set or correct the reason of the whole stop (its first segment)."""
    event = _event(session, event_id)
    existing = session.scalars(select(DowntimeReason).where(
        DowntimeReason.event_id == event_id,
        DowntimeReason.segment_start == event.started_at).with_for_update()).first()
    if existing is None:
        add(session, DowntimeReason(machine_id=event.machine_id, event_id=event_id,
                                    segment_start=event.started_at, reason_code=reason_code,
                                    comment=comment), plant_id=event.plant_id)
    else:
        change(session, existing, {"reason_code": reason_code, "comment": comment})
    return get_downtime(session, event_id=event_id)


def split(session: Session, *, event_id: uuid.UUID, at: datetime, reason_code: str | None,
          comment: str) -> DowntimeOut:
    """Split the stop at `at`: from there on it has its own reason (None: the reason of the
    segment it was split from, shown as such until someone sets one)."""
    event = _event(session, event_id)
    stop_end = event.ended_at or datetime.now(UTC)
    if not event.started_at < at < stop_end:
        raise Invalid("at", f"must lie inside the stop ({event.started_at.isoformat()} to "
                      f"{'now' if event.ended_at is None else stop_end.isoformat()})")
    taken = session.scalar(select(DowntimeReason.id).where(
        DowntimeReason.event_id == event_id, DowntimeReason.segment_start == at))
    if taken is not None:
        raise Conflict(f"the stop is already split at {at.isoformat()}")
    add(session, DowntimeReason(machine_id=event.machine_id, event_id=event_id,
                                segment_start=at, reason_code=reason_code, comment=comment),
        plant_id=event.plant_id)
    return get_downtime(session, event_id=event_id)
