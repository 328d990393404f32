"""One evaluation of the maintenance engine under one tenant: schedules (and, for the
machines of a batch, condition and corrective rules), then nothing else. Delivery is
`notify` and `webhooks`; when to evaluate is the runner's business.

Everything runs as the application role in `core.tenancy.tenant_transaction`, one
transaction per evaluation, so RLS confines a schedule to its own organization's machines and
meters (the tenant views) and every task is written in its plant's context.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime

from psycopg_pool import ConnectionPool

from core.tenancy import Tenant, tenant_transaction
from ingest.maintenance import conditions, corrective
from ingest.maintenance.meters import Checkpoint, Key
from ingest.maintenance.raising import Target, last_tasks, load_targets, raise_due
from ingest.maintenance.settling import Settling
from ingest.maintenance.triggers import next_calendar_at

Clock = Callable[[], datetime]
METER_KINDS = ("runtime_hours", "cycles", "combined")
CALENDAR_KINDS = ("calendar", "combined")


def utc_now() -> datetime:
    """The real clock; tests inject their own."""
    return datetime.now(UTC)


@dataclass(frozen=True)
class Plant:
    """A plant the engine works for: its tenant and its codes (for topics)."""

    organization_id: uuid.UUID
    plant_id: uuid.UUID
    organization_code: str
    plant_code: str
    timezone: str

    @property
    def tenant(self) -> Tenant:
        """The plant's tenant context."""
        return Tenant(self.organization_id, self.plant_id)


class MaintenanceEngine:
    """Evaluates schedules and rules against landed rows and raises tasks exactly once."""

    def __init__(self, pool: ConnectionPool, clock: Clock = utc_now,
                 settling: Settling | None = None) -> None:
        self.pool, self.clock = pool, clock
        self.settling = settling or Settling()
        # Meter checkpoints per tenant (meters.py): the evaluations after commits read only
        # rows after them; each sweep reads from the stored ones (settling.py) and replaces
        # them.
        self._checkpoints: dict[Tenant, dict[Key, Checkpoint]] = {}
        # Each machine's meter schedules as the last sweep read them, for the evaluations
        # after commits (raise_due reads again those that owe a task): a schedule added or
        # changed is seen by them from the next sweep on.
        self._targets: dict[Tenant, dict[uuid.UUID, list[Target]]] = {}

    def plants(self) -> list[Plant]:
        """Every active plant (through the narrow lookup mes.maintenance_plants())."""
        with self.pool.connection() as conn:
            return [Plant(*r) for r in conn.execute(
                "SELECT * FROM mes.maintenance_plants()").fetchall()]

    def after_commit(self, tenant: Tenant, machines: Collection[uuid.UUID]) -> list[uuid.UUID]:
        """The machines of a committed batch: their meter schedules, condition rules and
        corrective rules; returns the ids of the tasks raised."""
        now = self.clock()
        known = self._targets.get(tenant, {})
        unknown = [m for m in machines if m not in known]
        with self.pool.connection() as conn, tenant_transaction(conn, tenant):
            targets = [t for m in machines for t in known.get(m, ())]
            if unknown:
                targets += load_targets(conn, unknown, METER_KINDS)
            raised = raise_due(conn, targets, now, self._checkpoints.setdefault(tenant, {}),
                               cached=True)
            raised += conditions.evaluate(conn, list(machines), now, self.settling)
            raised += corrective.evaluate(conn, list(machines), now)
        return raised

    def calendar(self, tenant: Tenant) -> list[uuid.UUID]:
        """Calendar (and combined) schedules of the tenant."""
        now = self.clock()
        with self.pool.connection() as conn, tenant_transaction(conn, tenant):
            return raise_due(conn, load_targets(conn, None, CALENDAR_KINDS), now,
                             self._checkpoints.setdefault(tenant, {}))

    def sweep(self, tenant: Tenant) -> list[uuid.UUID]:
        """Every schedule and rule of the tenant, whatever its machines landed lately."""
        now = self.clock()
        checkpoints: dict[Key, Checkpoint] = {}
        by_machine: dict[uuid.UUID, list[Target]] = {}
        with self.pool.connection() as conn, tenant_transaction(conn, tenant):
            targets = load_targets(conn, None, None)
            raised = raise_due(conn, targets, now, checkpoints, settling=self.settling)
            raised += conditions.evaluate(conn, None, now, self.settling)
            raised += corrective.evaluate(conn, None, now)
            # Stored checkpoints that no sweep resumes any more: those of bases left behind
            # (a floating schedule's previous completion) and chains due a rebuild anyway.
            conn.execute("DELETE FROM mes.pm_meter_checkpoints WHERE rebuilt_at <= %s",
                         (now - self.settling.recompute,))
        for t in targets:
            if t.schedule.trigger_kind in METER_KINDS:
                by_machine.setdefault(t.machine_id, []).append(t)
        self._checkpoints[tenant], self._targets[tenant] = checkpoints, by_machine
        return raised

    def next_calendar_at(self, tenant: Tenant) -> datetime | None:
        """When the tenant's calendar schedules next raise something (None: nothing planned)."""
        with self.pool.connection() as conn, tenant_transaction(conn, tenant):
            targets = load_targets(conn, None, CALENDAR_KINDS)
            last = last_tasks(conn, targets) if targets else {}
        times = [t for t in (next_calendar_at(x.schedule, last.get((x.schedule.id, x.machine_id)))
                             for x in targets) if t is not None]
        return min(times, default=None)
