"""The ingest under faults: killed, offline while data piles up, database and broker restarted,
two processes sharing the load. Every record lands exactly once (counted by natural key)."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from core import migrations
from core.wire import encode
from mes.services.ports import free_port
from tests.fixtures.database import TestDatabase
from tests.fixtures.services import require_mosquitto
from tests.fixtures.tenants import Tenants, seed_two_tenants
from tests.ingest.helpers import (
    BASE,
    IngestProcess,
    Publisher,
    UplinkHoldingProxy,
    count_rows,
    gateway_topic,
    healthy,
    ingest_env,
    messages_written,
    state_message,
    wait_subscribed,
)
from tests.support.wait import wait_until


def _messages(tenants: Tenants, first_seq: int, n: int, records: int,
              days_back: int) -> list[tuple[str, bytes]]:
    start = BASE - timedelta(days=days_back)
    return [(gateway_topic(tenants, "a2"),
             encode(state_message("gw-a2", seq, "a2-press", n=records, start=start)))
            for seq in range(first_seq, first_seq + n)]


def _window(tenants: Tenants, days_back: int) -> tuple[str, tuple]:
    start = BASE - timedelta(days=days_back)
    return ("machine_id = %s AND ts >= %s AND ts < %s",
            (tenants.a.machines["a2"], start, start + timedelta(days=1)))


def test_sigkill_mid_run_loses_and_doubles_nothing(database: TestDatabase, tenants: Tenants,
                                                    broker_server, tmp_path: Path) -> None:
    require_mosquitto(broker_server)  # amqtt does not redeliver a killed session's messages
    group = f"k{uuid.uuid4().hex[:6]}"
    env = ingest_env(database, broker_server, "ingest-kill", MES_MQTT__SHARE_GROUP=group)
    ingest = IngestProcess(env, tmp_path / "ingest.log").start()
    wait_subscribed(database, broker_server, tenants)
    msgs = _messages(tenants, 1, 3000, 10, days_back=5)
    where, params = _window(tenants, 5)
    pub = Publisher(broker_server)
    publishing = threading.Thread(target=pub.publish, args=(msgs,))
    try:
        publishing.start()
        wait_until(lambda: count_rows(database, "machine_status_history", where, params) > 3000,
                   what="the ingest to be writing")
        ingest.kill()
        at_kill = count_rows(database, "machine_status_history", where, params)
        ingest = IngestProcess(env, tmp_path / "ingest.log").start()
        publishing.join(120)
        wait_until(lambda: count_rows(database, "machine_status_history", where, params)
                   == 30_000, timeout=120, what="all 30000 rows")
    finally:
        pub.close()
        if ingest.alive:
            ingest.terminate()
    assert at_kill < 30_000, "the kill came too late to test anything"
    assert count_rows(database, "machine_status_history", where, params) == 30_000
    assert count_rows(database, "dead_letters", "topic LIKE %s", ("%gw-a2%",)) == 0


def test_bad_message_redelivered_after_sigkill_is_one_dead_letter(
        database: TestDatabase, tenants: Tenants, broker_server, tmp_path: Path) -> None:
    require_mosquitto(broker_server)  # amqtt does not redeliver a killed session's messages
    proxy = UplinkHoldingProxy(broker_server.port)
    env = ingest_env(database, broker_server, f"ingest-redeliver-{uuid.uuid4().hex[:6]}",
                     MES_MQTT__SHARE_GROUP="", MES_MQTT__PORT=str(proxy.port))
    ingest = IngestProcess(env, tmp_path / "ingest.log").start()
    topic, payload = gateway_topic(tenants, "a1"), f"not json {uuid.uuid4()}".encode()
    where = ("topic = %s AND payload = %s", (topic, payload))
    pub = Publisher(broker_server)
    try:
        wait_subscribed(database, broker_server, tenants)
        proxy.hold.set()  # from now on the ingest's PUBACKs never reach the broker
        pub.publish([(topic, payload)])
        wait_until(lambda: count_rows(database, "dead_letters", *where) == 1,
                   what="the dead letter of the first delivery")
        ingest.kill()  # recorded, never acknowledged: the broker keeps the message
        proxy.hold.clear()
        ingest = IngestProcess(env, tmp_path / "ingest.log").start()
        wait_until(lambda: count_rows(database, "dead_letters", f"{where[0]} AND times_seen = 2",
                                      where[1]) == 1, what="the redelivery counted")
    finally:
        pub.close()
        if ingest.alive:
            ingest.terminate()
        proxy.close()
    assert count_rows(database, "dead_letters", *where) == 1


def test_ingest_down_while_50000_messages_are_published(database: TestDatabase,
                                                        tenants: Tenants, broker_server,
                                                        start_ingest) -> None:
    require_mosquitto(broker_server)
    group = f"o{uuid.uuid4().hex[:6]}"
    client_id = f"ingest-offline-{group}"
    first = start_ingest(broker_server, client_id, MES_MQTT__SHARE_GROUP=group)
    first.stop()  # the persistent session (and its subscription) stays with the broker
    msgs = _messages(tenants, 1, 50_000, 1, days_back=6)
    pub = Publisher(broker_server)
    try:
        pub.publish(msgs, timeout=300)
    finally:
        pub.close()
    where, params = _window(tenants, 6)
    assert count_rows(database, "machine_status_history", where, params) == 0
    start_ingest(broker_server, client_id, MES_MQTT__SHARE_GROUP=group)
    wait_until(lambda: count_rows(database, "machine_status_history", where, params)
               == 50_000, timeout=240, interval=1, what="all 50000 messages")


@pytest.fixture
def own_database(postgres_factory) -> tuple[TestDatabase, Tenants]:
    server = postgres_factory()
    with psycopg.connect(server.url(), autocommit=True) as conn:
        conn.execute("CREATE DATABASE mes")
    db = TestDatabase(server, "mes")
    migrations.migrate(db.superuser_url)
    return db, seed_two_tenants(db.superuser_url)


def test_database_restart_mid_run(own_database, broker_server, start_ingest,
                                  monkeypatch: pytest.MonkeyPatch) -> None:
    db, tenants = own_database
    import tests.ingest.conftest as fixtures

    monkeypatch.setattr(fixtures, "settings_for", _settings_for_db(db, fixtures.settings_for))
    service = start_ingest(broker_server)
    msgs = _messages(tenants, 1, 1500, 10, days_back=7)
    where, params = _window(tenants, 7)
    pub = Publisher(broker_server)
    publishing = threading.Thread(target=pub.publish, args=(msgs,), kwargs={"timeout": 180})
    try:
        publishing.start()
        wait_until(lambda: count_rows(db, "machine_status_history", where, params) > 1000,
                   what="writing")
        db.server.stop(mode="fast")
        threading.Event().wait(3)  # the ingest meets a dead database for a while
        db.server.start()
        publishing.join(180)
        wait_until(lambda: count_rows(db, "machine_status_history", where, params) == 15_000,
                   timeout=120, what="all 15000 rows")
    finally:
        pub.close()
    assert service.failure is None and not service.stop_event.is_set()
    assert service.metrics.sample("ingest_db_errors_total") > 0, "the restart was not noticed"


def _settings_for_db(db: TestDatabase, original):
    def settings_for(_database, broker, client_id, monkeypatch, **extra):
        return original(db, broker, client_id, monkeypatch, **extra)
    return settings_for


def test_broker_restart_mid_run(database: TestDatabase, tenants: Tenants, broker_factory,
                                start_ingest) -> None:
    broker = broker_factory()
    require_mosquitto(broker)
    # A plain subscription: mosquitto 2.0 does not restore a shared subscription of an offline
    # session after its restart (see docs/operations.md), so messages published before the
    # ingest is back would reach no one.
    service = start_ingest(broker, MES_MQTT__SHARE_GROUP="")
    first = _messages(tenants, 1, 500, 10, days_back=8)
    second = _messages(tenants, 501, 500, 10, days_back=8)
    where, params = _window(tenants, 8)
    # The test's publisher is a plain paho client: messages it wrote into the dead connection
    # are dropped by paho when its new session starts clean (the edge agent's outbox is what
    # guards against that, tested in tests/edge). So a fresh client publishes after the restart.
    pub = Publisher(broker)
    try:
        pub.publish(first)
        pub.close()
        broker.restart()
        pub = Publisher(broker)
        pub.publish(second, timeout=120)
        try:
            wait_until(lambda: count_rows(database, "machine_status_history", where, params)
                       == 10_000, timeout=120, what="all 10000 rows")
        except TimeoutError:
            m = service.metrics
            raise AssertionError(
                f"rows {count_rows(database, 'machine_status_history', where, params)}; "
                f"health {service.health()}; epoch {service.consumer.epoch}; messages "
                f"{[(s.labels, s.value) for c in m.messages.collect() for s in c.samples]}"
            ) from None
    finally:
        pub.close()
    assert service.failure is None
    assert service.consumer.subscribed.wait(10)


def test_two_ingests_share_the_load(database: TestDatabase, tenants: Tenants, broker_server,
                                    tmp_path: Path) -> None:
    require_mosquitto(broker_server)
    group = f"s{uuid.uuid4().hex[:6]}"
    ports = [free_port(), free_port()]
    procs = [IngestProcess(ingest_env(database, broker_server, f"ingest-share-{i}-{group}",
                                      status_port=ports[i], MES_MQTT__SHARE_GROUP=group),
                           tmp_path / f"ingest-{i}.log").start() for i in range(2)]
    msgs = _messages(tenants, 1, 2000, 5, days_back=9)
    where, params = _window(tenants, 9)
    try:
        for port in ports:
            wait_until(lambda p=port: healthy(p), what="ingest health")
        for _ in range(4):  # probes land through either member
            wait_subscribed(database, broker_server, tenants)
        pub = Publisher(broker_server)
        try:
            pub.publish(msgs)
        finally:
            pub.close()
        wait_until(lambda: count_rows(database, "machine_status_history", where, params)
                   == 10_000, timeout=120, what="all rows")
        shares = [messages_written(p) for p in ports]
    finally:
        for p in procs:
            p.terminate()
    assert all(s > 0 for s in shares), shares
    assert sum(shares) >= 2000
