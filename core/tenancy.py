"""The one way to work under a tenant: a transaction whose context is set with SET LOCAL
semantics (`set_config(..., true)`), so it ends with the transaction and a pooled connection
never carries one tenant's context into another's work.

Both the ingest (psycopg, for COPY) and the API (SQLAlchemy sessions) use it; both run the same
statement, SET_TENANT_SQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from sqlalchemy.orm import Session, sessionmaker

SET_TENANT_SQL = (
    "SELECT set_config('app.org_id', %(org)s, true),"
    " set_config('app.plant_id', %(plant)s, true),"
    " set_config('app.user_id', %(user)s, true)"
)


@dataclass(frozen=True, slots=True)
class Tenant:
    """Whose data a unit of work touches: an organization, optionally one plant (None = the
    whole organization), and the acting user recorded in created_by / updated_by."""

    organization_id: uuid.UUID
    plant_id: uuid.UUID | None = None
    user_id: uuid.UUID | None = None

    def params(self) -> dict[str, str]:
        return {
            "org": str(self.organization_id),
            "plant": str(self.plant_id) if self.plant_id else "",
            "user": str(self.user_id) if self.user_id else "",
        }


@contextmanager
def tenant_transaction(conn: psycopg.Connection, tenant: Tenant) -> Iterator[psycopg.Connection]:
    """A psycopg transaction under `tenant`; commits on success, rolls back on error."""
    with conn.transaction():
        conn.execute(SET_TENANT_SQL, tenant.params())
        yield conn


@contextmanager
def unit_of_work(sessions: sessionmaker[Session], tenant: Tenant) -> Iterator[Session]:
    """A SQLAlchemy session in one transaction under `tenant`; commits on success."""
    with sessions.begin() as session:
        enter_tenant(session, tenant)
        yield session


def enter_tenant(session: Session, tenant: Tenant) -> None:
    """Put the session's transaction under `tenant` from here on (what unit_of_work does
    first; for a transaction that had to learn its tenant inside it)."""
    session.connection().exec_driver_sql(SET_TENANT_SQL, tenant.params())
