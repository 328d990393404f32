"""Test helpers for the outbox and publisher: record makers, a collecting subscriber, and a TCP
proxy that can withhold the broker's acknowledgements.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from core.wire import (
    CounterRecord,
    Envelope,
    GatewayStatus,
    Kind,
    MachineState,
    StateRecord,
    TelemetryRecord,
    Topic,
    decode,
)
from mes.services.ports import LOOPBACK, free_port

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ORG, PLANT, GATEWAY = "acme", "plant-a", "gw-1"


def state(machine: str, i: int) -> StateRecord:
    states = (MachineState.RUNNING, MachineState.IDLE, MachineState.FAULT)
    return StateRecord(machine=machine, ts=T0 + timedelta(seconds=i), state=states[i % 3])


def counter(machine: str, i: int) -> CounterRecord:
    return CounterRecord(machine=machine, tag="cycles", ts=T0 + timedelta(seconds=i), value=i)


def telemetry(machine: str, i: int) -> TelemetryRecord:
    return TelemetryRecord(machine=machine, tag="speed", ts=T0 + timedelta(seconds=i), value=i / 3)


@dataclass(frozen=True)
class Received:
    topic: Topic
    payload: bytes

    @property
    def envelope(self) -> Envelope:
        return decode(self.topic.kind, self.payload)


class Collector:
    """A QoS 1 subscriber to everything under mes/v1, keeping each message as it arrived.

    `persistent=True` gives it an MQTT 5 session that outlives a disconnect (and, with the
    broker's persistence, a broker restart), so nothing published meanwhile is missed.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        persistent: bool = False,
        v5: bool = True,
        ca_file: Path | None = None,
        auth: tuple[str, str] | None = None,
    ) -> None:
        self.messages: list[Received] = []
        self.statuses: list[GatewayStatus] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"collector-{free_port()}",
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        )
        self._client.reconnect_delay_set(1, 2)
        if ca_file is not None:
            self._client.tls_set(ca_certs=str(ca_file))
        if auth is not None:
            self._client.username_pw_set(*auth)
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *a: self._subscribed.set()
        self._client.on_message = self._on_message
        props = None
        if persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 600
        if v5:
            self._client.connect(
                host, port, keepalive=10, clean_start=not persistent, properties=props
            )
        else:
            self._client.connect(host, port, keepalive=10)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            raise AssertionError("collector did not subscribe")

    def _on_connect(self, client: mqtt.Client, *args: object) -> None:
        client.subscribe("mes/v1/#", qos=1)

    def _on_message(self, client: mqtt.Client, userdata: object, msg: mqtt.MQTTMessage) -> None:
        topic = Topic.parse(msg.topic)
        with self._lock:
            if topic.kind is Kind.STATUS:
                self.statuses.append(msgspec.json.decode(msg.payload, type=GatewayStatus))
            else:
                self.messages.append(Received(topic, msg.payload))

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def records(self) -> list[object]:
        """Every record received (duplicates from replays included), in arrival order."""
        return [r for m in self.snapshot() for r in m.envelope.records]

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()


class AckHoldingProxy:
    """A TCP proxy to the broker. While `hold` is set when a client connects, the broker's
    first packet (the CONNACK) goes through and nothing after it: the client publishes, the
    broker receives, and no PUBACK ever comes back. Connections made with `hold` unset pass
    everything."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.hold = False
        self._target = target_port
        self._listen = socket.create_server((LOOPBACK, self.port))
        self._listen.setblocking(False)
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._listen, selectors.EVENT_READ)
        self._peer: dict[socket.socket, socket.socket] = {}
        self._held: dict[socket.socket, bytearray | None] = {}  # upstream -> CONNACK buffer
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ack-proxy", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for key, _ in self._sel.select(timeout=0.05):
                sock = key.fileobj
                if sock is self._listen:
                    self._accept()
                else:
                    self._forward(sock)  # type: ignore[arg-type]

    def _accept(self) -> None:
        client, _ = self._listen.accept()
        try:
            upstream = socket.create_connection((LOOPBACK, self._target))
        except OSError:  # the broker is down: the client sees its connection closed
            client.close()
            return
        self._peer[client], self._peer[upstream] = upstream, client
        if self.hold:
            self._held[upstream] = bytearray()
        for s in (client, upstream):
            self._sel.register(s, selectors.EVENT_READ)

    def _forward(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(65536)
        except OSError:
            data = b""
        peer = self._peer.get(sock)
        if not data or peer is None:
            self._drop(sock)
            return
        if sock in self._held:
            buf = self._held[sock]
            if buf is None:
                return  # past the CONNACK: withheld
            buf += data
            size = _first_packet_size(buf)
            if size is None:
                return
            data = bytes(buf[:size])
            self._held[sock] = None
        try:
            peer.sendall(data)
        except OSError:
            self._drop(sock)

    def _drop(self, sock: socket.socket) -> None:
        for s in (sock, self._peer.pop(sock, None)):
            if s is None:
                continue
            self._peer.pop(s, None)
            self._held.pop(s, None)
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(s)
            s.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for s in list(self._peer):
            if s in self._peer:
                self._drop(s)
        self._sel.close()
        self._listen.close()


def _first_packet_size(buf: bytearray) -> int | None:
    """Size of the first MQTT packet in `buf` (fixed header + remaining length), if complete."""
    length, mult = 0, 1
    for i in range(1, min(len(buf), 5)):
        length += (buf[i] & 0x7F) * mult
        if not buf[i] & 0x80:
            size = 1 + i + length
            return size if len(buf) >= size else None
        mult *= 128
    return None
