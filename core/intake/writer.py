"""Write tenants' batches in one transaction as the application role, retrying what is
transient, refusing what is the data's fault.

The transaction holds one or more tenants' batches, each written under its own tenant
context: per tenant and kind, the context (set_config, local to the transaction) and the
owner-made staging table in one statement, a binary COPY into it, and the kind's write
function, which checks every staged row against that context (core.staging); then COMMIT.
COPY cannot run in libpq's pipeline mode, so everything else is pipelined around it: BEGIN
with the first context, each write function with the next context, the last one with COMMIT.
One tenant and kind take three round trips (there were six), each further one two. Only after
the commit does the caller acknowledge the messages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from core.backoff import Backoff
from core.staging import STAGING, copy_staged, open_staging_sql
from core.tenancy import Tenant

log = logging.getLogger(__name__)
T = TypeVar("T")

# SQLSTATE classes that say "try again": connection exceptions, transaction rollbacks
# (serialization, deadlock), insufficient resources, operator intervention (shutdown).
_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")


class TenantRows(Protocol):
    """One tenant's rows by staging kind: what a transaction writes under that tenant's
    context (the ingest's batches are these; so is a replayed message)."""

    @property
    def tenant(self) -> Tenant: ...

    @property
    def rows(self) -> Mapping[str, Sequence[tuple[Any, ...]]]: ...


@dataclass(frozen=True)
class StagedRows:
    """`TenantRows` for a caller that batches nothing (a replay writes one message)."""

    tenant: Tenant
    rows: Mapping[str, Sequence[tuple[Any, ...]]]


class BatchRefused(Exception):
    """The database refused the batch because of its data; retrying the same rows won't help."""


class Stopping(Exception):
    """The service is stopping while a write was being retried; nothing was acknowledged."""


def is_transient(error: BaseException) -> bool:
    """Worth retrying: the pool or connection failed, or the SQLSTATE class says so."""
    if isinstance(error, PoolTimeout | psycopg.OperationalError | psycopg.InterfaceError):
        return True
    state = getattr(error, "sqlstate", None) or ""
    return state[:2] in _TRANSIENT_CLASSES


class Retrier:
    """Run a database call until it succeeds, waiting out transient errors with the capped,
    jittered backoff of core.backoff (`min_s` doubling up to `max_s`); any other error is
    raised at once. Shared by the pipeline's threads: each call has a backoff of its own."""

    def __init__(self, min_s: float, max_s: float, stop: threading.Event,
                 on_error: Callable[[BaseException], None] = lambda _e: None) -> None:
        Backoff(min_s, max_s)  # refuse a bad pair now, not at the first database error
        self.min_s, self.max_s, self.stop, self.on_error = min_s, max_s, stop, on_error

    def __call__(self, fn: Callable[[], T], what: str) -> T:
        """`fn()`'s result; raises Stopping when `stop` is set while waiting to retry."""
        backoff = Backoff(self.min_s, self.max_s)
        while True:
            try:
                return fn()
            except Exception as e:
                if not is_transient(e):
                    raise
                self.on_error(e)
                delay = backoff.delay()
                log.warning("database unavailable, retrying", extra={
                    "what": what, "error": str(e).strip(), "retry_in_s": round(delay, 2)})
            if self.stop.wait(delay):
                raise Stopping(what)


class Writer:
    """Commits tenants' batches (every kind of each) in one transaction as the application role.

    Transient errors are retried through `retry`; an error that is the data's fault (a check or
    foreign key violation, a row outside the tenant) is raised as BatchRefused, so the caller
    can write the batches one by one and isolate the message at fault.
    """

    def __init__(self, pool: ConnectionPool, retry: Retrier) -> None:
        self._pool = pool
        self._retry = retry

    def write(self, batches: Sequence[TenantRows]) -> list[dict[str, int]]:
        """Commit the batches together; returns rows written per kind, per batch. Raises
        BatchRefused (nothing committed) or Stopping."""
        return self._retry(lambda: self._write_once(batches), "write batch")

    def _write_once(self, batches: Sequence[TenantRows]) -> list[dict[str, int]]:
        try:
            with self._pool.connection() as conn:
                try:
                    return _transaction(conn, batches)
                except BaseException:
                    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE \
                            and not conn.broken:
                        conn.execute("ROLLBACK")
                    raise
        except psycopg.Error as e:
            if is_transient(e):
                raise
            raise BatchRefused(f"{type(e).__name__}: {str(e).strip()}") from e


def _transaction(conn: psycopg.Connection, batches: Sequence[TenantRows]
                 ) -> list[dict[str, int]]:
    written: list[dict[str, int]] = [{} for _ in batches]
    due: list[tuple[dict[str, int], str]] = []  # write functions to call at the next sync
    calls: list[tuple[dict[str, int], str, psycopg.Cursor[Any]]] = []

    def sync(*statements: tuple[str, dict[str, str] | None]) -> None:
        # The write functions due, then `statements`: one round trip. A refused write
        # function fails the sync (what follows it is skipped, COMMIT too).
        with conn.pipeline():
            for out, kind in due:
                calls.append((out, kind, conn.execute(f"SELECT {STAGING[kind].write_function}()")))
            due.clear()
            for statement, params in statements:
                conn.execute(statement, params)

    start: list[tuple[str, dict[str, str] | None]] = [("BEGIN", None)]
    for batch, out in zip(batches, written, strict=True):
        tenant: Tenant | None = batch.tenant  # set once, for the batch's first kind
        for kind, rows in batch.rows.items():
            sql, params = open_staging_sql(tenant)
            sync(*start, (sql, {**params, "kind": kind}))
            start, tenant = [], None
            copy_staged(conn, kind, rows)
            due.append((out, kind))
    if due:
        sync(("COMMIT", None))
    for out, kind, cursor in calls:
        row = cursor.fetchone()
        out[kind] = int(row[0]) if row else 0
    return written
