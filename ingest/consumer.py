"""The MQTT side of the ingest: a persistent session, a shared subscription, manual acks.

paho's network loop runs in its own thread and only hands messages over (`on_message` puts
them on the pipeline's queue); nothing is acknowledged on arrival. `ack()` is called by the
pipeline after the transaction holding a message's records has committed.

Every (re)connection starts a new epoch. After a disconnect the broker redelivers what was
not acknowledged, so the pipeline drops work of older epochs instead of acknowledging it: a
late PUBACK for an old packet id could otherwise acknowledge a different, newer message.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from core.mqtt import build_client
from ingest.settings import MqttSubscriberSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Received:
    """One message as paho handed it over, stamped with its connection's epoch."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    epoch: int
    received: float  # time.monotonic()


class Consumer:
    """Connects, subscribes, queues messages; `ack(mid, qos, epoch)` after commit."""

    def __init__(self, settings: MqttSubscriberSettings, out: queue.Queue[Received]) -> None:
        self._settings = settings
        self._out = out
        self._v5 = settings.v5
        self._lock = threading.Lock()
        self.epoch = 0
        self.connected = threading.Event()
        self.subscribed = threading.Event()  # the broker acknowledged the subscription
        self._closed = threading.Event()
        self._stopping = False
        self.on_connection_change: list[Any] = []
        client = build_client(settings, client_id=settings.client_id, section="mqtt",
                              persistent_session=True, manual_ack=True)
        client.reconnect_delay_set(max(1, int(settings.reconnect_min_s)),
                                   max(1, int(settings.reconnect_max_s)))
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        self._client = client

    def start(self) -> None:
        """Connect in the background (paho retries until the broker is there)."""
        s = self._settings
        kwargs: dict[str, Any] = {}
        if self._v5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = s.session_expiry_s
            props.ReceiveMaximum = s.receive_maximum
            kwargs = {"clean_start": False, "properties": props}
        self._client.connect_async(s.host, s.port, s.keepalive_s, **kwargs)
        self._client.loop_start()

    def stop(self, timeout: float = 5.0) -> None:
        """Disconnect cleanly: queued PUBACKs go out before the DISCONNECT, and paho's loop is
        stopped only after the broker closed (stopping it at once can drop both)."""
        self._stopping = True
        self._closed.clear()
        self._client.disconnect()
        self._closed.wait(timeout)
        self._client.loop_stop()

    def ack(self, mid: int, qos: int, epoch: int) -> bool:
        """Acknowledge a committed message, unless its connection is gone (then the broker
        redelivers it, and the redelivered copy is acknowledged instead)."""
        with self._lock:
            if epoch != self.epoch or not self.connected.is_set():
                return False
            if qos > 0:
                self._client.ack(mid, qos)
            return True

    def _on_connect(self, client: mqtt.Client, _u: Any, flags: Any, reason: Any,
                    _p: Any) -> None:
        if reason.is_failure:
            log.error("broker refused the connection", extra={"reason": str(reason)})
            return
        with self._lock:
            self.epoch += 1
            self.connected.set()
        log.info("connected to broker", extra={
            "host": self._settings.host, "port": self._settings.port,
            "session_present": getattr(flags, "session_present", None), "epoch": self.epoch})
        # Retained messages only when the subscription is new, not at every reconnect: a
        # retained message (a gateway's status, or a stray retained publish) would otherwise
        # be handled again, and a bad one dead-lettered again, after each reconnect.
        options = SubscribeOptions(qos=1, retainHandling=SubscribeOptions.RETAIN_SEND_IF_NEW_SUB)
        client.subscribe(self._settings.subscription,
                         options=options if self._v5 else None, qos=0 if self._v5 else 1)
        for cb in self.on_connection_change:
            cb(True)

    def _on_subscribe(self, _c: mqtt.Client, _u: Any, _mid: int, reasons: Any, _p: Any) -> None:
        for r in reasons:
            if r.is_failure:
                log.error("subscription refused", extra={
                    "subscription": self._settings.subscription, "reason": str(r)})
                return
        self.subscribed.set()

    def _on_disconnect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        with self._lock:
            self.epoch += 1
            self.connected.clear()
            self.subscribed.clear()
        self._closed.set()
        if self._stopping:  # our own DISCONNECT: nothing to warn about, nothing to retry
            log.info("disconnected from broker", extra={"reason": str(reason)})
        else:
            log.warning("disconnected from broker; reconnecting", extra={"reason": str(reason)})
        for cb in self.on_connection_change:
            cb(False)

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        self._out.put(Received(msg.mid, msg.qos, msg.topic, msg.payload, self.epoch,
                               time.monotonic()))
