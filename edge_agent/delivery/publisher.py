"""The MQTT publisher: drains the outbox to the broker, in order, QoS 1, deleting on PUBACK only.

One thread owns the paho client and runs its network loop itself (`client.loop()`), so the
connection, the callbacks, the flush tick and the draining all happen in one place, with no
locks between them. Each turn of the loop:

- every `flush_interval_s` (the tick) the records handed to the outbox so far become due;
- while disconnected, it reconnects after a capped exponential backoff with jitter (full
  jitter between half and all of the delay), so a plant's gateways do not all come back at once
  after the broker restarts;
- while connected it fills paho's in-flight window: first the retained `online` birth after
  every connect, then stored messages not in flight (left by a restart, refused by a full
  window or by the broker), then new messages assembled from due records. It publishes until
  paho refuses with MQTT_ERR_QUEUE_SIZE (its window is full; this does not raise): the refused
  message stays in the outbox and goes first on the next turn, after a PUBACK makes room.

A message leaves the outbox only in `on_publish` with a success reason code. Under MQTT 5 a
failure code (135 Not authorized: the broker's ACL) is never counted as delivered: the message
stays, the refusal is counted and logged as an error, and its kind is held back with a growing
delay before it is tried again, while the other kinds go on. Under MQTT 3.1.1 the broker
acknowledges a refused publish as if delivered (docs/edge-agent.md, "Why MQTT 5"): only MQTT 5
can make that loud.

After a reconnect paho sends the messages that were in flight again, same mid, same bytes as in
the outbox; after a restart the stored ones are published again from the outbox, same seq and
payload. A long backlog drains at the rate PUBACKs come back, with full messages, while the
outbox's round robin between kinds keeps live state and downtime from waiting behind it.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from core.backoff import Backoff
from core.wire import GatewayStatus, Kind, Topic, encode
from edge_agent.delivery.mqtt_client import build_client
from edge_agent.delivery.outbox import RECORD_KINDS, Outbox, StoredMessage
from edge_agent.delivery.settings import BrokerConfig

log = logging.getLogger(__name__)

_NOT_AUTHORIZED = 135
_MAX_LOOP_WAIT_S = 0.25
_CONNACK_TIMEOUT_S = 10.0
_RATE_WINDOW_S = 10


class ConnectionState(enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    CONNECTED = "connected"


@dataclass(frozen=True, slots=True)
class PublisherStats:
    """Counters since start, for metrics. `publish_rate` is messages acked per second (10 s)."""

    state: ConnectionState
    connects: int
    disconnects: int
    published: int
    acked: int
    acked_records: int
    refused: int
    window_full: int
    retried: int
    inflight: int
    publish_rate: float


class Publisher:
    """Publishes one gateway's outbox to the broker until `stop()`.

    `start()` after opening the outbox; `stop()` before closing it. The counters (`stats()`)
    are for metrics and may be read from any thread.
    """

    def __init__(
        self,
        outbox: Outbox,
        broker: BrokerConfig,
        *,
        org: str,
        plant: str,
        gateway: str,
        agent_version: str,
        config_hash: str,
    ) -> None:
        self.outbox = outbox
        self.broker = broker
        self.gateway = gateway
        self._topics = {k: str(Topic(org, plant, gateway, k)) for k in RECORD_KINDS}
        self._status_topic = Topic(org, plant, gateway, Kind.STATUS)
        self._agent_version = agent_version
        self._config_hash = config_hash
        self._client = build_client(broker, self._status_topic, gateway)
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._client.on_publish = self._on_publish
        self._thread = threading.Thread(target=self._run, name="mqtt-publisher", daemon=True)
        self._stopping = threading.Event()
        self._drain_timeout = 0.0
        # Owned by the publisher thread; other threads only read the counters.
        self.state = ConnectionState.DISCONNECTED
        self._backoff = Backoff(broker.reconnect_min_s, broker.reconnect_max_s)
        self._next_attempt = 0.0
        self._connect_deadline = 0.0
        self._inflight: dict[int, StoredMessage] = {}  # paho mid -> message
        self._status_mids: set[int] = set()
        self._birth_pending = False
        self._check_stored = True  # stored messages not in flight may exist
        self._held: dict[Kind, tuple[float, float]] = {}  # kind -> (retry at, delay)
        self._acked_at: deque[tuple[int, int]] = deque()  # (second, messages acked then)
        self.connects = self.disconnects = 0
        self.published = self.acked = self.acked_records = 0
        self.refused = self.window_full = self.retried = 0

    # -- public ---------------------------------------------------------------------------

    def start(self) -> None:
        """Start the publisher thread; it connects (and keeps reconnecting) by itself."""
        self._thread.start()

    def stop(self, drain_timeout: float = 5.0) -> None:
        """Publish what the outbox holds and the retained `offline` status, wait up to
        `drain_timeout` for their PUBACKs, disconnect and end the thread. What is not
        acknowledged stays in the outbox for the next start."""
        self._drain_timeout = drain_timeout
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join()

    @property
    def connected(self) -> bool:
        return self.state is ConnectionState.CONNECTED

    def stats(self) -> PublisherStats:
        """A snapshot of the counters (safe from any thread)."""
        now = int(time.monotonic())
        recent = sum(n for second, n in list(self._acked_at) if second > now - _RATE_WINDOW_S)
        return PublisherStats(
            state=self.state,
            connects=self.connects,
            disconnects=self.disconnects,
            published=self.published,
            acked=self.acked,
            acked_records=self.acked_records,
            refused=self.refused,
            window_full=self.window_full,
            retried=self.retried,
            inflight=len(self._inflight),
            publish_rate=recent / _RATE_WINDOW_S,
        )

    # -- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        next_tick = time.monotonic()
        while not self._stopping.is_set():
            try:
                next_tick = self._turn(next_tick)
            except Exception:
                # An outbox error (disk full) must not end publishing for good: log, retry.
                log.exception("publisher turn failed; retrying")
                self._stopping.wait(1.0)
        self._shutdown()

    def _turn(self, next_tick: float) -> float:
        """One turn of the loop (module docstring); returns when the next tick is due."""
        now = time.monotonic()
        if now >= next_tick:
            self.outbox.mark_due()
            next_tick = now + self.broker.flush_interval_s
        if self.state is ConnectionState.DISCONNECTED and now >= self._next_attempt:
            self._connect()
        elif self.state is ConnectionState.CONNECTING and now >= self._connect_deadline:
            log.warning("no CONNACK from the broker in time", extra={"host": self.broker.host})
            self._client.disconnect()
            self._lost()
        if self.state is ConnectionState.CONNECTED:
            self._fill_window()
        wait = max(0.0, min(next_tick - time.monotonic(), _MAX_LOOP_WAIT_S))
        if self.state is ConnectionState.DISCONNECTED:
            self._stopping.wait(min(wait, max(0.0, self._next_attempt - time.monotonic())))
        elif self._client.loop(timeout=wait) != mqtt.MQTT_ERR_SUCCESS:
            self._lost()
        return next_tick

    def _connect(self) -> None:
        b = self.broker
        try:
            if b.v5:
                self._client.connect(b.host, b.port, b.keepalive_s, clean_start=True)
            else:
                self._client.connect(b.host, b.port, b.keepalive_s)
        except OSError as e:  # refused, unreachable, TLS handshake failed
            delay = self._backoff.delay()
            self._next_attempt = time.monotonic() + delay
            log.warning(
                "cannot connect to the broker",
                extra={"host": b.host, "port": b.port, "error": str(e), "retry_in_s": delay},
            )
            return
        self.state = ConnectionState.CONNECTING
        self._connect_deadline = time.monotonic() + _CONNACK_TIMEOUT_S

    def _lost(self) -> None:
        if self.state is ConnectionState.DISCONNECTED:
            return
        if self.state is ConnectionState.CONNECTED:
            self.disconnects += 1
        self.state = ConnectionState.DISCONNECTED
        delay = self._backoff.delay()
        self._next_attempt = time.monotonic() + delay
        log.warning(
            "disconnected from the broker",
            extra={"host": self.broker.host, "inflight": len(self._inflight), "retry_in_s": delay},
        )

    def _fill_window(self) -> None:
        if self._birth_pending:
            status = GatewayStatus(
                v=1,
                gateway=self.gateway,
                status="online",
                ts=datetime.now(UTC),
                agent_version=self._agent_version,
                config_hash=self._config_hash,
            )
            info = self._client.publish(
                str(self._status_topic), encode(status), qos=self.broker.qos, retain=True
            )
            if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
                self.window_full += 1
                return
            self._status_mids.add(info.mid)
            self._birth_pending = False
        # Room counts data messages only; status messages share paho's window, so now and then
        # a publish meets a full window (QUEUE_SIZE) and is handled like any refusal.
        room = self.broker.max_inflight - len(self._inflight)
        now = time.monotonic()
        held = {k for k, (at, _) in self._held.items() if at > now}
        while room > 0:
            batch: list[StoredMessage] = []
            if self._check_stored:
                in_flight = {m.seq for m in self._inflight.values()}
                batch = self.outbox.stored(exclude=in_flight, skip_kinds=held, limit=room)
                self._check_stored = bool(batch) or bool(self._held)
                self.retried += len(batch)
            if not batch:
                batch = self.outbox.assemble(
                    room,
                    max_records=self.broker.max_records_per_message,
                    max_bytes=self.broker.max_message_bytes,
                    skip_kinds=held,
                )
            if not batch:
                return
            for msg in batch:
                if not self._publish(msg):
                    return
                room -= 1

    def _publish(self, msg: StoredMessage) -> bool:
        """Hand one message to paho; False when its window is full (the message stays)."""
        info = self._client.publish(
            self._topics[msg.kind], msg.payload, qos=self.broker.qos, retain=False
        )
        if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:
            self.window_full += 1
            self._check_stored = True
            return False
        # SUCCESS, or NO_CONN: paho keeps it and sends it after the reconnect.
        self._inflight[info.mid] = msg
        self.published += 1
        return True

    def _shutdown(self) -> None:
        if self.state is ConnectionState.CONNECTED:
            # What the agent handed over last (its machines going offline) is sent too, within
            # the drain time; the rest stays in the outbox.
            self.outbox.mark_due()
            self._fill_window()
            offline = GatewayStatus(
                v=1, gateway=self.gateway, status="offline", ts=datetime.now(UTC)
            )
            info = self._client.publish(
                str(self._status_topic), encode(offline), qos=self.broker.qos, retain=True
            )
            if info.rc != mqtt.MQTT_ERR_QUEUE_SIZE:
                self._status_mids.add(info.mid)
            deadline = time.monotonic() + self._drain_timeout
            while (
                self.state is ConnectionState.CONNECTED
                and (self._inflight or self._status_mids)
                and time.monotonic() < deadline
            ):
                if self._client.loop(timeout=0.1) != mqtt.MQTT_ERR_SUCCESS:
                    break
                if self.state is ConnectionState.CONNECTED:
                    self._fill_window()
            self._client.disconnect()
        self.state = ConnectionState.DISCONNECTED
        self.outbox.flush()
        log.info("publisher stopped", extra={"inflight_left": len(self._inflight)})

    # -- paho callbacks (run inside client.loop(), on the publisher thread) --------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.ConnectFlags,
        reason_code: ReasonCode,
        properties: mqtt.Properties | None,
    ) -> None:
        if reason_code.is_failure:
            log.error(
                "the broker refused the connection",
                extra={"host": self.broker.host, "reason": str(reason_code)},
            )
            self._lost()
            return
        self.state = ConnectionState.CONNECTED
        self.connects += 1
        self._backoff.reset()
        self._birth_pending = True
        self._check_stored = True
        # paho sends the messages that were in flight again, with the same bytes.
        self.retried += len(self._inflight)
        log.info(
            "connected to the broker",
            extra={
                "host": self.broker.host,
                "port": self.broker.port,
                "resending": len(self._inflight),
            },
        )

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: object,
        flags: mqtt.DisconnectFlags,
        reason_code: ReasonCode,
        properties: mqtt.Properties | None,
    ) -> None:
        if not self._stopping.is_set():
            self._lost()

    def _on_publish(
        self,
        client: mqtt.Client,
        userdata: object,
        mid: int,
        reason_code: ReasonCode,
        properties: mqtt.Properties | None,
    ) -> None:
        if mid in self._status_mids:
            self._status_mids.discard(mid)
            if reason_code.is_failure:
                # A refused birth is the first sign of an ACL that refuses everything (and
                # mosquitto then drops the connection): make it as loud as a refused message.
                self.refused += 1
                topic = str(self._status_topic)
                extra = {"topic": topic, "reason": str(reason_code)}
                if reason_code.value == _NOT_AUTHORIZED:
                    log.error(f"gateway ACL refuses topic {topic}: fix the broker ACL",
                              extra=extra)
                else:
                    log.error(f"the broker refused the status message on {topic}", extra=extra)
            return
        msg = self._inflight.pop(mid, None)
        if msg is None:
            return
        if reason_code.is_failure:
            self._refused(msg, reason_code)
            return
        self.outbox.ack(msg.seq)
        self.acked += 1
        self.acked_records += msg.n_records
        self._held.pop(msg.kind, None)
        second = int(time.monotonic())
        if self._acked_at and self._acked_at[-1][0] == second:
            self._acked_at[-1] = (second, self._acked_at[-1][1] + 1)
        else:
            self._acked_at.append((second, 1))
            while self._acked_at[0][0] <= second - _RATE_WINDOW_S:
                self._acked_at.popleft()

    def _refused(self, msg: StoredMessage, reason_code: ReasonCode) -> None:
        self.refused += 1
        self._check_stored = True
        now = time.monotonic()
        until, last = self._held.get(msg.kind, (0.0, 0.0))
        if until > now:  # the rest of a window refused like the first: one round, one log
            return
        delay = min(self.broker.reconnect_max_s, max(self.broker.reconnect_min_s, last * 2))
        self._held[msg.kind] = (now + delay, delay)
        topic = self._topics[msg.kind]
        extra = {"topic": topic, "seq": msg.seq, "reason": str(reason_code), "retry_in_s": delay}
        if reason_code.value == _NOT_AUTHORIZED:
            log.error(f"gateway ACL refuses topic {topic}: fix the broker ACL", extra=extra)
        else:
            log.error(f"the broker refused a message on {topic}", extra=extra)
