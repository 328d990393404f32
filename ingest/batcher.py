"""Group accepted messages by tenant and kind until a batch is due (by rows, messages or age)."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from core.intake.validator import Accepted
from core.tenancy import Tenant


@dataclass(slots=True)
class InFlight:
    """A received message not yet acknowledged: what to ack, and what it carried."""

    mid: int
    epoch: int
    size: int
    received: float  # time.monotonic()
    topic: str = ""
    payload: bytes = b""  # kept until acknowledged: a batch refused later is dead-lettered
    qos: int = 1
    accepted: Accepted | None = None


@dataclass
class TenantBatch:
    """What one tenant transaction writes, and the messages to acknowledge after its commit."""

    tenant: Tenant
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=lambda: defaultdict(list))
    messages: list[InFlight] = field(default_factory=list)

    @property
    def row_count(self) -> int:
        """Rows of every kind in this batch."""
        return sum(len(r) for r in self.rows.values())


class Batcher:
    """Accumulates rows; due when `max_rows` rows or `max_messages` messages are waiting, or
    the oldest waited `max_age_s`."""

    def __init__(self, max_rows: int, max_age_s: float, max_messages: int) -> None:
        self.max_rows, self.max_age_s, self.max_messages = max_rows, max_age_s, max_messages
        self._batches: dict[Tenant, TenantBatch] = {}
        self._rows = self._messages = 0
        self._oldest: float | None = None

    def add(self, message: InFlight) -> None:
        """Add an accepted message's rows to its tenant's batch."""
        accepted = message.accepted
        assert accepted is not None
        batch = self._batches.get(accepted.tenant)
        if batch is None:
            batch = self._batches[accepted.tenant] = TenantBatch(accepted.tenant)
        batch.rows[accepted.staging_kind].extend(accepted.rows)
        batch.messages.append(message)
        self._rows += len(accepted.rows)
        self._messages += 1
        if self._oldest is None:
            self._oldest = message.received

    @property
    def full(self) -> bool:
        """Due by size: `max_rows` rows or `max_messages` messages waiting."""
        return self._rows >= self.max_rows or self._messages >= self.max_messages

    def seconds_until_due(self, now: float | None = None) -> float | None:
        """0 when due, None when empty, else how long until the age limit."""
        if self._oldest is None:
            return None
        if self.full:
            return 0.0
        return max(0.0, self._oldest + self.max_age_s - (now or time.monotonic()))

    def take(self) -> list[TenantBatch]:
        """Every batch waiting (one per tenant), and start empty."""
        batches = list(self._batches.values())
        self._batches.clear()
        self._rows = self._messages = 0
        self._oldest = None
        return batches
