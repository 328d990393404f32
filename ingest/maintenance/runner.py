"""When the engine evaluates, and delivery after each evaluation.

- After each batch the ingest committed: `on_commit(tenant, machines)` (the ingest's commit
  observer) only records the machines, coalesced per tenant, and wakes the runner's thread,
  which evaluates them at most once per `batch_interval_s` (machines of several commits in
  one evaluation); the writer thread never waits for the engine, and the engine reads what
  was committed.
- Calendar: an apscheduler job per plant fires at the plant's next calendar due time (less
  lead) and is planned again after every run; the plan is rebuilt from the database at start
  and at every sweep, so a schedule added or changed is picked up within `sweep_s`.
- Sweep: every `sweep_s`, every schedule and rule of every plant (runtime of machines that
  landed nothing new, a missed wake-up, webhook retries).

Several runners (ingest replicas, standalone engines) may run at once: raising is exactly once
whoever runs it (raising.py), MQTT events are claimed with SKIP LOCKED and webhooks too.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from psycopg_pool import ConnectionPool

from core.settings import DatabaseSettings
from core.tenancy import Tenant
from ingest.maintenance.engine import Clock, MaintenanceEngine, Plant, utc_now
from ingest.maintenance.notify import MqttNotifier
from ingest.maintenance.settings import MaintenanceOptions
from ingest.maintenance.webhooks import WebhookSender

log = logging.getLogger(__name__)


class EngineRunner:
    """Runs a MaintenanceEngine: batches, calendar and sweep; then notifies."""

    def __init__(self, engine: MaintenanceEngine, options: MaintenanceOptions) -> None:
        self.engine, self.options = engine, options
        self.notifier = MqttNotifier(options.mqtt) if options.mqtt else None
        self.webhooks = WebhookSender(options)
        self._pending: dict[Tenant, set[uuid.UUID]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._job_lock = threading.Lock()
        self._thread = threading.Thread(target=self._batches, name="maintenance", daemon=True)
        self._scheduler = BackgroundScheduler(timezone=UTC)
        self.raised = 0
        # Evaluations after commits, and the seconds they took (mes bench maintenance).
        self.batch_evaluations = 0
        self.batch_seconds = 0.0
        # Set once a sweep of every plant has run (the start-up one first).
        self.swept = threading.Event()
        self.owns_pool = False
        self.failure: BaseException | None = None
        # Called with the ids of the tasks each evaluation raised (the demo's live view).
        self.raised_observers: list[Callable[[list[uuid.UUID]], None]] = []

    def health(self) -> tuple[bool, dict[str, Any]]:
        """For the status endpoint of `mes maintenance run`: healthy while the evaluation
        thread runs and has not failed."""
        ok = self._thread.is_alive() and self.failure is None
        return ok, {"evaluating": self._thread.is_alive(),
                    "failure": None if self.failure is None else str(self.failure)}

    def on_commit(self, tenant: Tenant, machines: frozenset[uuid.UUID]) -> None:
        """The ingest committed rows of `machines` under `tenant` (never blocks)."""
        with self._lock:
            self._pending.setdefault(tenant, set()).update(machines)
        self._wake.set()

    def start(self) -> None:
        """Connect the notifier, plan the calendar, start the sweep and the batch thread."""
        if self.notifier and not self.notifier.start():
            log.warning("maintenance MQTT not connected yet; events wait in the outbox")
        self._scheduler.start()
        self._scheduler.add_job(self.sweep, IntervalTrigger(seconds=self.options.sweep_s),
                                id="sweep", next_run_time=datetime.now(UTC),
                                max_instances=1, coalesce=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the jobs and the thread, then the notifier."""
        self._stop.set()
        self._wake.set()
        # Not shutdown(wait=True): it holds the job store lock while it waits, and a running
        # job re-plans the calendar through that lock (a deadlock, seen). Jobs run under
        # _job_lock instead; taking it waits for the one running, later ones see _stop.
        self._scheduler.shutdown(wait=False)
        with self._job_lock:
            pass
        self._thread.join(30)
        if self.notifier:
            self.notifier.stop()
        if self.owns_pool:
            self.engine.pool.close()

    def sweep(self) -> None:
        """Every plant: all schedules and rules, delivery, and the plant's calendar job."""
        with self._job_lock:
            for plant in self._plants():
                if self._stop.is_set():
                    return
                self._guarded(plant.tenant, lambda p=plant: self.engine.sweep(p.tenant),
                              summary=True)
                self._plan_calendar(plant)
            self.swept.set()

    def _plants(self) -> list[Plant]:
        try:
            return self.engine.plants()
        except Exception:
            log.exception("maintenance: cannot list plants")
            return []

    def _plan_calendar(self, plant: Plant) -> None:
        try:
            at = self.engine.next_calendar_at(plant.tenant)
        except Exception:
            log.exception("maintenance: cannot plan the calendar")
            return
        job = f"calendar:{plant.plant_id}"
        if at is None:
            if self._scheduler.get_job(job):
                self._scheduler.remove_job(job)
            return
        self._scheduler.add_job(self._calendar, DateTrigger(run_date=at), args=[plant], id=job,
                                replace_existing=True, misfire_grace_time=None)

    def _calendar(self, plant: Plant) -> None:
        with self._job_lock:
            if self._stop.is_set():
                return
            self._guarded(plant.tenant, lambda: self.engine.calendar(plant.tenant))
            self._plan_calendar(plant)

    def _batches(self) -> None:
        last = -math.inf
        while not self._stop.is_set():
            self._wake.wait()
            # Coalesce: commits within `batch_interval_s` of the last evaluation wait for the
            # next one, so a backlog's many commits (each touching most machines) cost one
            # evaluation per interval instead of one each, and leave the CPU to the writer.
            pause = last + self.options.batch_interval_s - time.monotonic()
            if pause > 0 and self._stop.wait(pause):
                break
            self._wake.clear()
            last = time.monotonic()
            with self._lock:
                pending, self._pending = self._pending, {}
            for tenant, machines in pending.items():
                self._guarded(tenant, lambda t=tenant, m=machines: self.engine.after_commit(t, m))
            self.batch_evaluations += 1
            self.batch_seconds += time.monotonic() - last

    def _guarded(self, tenant: Tenant, evaluate: Callable[[], list[uuid.UUID]],
                 summary: bool = False) -> None:
        """Evaluate, then deliver; an error is logged and retried at the next sweep (the
        rows are in the database, nothing is lost by waiting)."""
        try:
            raised = evaluate()
            if raised:
                self.raised += len(raised)
                log.info("maintenance tasks raised", extra={"count": len(raised)})
                for observe in self.raised_observers:
                    observe(raised)
            self.deliver(tenant, summary)
        except Exception:
            log.exception("maintenance evaluation failed; retried at the next sweep")

    def deliver(self, tenant: Tenant, summary: bool = False) -> None:
        """Publish the tenant's pending events (and, after some or with `summary`, its
        retained summary) and post its due webhooks."""
        with self.engine.pool.connection() as conn:
            if self.notifier and (self.notifier.publish_pending(conn, tenant) or summary):
                self.notifier.publish_summary(conn, tenant, self.engine.clock())
            self.webhooks.deliver_pending(conn, tenant, self.engine.clock())


def open_runner(database: DatabaseSettings, options: MaintenanceOptions,
                clock: Clock = utc_now) -> EngineRunner:
    """A runner with a small pool of its own, as the application role (closed by stop())."""
    pool = ConnectionPool(database.application_url(), min_size=1, max_size=3, open=True,
                          kwargs={"autocommit": True,
                                  "connect_timeout": database.connect_timeout_s},
                          name="maintenance")
    runner = EngineRunner(MaintenanceEngine(pool, clock, options.settling), options)
    runner.owns_pool = True
    return runner
