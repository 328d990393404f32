"""Publish task events on MQTT, QoS 1, from the history table (the outbox): a row is marked
`published_at` only after the broker's PUBACK, so a crash re-publishes (at least once; the
`event_id` lets a subscriber drop a repeat) and never loses one. After events of a plant, and
at every sweep, the plant's summary of open tasks is published retained (QoS 1), so that a
subscriber gets the current one at once. The client logs in as the `mes-maintenance` account,
which may write `mes/v1/+/+/maintenance/task` and `.../summary` only."""

from __future__ import annotations

import json
import logging
import threading
import uuid
from datetime import datetime

import paho.mqtt.client as mqtt
import psycopg

from core.mqtt import build_client
from core.tenancy import Tenant, tenant_transaction
from ingest.maintenance.payload import summary, task_events, topic
from ingest.maintenance.settings import NotifyMqtt

log = logging.getLogger(__name__)
BATCH = 500


class MqttNotifier:
    """A connected publisher; `publish_pending(conn, tenant)` sends what is not yet sent."""

    def __init__(self, settings: NotifyMqtt, client_id: str | None = None) -> None:
        self.settings = settings
        self._connected = threading.Event()
        self._client = build_client(settings, client_id=client_id or settings.client_id
                                    or f"mes-maintenance-{uuid.uuid4().hex[:8]}",
                                    section="maintenance.mqtt", persistent_session=False)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = lambda *_a: self._connected.clear()
        self._client.reconnect_delay_set(int(settings.reconnect_min_s) or 1,
                                         int(settings.reconnect_max_s))

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, reason: object,
                    _p: object = None) -> None:
        if not getattr(reason, "is_failure", False):
            self._connected.set()

    def start(self, timeout: float = 10) -> bool:
        """Connect in the background; True once connected within `timeout`."""
        self._client.connect_async(self.settings.host, self.settings.port,
                                   self.settings.keepalive_s)
        self._client.loop_start()
        return self._connected.wait(timeout)

    def stop(self) -> None:
        """Disconnect."""
        self._client.disconnect()
        self._client.loop_stop()

    def publish_pending(self, conn: psycopg.Connection, tenant: Tenant,
                        timeout: float = 10) -> int:
        """Publish the tenant's unpublished task events, oldest first; returns how many the
        broker acknowledged. Stops at the first one it does not (retried next time)."""
        if not self._connected.is_set():
            return 0
        with tenant_transaction(conn, tenant):
            ids = [r[0] for r in conn.execute(
                "SELECT id FROM mes.pm_task_history WHERE published_at IS NULL "
                "ORDER BY at, id LIMIT %s FOR UPDATE SKIP LOCKED", (BATCH,))]
            sent = []
            for hid, org, plant, doc in task_events(conn, ids):
                info = self._client.publish(topic(org, plant), json.dumps(doc, default=str),
                                            qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    break
                info.wait_for_publish(timeout)
                if not info.is_published():
                    break
                sent.append(hid)
            if sent:
                conn.execute("UPDATE mes.pm_task_history SET published_at = now() "
                             "WHERE id = ANY(%s)", (sent,))
        if len(sent) < len(ids):
            log.warning("task events not acknowledged by the broker, retried later",
                        extra={"pending": len(ids) - len(sent)})
        return len(sent)

    def publish_summary(self, conn: psycopg.Connection, tenant: Tenant, now: datetime,
                        timeout: float = 10) -> bool:
        """Publish the plant's summary of open tasks, retained; True once acknowledged."""
        if not self._connected.is_set() or tenant.plant_id is None:
            return False
        with tenant_transaction(conn, tenant):
            found = summary(conn, tenant.plant_id, now)
        if found is None:
            return False
        org, plant, doc = found
        info = self._client.publish(topic(org, plant, "summary"), json.dumps(doc, default=str),
                                    qos=1, retain=True)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            return False
        info.wait_for_publish(timeout)
        return info.is_published()
