"""Write a tenant's batch in one transaction as the application role, retrying what is
transient, refusing what is the data's fault.

The transaction: tenant context (SET LOCAL), then per kind a binary COPY into the owner-made
staging table and the kind's write function (core.staging), then COMMIT. Only after the
commit does the caller acknowledge the messages.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from core.backoff import Backoff
from core.staging import write_staged
from core.tenancy import Tenant, tenant_transaction

log = logging.getLogger(__name__)
T = TypeVar("T")

# SQLSTATE classes that say "try again": connection exceptions, transaction rollbacks
# (serialization, deadlock), insufficient resources, operator intervention (shutdown).
_TRANSIENT_CLASSES = ("08", "40", "53", "57", "58")


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
    """Commits a tenant's batch (every kind of it) in one transaction as the application role.

    Transient errors are retried through `retry`; an error that is the data's fault (a check or
    foreign key violation, a row outside the tenant) is raised as BatchRefused, so the caller
    can isolate the message at fault.
    """

    def __init__(self, pool: ConnectionPool, retry: Retrier) -> None:
        self._pool = pool
        self._retry = retry

    def write(self, tenant: Tenant, rows: Mapping[str, Sequence[tuple[Any, ...]]]
              ) -> dict[str, int]:
        """Commit `rows` (by staging kind) under `tenant`; returns rows written per kind.
        Raises BatchRefused or Stopping."""
        return self._retry(lambda: self._write_once(tenant, rows), "write batch")

    def _write_once(self, tenant: Tenant, rows_of: Mapping[str, Sequence[tuple[Any, ...]]]
                    ) -> dict[str, int]:
        written = {}
        try:
            with self._pool.connection() as conn, tenant_transaction(conn, tenant):
                for kind, rows in rows_of.items():
                    written[kind] = write_staged(conn, kind, rows)
        except psycopg.Error as e:
            if is_transient(e):
                raise
            raise BatchRefused(f"{type(e).__name__}: {str(e).strip()}") from e
        return written

