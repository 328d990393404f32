"""Fixtures for the maintenance engine: the ingest in-process (tests/ingest), an engine on the
application role with an injected clock, and the ingest telling it about each commit."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest
from psycopg_pool import ConnectionPool

from core.tenancy import Tenant
from ingest.maintenance.engine import MaintenanceEngine
from ingest.service import IngestService
from tests.fixtures.database import TestDatabase
from tests.ingest.conftest import start_ingest  # noqa: F401 - a fixture, used by these tests
from tests.maintenance.helpers import Clock


@pytest.fixture
def clock() -> Clock:
    """A settable clock for the engine."""
    return Clock()


@pytest.fixture
def engine(database: TestDatabase, clock: Clock) -> Iterator[MaintenanceEngine]:
    """A MaintenanceEngine on the application role, reading `clock`."""
    pool = ConnectionPool(database.app_url, min_size=1, max_size=4, open=True,
                          kwargs={"autocommit": True}, name="test-maintenance")
    try:
        yield MaintenanceEngine(pool, clock)
    finally:
        pool.close()


@pytest.fixture
def ingest_with_engine(broker_server, start_ingest, engine: MaintenanceEngine  # noqa: F811
                       ) -> Callable[[], tuple[IngestService, list[tuple[float, list[uuid.UUID]]]]]:
    """Start an ingest whose commits are evaluated by `engine` right after each commit (on the
    writer thread); returns the service and, per evaluation, (messages written by then, task
    ids raised), so that a test waits for "n messages written and evaluated"."""

    def start() -> tuple[IngestService, list[tuple[float, list[uuid.UUID]]]]:
        service = start_ingest(broker_server)
        raised: list[tuple[float, list[uuid.UUID]]] = []

        def evaluate(tenant: Tenant, machines: frozenset[uuid.UUID]) -> None:
            ids = engine.after_commit(tenant, machines)
            raised.append((service.metrics.sample("ingest_messages_total",
                                                  outcome="written"), ids))

        service.commit_observers.append(evaluate)
        return service, raised

    return start
