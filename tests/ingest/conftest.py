"""Fixtures for ingest tests: a seeded database, a broker, the ingest in-process."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator

import pytest

from core.settings import load_settings
from ingest.service import IngestService
from ingest.settings import IngestSettings
from mes.services.broker import BrokerServer
from tests.fixtures.database import TestDatabase
from tests.ingest.helpers import ingest_env


def settings_for(db: TestDatabase, broker: BrokerServer, client_id: str,
                 monkeypatch: pytest.MonkeyPatch, **extra: str) -> IngestSettings:
    for key, value in ingest_env(db, broker, client_id, **extra).items():
        if key.startswith("MES_"):
            monkeypatch.setenv(key, value)
    return load_settings(None, IngestSettings)


@pytest.fixture
def start_ingest(database: TestDatabase, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[Callable[..., IngestService]]:
    """Start in-process ingests against a broker; all stopped after the test."""
    started: list[IngestService] = []

    def start(broker: BrokerServer, client_id: str | None = None, **extra: str
              ) -> IngestService:
        # A persistent session outlives its ingest, and mosquitto keeps giving an offline
        # member of a shared group its share: each test gets a group of its own.
        extra.setdefault("MES_MQTT__SHARE_GROUP", f"t{uuid.uuid4().hex[:8]}")
        settings = settings_for(database, broker, client_id or f"ingest-{uuid.uuid4().hex[:6]}",
                                monkeypatch, **extra)
        service = IngestService(settings)
        service.start()
        assert service.consumer.subscribed.wait(10), "ingest did not subscribe"
        started.append(service)
        return service

    yield start
    for s in started:
        if not s.stop_event.is_set():
            s.stop(timeout=10)
