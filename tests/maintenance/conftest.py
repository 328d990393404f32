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
from tests.ingest.helpers import Publisher
from tests.maintenance.helpers import Clock

Evaluations = list[tuple[float, list[uuid.UUID]]]


@pytest.fixture
def publisher(broker_server) -> Iterator[Publisher]:
    """A QoS 1 publisher to the test broker that waits for every PUBACK."""
    pub = Publisher(broker_server)
    yield pub
    pub.close()


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
def ingest_with_engine(engine: MaintenanceEngine, broker_server, start_ingest  # noqa: F811
                       ) -> Iterator[Callable[[], tuple[IngestService, Evaluations]]]:
    """Start an ingest whose commits are evaluated by `engine` right after each commit (on the
    writer thread; the engine is set up first so that it outlives the ingest); returns the
    service and, per evaluation, (messages written by then, task ids raised), so that a test
    waits for "n messages written and evaluated"."""

    services: list[IngestService] = []

    def start() -> tuple[IngestService, Evaluations]:
        service = start_ingest(broker_server)
        services.append(service)
        raised: Evaluations = []
        metrics = service.metrics  # not the service: a cycle would keep its paho client alive

        def evaluate(tenant: Tenant, machines: frozenset[uuid.UUID]) -> None:
            ids = engine.after_commit(tenant, machines)
            raised.append((metrics.sample("ingest_messages_total", outcome="written"), ids))

        service.commit_observers.append(evaluate)
        return service, raised

    yield start
    for service in services:
        service.stop(timeout=10)
        # paho closes its wake-up socket pair only in Client.__del__; the client sits in a
        # reference cycle with the consumer, and when the garbage collector finalises the
        # sockets before the client they warn "unclosed" (an allocation-order accident the
        # engine's work makes likely). Dropping the reference frees the client at once.
        service.consumer._client = None  # type: ignore[assignment]
