"""Delivery of task events: on MQTT (QoS 1, the documented document, each event once) and to
signed webhooks (the signature verifies, failures are retried with backoff, a 2xx is final)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.tenancy import Tenant
from ingest.maintenance.engine import MaintenanceEngine
from ingest.maintenance.notify import MqttNotifier
from ingest.maintenance.settings import MaintenanceOptions, NotifyMqtt
from ingest.maintenance.webhooks import WebhookSender
from mes.services.ports import LOOPBACK
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants
from tests.maintenance.helpers import Clock, add_machine, add_schedule, tasks_of
from tests.support.wait import wait_until

START = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
SECRET = "s3cret-s3cret-s3cret"


def _raise_one(database: TestDatabase, tenants: Tenants, engine: MaintenanceEngine,
               clock: Clock, plant: str = "a1") -> dict:
    _, machine = add_machine(database, tenants, plant)
    schedule = add_schedule(database, tenants, plant, machine_id=machine,
                            trigger_kind="calendar", calendar_every=1, calendar_unit="days",
                            anchor_at=START, name="Grease")
    clock.now = START + timedelta(days=1)
    org = tenants.a if plant.startswith("a") else tenants.b
    engine.calendar(Tenant(org.id, org.plants[plant]))
    [task] = tasks_of(database, "schedule_id", schedule)
    return task


def test_a_raised_task_is_published_once_on_its_plants_topic(
        database: TestDatabase, tenants: Tenants, engine: MaintenanceEngine, clock: Clock,
        broker_server) -> None:
    got: list[tuple[str, dict, int]] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:6]}")
    sub.on_message = lambda _c, _u, m: got.append((m.topic, json.loads(m.payload), m.qos))
    sub.on_connect = lambda c, *_a: c.subscribe("mes/v1/+/+/maintenance/task", qos=1)
    sub.connect(broker_server.host, broker_server.port)
    sub.loop_start()
    protocol = "mqtt5" if broker_server.supports_mqtt5 else "mqtt311"
    notifier = MqttNotifier(NotifyMqtt(host=broker_server.host, port=broker_server.port,
                                       protocol=protocol))
    try:
        wait_until(lambda: sub.is_connected(), 20, "the subscriber")
        assert notifier.start()
        task = _raise_one(database, tenants, engine, clock)
        tenant = Tenant(tenants.a.id, tenants.a1)
        with engine.pool.connection() as conn:
            # Every unpublished event of the plant goes out (the seed's too); ours among them.
            assert notifier.publish_pending(conn, tenant) >= 1
            wait_until(lambda: any(d["task"]["id"] == task["id"] for _, d, _ in got), 20,
                       "the task event")
            assert notifier.publish_pending(conn, tenant) == 0
    finally:
        notifier.stop()
        sub.disconnect()
        sub.loop_stop()
    [(topic, doc, qos)] = [g for g in got if g[1]["task"]["id"] == task["id"]]
    assert topic == "mes/v1/org-a/a1/maintenance/task" and qos == 1
    assert (doc["v"], doc["event"], doc["organization"], doc["plant"]) == (
        1, "raised", "org-a", "a1")
    assert {"id", "kind", "title", "status", "machine", "occurrence", "due_at", "priority",
            "checklist", "evidence", "raised_by"} <= set(doc["task"])
    assert (doc["task"]["title"], doc["task"]["status"], doc["task"]["raised_by"]) == (
        "Grease", "open", "calendar")
    with database.superuser() as conn:
        row = conn.execute("SELECT count(*) FROM mes.pm_task_history WHERE task_id = %s "
                           "AND published_at IS NULL", (task["id"],)).fetchone()
    assert row == (0,)


def test_the_plants_summary_is_retained_and_counts_its_open_tasks(
        database: TestDatabase, tenants: Tenants, engine: MaintenanceEngine, clock: Clock,
        broker_server) -> None:
    protocol = "mqtt5" if broker_server.supports_mqtt5 else "mqtt311"
    notifier = MqttNotifier(NotifyMqtt(host=broker_server.host, port=broker_server.port,
                                       protocol=protocol))
    got: list[tuple[dict, bool]] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:6]}")
    sub.on_message = lambda _c, _u, m: got.append((json.loads(m.payload), m.retain))
    try:
        assert notifier.start()
        task = _raise_one(database, tenants, engine, clock, "b1")
        tenant = Tenant(tenants.b.id, tenants.b.plants["b1"])
        with engine.pool.connection() as conn:
            assert notifier.publish_summary(conn, tenant, clock.now)
            with database.superuser() as su:
                expected = su.execute(
                    "SELECT count(*), count(*) FILTER (WHERE task_kind = 'preventive') "
                    "FROM mes.pm_tasks WHERE plant_id = %s AND status IN ('open', "
                    "'acknowledged', 'in_progress')", (tenants.b.plants["b1"],)).fetchone()
        # A subscriber that comes later gets the summary at once: it is retained.
        sub.on_connect = lambda c, *_a: c.subscribe("mes/v1/org-b/b1/maintenance/summary",
                                                    qos=1)
        sub.connect(broker_server.host, broker_server.port)
        sub.loop_start()
        wait_until(lambda: got, 20, "the retained summary")
    finally:
        notifier.stop()
        sub.disconnect()
        sub.loop_stop()
    doc, retained = got[0]
    assert retained and task["status"] == "open"
    assert (doc["v"], doc["organization"], doc["plant"], doc["open"],
            doc["by_kind"]["preventive"]) == (1, "org-b", "b1", *expected)
    assert sum(doc["by_status"].values()) == sum(doc["by_priority"].values()) == doc["open"]
    assert set(doc) == {"v", "at", "organization", "plant", "open", "by_status", "by_kind",
                        "by_priority", "overdue", "oldest_due_at"}


class Receiver:
    """A webhook receiver on loopback: answers `codes` in turn (then 200), keeps requests."""

    def __init__(self, codes: list[int]) -> None:
        self.codes, self.requests = list(codes), []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(({k.lower(): v for k, v in self.headers.items()},
                                          body))
                self.send_response(receiver.codes.pop(0) if receiver.codes else 200)
                self.end_headers()

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.server.server_port}/hook"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver([500, 503])
    yield r
    r.close()


def test_webhook_is_signed_retried_with_backoff_and_never_repeated_after_2xx(
        database: TestDatabase, tenants: Tenants, engine: MaintenanceEngine, clock: Clock,
        receiver: Receiver) -> None:
    plant = tenants.a.plants["a2"]
    with database.superuser() as conn:
        conn.execute("INSERT INTO mes.pm_webhooks (organization_id, plant_id, name, url, "
                     "secret, created_at) VALUES (%s, %s, 'CMMS', %s, %s, %s)",
                     (tenants.a.id, plant, receiver.url, SECRET, START))
    task = _raise_one(database, tenants, engine, clock, "a2")
    sender = WebhookSender(MaintenanceOptions(webhook_retry_min_s=60, webhook_retry_max_s=600))
    tenant = Tenant(tenants.a.id, plant)

    def ours() -> list[tuple[dict, bytes]]:
        return [(h, b) for h, b in receiver.requests
                if json.loads(b)["task"]["id"] == task["id"]]

    # The receiver's answers go to whichever delivery comes first (the plant's seeded task
    # has one too); what counts is what our task's delivery got.
    with engine.pool.connection() as conn:
        sender.deliver_pending(conn, tenant, clock.now)
        first = len(ours())
        assert first == 1
        sender.deliver_pending(conn, tenant, clock.now)  # failures are not due again yet
        assert len(ours()) == first
        for _ in range(4):
            clock.now += timedelta(seconds=600)  # past any wait of 30..600 s
            sender.deliver_pending(conn, tenant, clock.now)
        clock.now += timedelta(days=1)
        assert sender.deliver_pending(conn, tenant, clock.now) == 0
    delivered = ours()
    assert 1 < len(delivered) <= 3  # retried after 5xx, then once 200, never again
    for headers, body in delivered:
        mac = hmac.new(SECRET.encode(), headers["x-mes-timestamp"].encode() + b"." + body,
                       hashlib.sha256).hexdigest()
        assert hmac.compare_digest(headers["x-mes-signature"], f"sha256={mac}")
    assert len({h["x-mes-delivery"] for h, _ in delivered}) == 1
    with database.superuser() as conn:
        row = conn.execute(
            "SELECT d.status, d.attempts, d.last_status_code FROM mes.pm_webhook_deliveries d "
            "JOIN mes.pm_task_history h ON h.id = d.history_id WHERE h.task_id = %s",
            (task["id"],)).fetchone()
    assert row is not None and row[0] == "delivered" and row[2] == 200
    assert row[1] == len(delivered)
