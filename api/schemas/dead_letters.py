"""Dead letters as an administrator sees them (no payload: it may be large and binary)."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field

from api.schemas.common import example


class DeadLetterOut(BaseModel):
    """A message the ingest could not use: where it came from, why, and whether a replay has
    written it since (`replayed_at`)."""

    id: int
    plant_id: uuid.UUID | None
    topic: str
    gateway_code: str | None
    reason: str
    detail: str
    payload_size: int
    received_at: datetime
    times_seen: int
    last_seen_at: datetime
    replayed_at: datetime | None


class ReplayIn(BaseModel):
    """The waiting letters to run through the ingest's checks and writer again."""

    model_config = example(ids=[17, 18])

    ids: list[int] = Field(min_length=1, max_length=500)


class ReplayOutcome(BaseModel):
    id: int
    replayed: bool
    detail: str


class ReplayOut(BaseModel):
    """One outcome per id asked for, in that order; `replayed` counts the letters written."""

    replayed: int
    outcomes: list[ReplayOutcome]
