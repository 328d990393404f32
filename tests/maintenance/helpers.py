"""Helpers for maintenance tests: a settable clock, machines and schedules seeded as the
superuser, envelopes of chosen values, and the tasks as the database holds them."""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from core.wire import (
    CounterEnvelope,
    CounterRecord,
    Kind,
    MachineState,
    StateEnvelope,
    StateRecord,
    TelemetryEnvelope,
    TelemetryRecord,
    encode,
)
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants
from tests.ingest.helpers import topic_for
from tests.support.wait import wait_until

_SEQ = itertools.count(10_000)


@dataclass
class Clock:
    """The engine's clock: `now` is what it returns; tests move it."""

    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __call__(self) -> datetime:
        return self.now


def add_machine(db: TestDatabase, tenants: Tenants, plant: str = "a1",
                kind: str | None = None) -> tuple[str, uuid.UUID]:
    """A new machine in `plant` (its code, its id)."""
    org = tenants.a if plant.startswith("a") else tenants.b
    code = f"m-{uuid.uuid4().hex[:8]}"
    with db.superuser() as conn:
        row = conn.execute(
            "INSERT INTO mes.machines (organization_id, plant_id, code, name, kind) "
            "VALUES (%s, %s, %s, %s, %s) RETURNING id",
            (org.id, org.plants[plant], code, f"Machine {code}", kind)).fetchone()
    assert row is not None
    return code, row[0]


def add_schedule(db: TestDatabase, tenants: Tenants, plant: str = "a1", **cols: Any
                 ) -> uuid.UUID:
    """A schedule in `plant` with `cols` (machine_id or machine_kind, trigger columns)."""
    org = tenants.a if plant.startswith("a") else tenants.b
    cols = {"organization_id": org.id, "plant_id": org.plants[plant], "name": "PM", **cols}
    with db.superuser() as conn:
        row = conn.execute(
            f"INSERT INTO mes.pm_schedules ({', '.join(cols)}) "
            f"VALUES ({', '.join(['%s'] * len(cols))}) RETURNING id",
            list(cols.values())).fetchone()
    assert row is not None
    return row[0]


def tasks_of(db: TestDatabase, source: str, source_id: uuid.UUID) -> list[dict[str, Any]]:
    """Tasks of a schedule (`schedule_id`), rule or event, by occurrence, as dicts."""
    with db.superuser() as conn:
        rows = conn.execute(
            f"SELECT row_to_json(t) FROM mes.pm_tasks t WHERE {source} = %s "
            "ORDER BY machine_id, occurrence", (source_id,)).fetchall()
    return [r[0] for r in rows]


def _topic(plant: str, kind: Kind) -> str:
    org = "org-a" if plant.startswith("a") else "org-b"
    return topic_for(org, plant, f"gw-{plant}", kind)


def counters(machine: str, tag: str, points: list[tuple[datetime, float]],
             plant: str = "a1") -> tuple[str, bytes]:
    """One counter message of `points` (ts, running total)."""
    env = CounterEnvelope(v=1, gateway=f"gw-{plant}", seq=next(_SEQ), sent_at=datetime.now(UTC),
                          records=[CounterRecord(machine=machine, tag=tag, ts=t, value=v)
                                   for t, v in points])
    return _topic(plant, Kind.COUNTER), encode(env)


def states(machine: str, points: list[tuple[datetime, MachineState]], plant: str = "a1",
           reason: str | None = None) -> tuple[str, bytes]:
    """One state message of `points` (ts, state)."""
    env = StateEnvelope(v=1, gateway=f"gw-{plant}", seq=next(_SEQ), sent_at=datetime.now(UTC),
                        records=[StateRecord(machine=machine, ts=t, state=s, reason_code=reason)
                                 for t, s in points])
    return _topic(plant, Kind.STATE), encode(env)


def telemetry(machine: str, tag: str, points: list[tuple[datetime, float]],
              plant: str = "a1") -> tuple[str, bytes]:
    """One telemetry message of `points` (ts, value)."""
    env = TelemetryEnvelope(v=1, gateway=f"gw-{plant}", seq=next(_SEQ),
                            sent_at=datetime.now(UTC),
                            records=[TelemetryRecord(machine=machine, tag=tag, ts=t, value=v)
                                     for t, v in points])
    return _topic(plant, Kind.TELEMETRY), encode(env)


def hours_ago(h: float) -> datetime:
    """A timestamp `h` hours before now, to the second (within the ingest's accepted past)."""
    return datetime.now(UTC).replace(microsecond=0) - timedelta(hours=h)


def written(raised: list[tuple[float, list[uuid.UUID]]], n: int) -> None:
    """Wait until the ingest wrote n messages and the engine evaluated them (the
    `ingest_with_engine` fixture's list)."""
    wait_until(lambda: bool(raised) and max(w for w, _ in raised) >= n, 60,
               f"{n} messages written and evaluated")
