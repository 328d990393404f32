"""Test helpers for the ingest: envelopes, a publishing client, the ingest as a process."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.wire import (
    CounterEnvelope,
    CounterRecord,
    Envelope,
    Kind,
    MachineState,
    StateEnvelope,
    StateRecord,
    Topic,
    encode,
)
from mes.services.broker import BrokerServer
from mes.services.ports import LOOPBACK, free_port
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants
from tests.support.wait import wait_until

BASE = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1)


def state_message(gateway: str, seq: int, machine: str, n: int = 10,
                  start: datetime | None = None) -> StateEnvelope:
    """n state records of `machine`, one second apart; distinct per (gateway, seq)."""
    t0 = (start or BASE) + timedelta(seconds=seq * n)
    states = [MachineState.RUNNING, MachineState.IDLE, MachineState.FAULT]
    return StateEnvelope(v=1, gateway=gateway, seq=seq, sent_at=datetime.now(UTC), records=[
        StateRecord(machine=machine, ts=t0 + timedelta(seconds=i), state=states[i % 3])
        for i in range(n)])


def counter_message(gateway: str, seq: int, machine: str, n: int = 10) -> CounterEnvelope:
    t0 = BASE + timedelta(seconds=seq * n)
    return CounterEnvelope(v=1, gateway=gateway, seq=seq, sent_at=datetime.now(UTC), records=[
        CounterRecord(machine=machine, tag="cycles", ts=t0 + timedelta(seconds=i),
                      value=float(seq * n + i)) for i in range(n)])


def topic_for(tenants_org: str, plant: str, gateway: str, kind: Kind) -> str:
    return str(Topic(tenants_org, plant, gateway, kind))


class Publisher:
    """A plain MQTT 5 client that publishes QoS 1 and waits for every PUBACK."""

    def __init__(self, broker: BrokerServer, client_id: str | None = None) -> None:
        self._acked = 0
        self._lock = threading.Lock()
        v5 = broker.supports_mqtt5
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"test-pub-{uuid.uuid4().hex[:8]}",
                                  protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311)
        self.client.max_inflight_messages_set(200)
        self.client.on_publish = self._on_publish
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_publish(self, *_args: object) -> None:
        with self._lock:
            self._acked += 1

    def publish(self, items: Iterable[tuple[str, bytes]], timeout: float = 120) -> int:
        sent = 0
        with self._lock:
            base = self._acked
        for topic, payload in items:
            while True:
                info = self.client.publish(topic, payload, qos=1)
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    break
                time.sleep(0.01)  # in-flight window full: wait, never drop
            sent += 1

        def all_acked() -> bool:
            with self._lock:
                return self._acked - base >= sent

        wait_until(all_acked, timeout, f"{sent} PUBACKs", interval=0.01)
        return sent

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def envelopes(items: Sequence[tuple[str, Envelope]]) -> list[tuple[str, bytes]]:
    return [(t, encode(e)) for t, e in items]


def ingest_env(db: TestDatabase, broker: BrokerServer, client_id: str,
               status_port: int | None = None, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MES_")}
    env.update({
        "MES_DATABASE__URL": db.superuser_url,
        "MES_DATABASE__APP_URL": db.app_url,
        "MES_MQTT__HOST": broker.host,
        "MES_MQTT__PORT": str(broker.port),
        "MES_MQTT__CLIENT_ID": client_id,
        "MES_INGEST__BATCH_AGE_MS": "50",
        "MES_INGEST__RETRY_MAX_S": "1",
        "MES_LOG__FORMAT": "json",
        **extra,
    })
    if status_port is not None:
        env["MES_INGEST__STATUS_PORT"] = str(status_port)
    if not broker.supports_mqtt5:  # amqtt: MQTT 3.1.1, no shared subscriptions
        env.update({"MES_MQTT__PROTOCOL": "mqtt311", "MES_MQTT__SHARE_GROUP": ""})
    return env


@dataclass
class IngestProcess:
    """`mes ingest run` as a child process (to kill it with SIGKILL, run two of them)."""

    env: dict[str, str]
    log_path: Path
    args: Sequence[str] = ()  # options of `mes ingest run`
    proc: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> IngestProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "mes.cli", "ingest", "run",
                                      *self.args],
                                     env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        return self

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def terminate(self, timeout: float = 30) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def healthy(port: int) -> bool:
    """Whether a status endpoint on loopback `port` answers /health with 200."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def messages_written(port: int) -> float:
    """`ingest_messages_total{outcome="written"}` of the ingest whose status port is `port`."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    for line in text.splitlines():
        if line.startswith('ingest_messages_total{outcome="written"}'):
            return float(line.split()[-1])
    return 0.0


def count_rows(db: TestDatabase, table: str, where: str = "true", params: tuple = ()) -> int:
    with db.superuser() as conn:
        row = conn.execute(f"SELECT count(*) FROM mes.{table} WHERE {where}", params).fetchone()
    return int(row[0]) if row else 0


def gateway_topic(tenants: Tenants, plant: str, kind: Kind = Kind.STATE) -> str:
    org = tenants.a if plant.startswith("a") else tenants.b
    return topic_for(org.code, plant, f"gw-{plant}", kind)


def wait_subscribed(db: TestDatabase, broker: BrokerServer, tenants: Tenants,
                    timeout: float = 60) -> None:
    """Publish probes until one lands: the ingest is connected and subscribed.

    Messages published before any subscription exists go nowhere (MQTT keeps nothing for a
    subscription that does not exist yet), so fault tests start publishing only after this.
    """
    machine = tenants.a.machines["a1"]
    pub = Publisher(broker)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            probe = datetime.now(UTC) - timedelta(minutes=1)
            seq = int(time.time() * 1000) % 1_000_000_000
            env = StateEnvelope(v=1, gateway="gw-a1", seq=seq, sent_at=probe, records=[
                StateRecord(machine="a1-press", ts=probe, state=MachineState.IDLE)])
            pub.publish([(gateway_topic(tenants, "a1"), encode(env))])
            try:
                wait_until(lambda p=probe: count_rows(db, "machine_status_history",
                                                      "machine_id = %s AND ts = %s",
                                                      (machine, p)) == 1, timeout=1)
                return
            except TimeoutError:
                continue
        raise TimeoutError("the ingest never took a probe message")
    finally:
        pub.close()


class UplinkHoldingProxy:
    """A TCP proxy to the broker. While `hold` is set, what clients send (an ingest's PUBACKs)
    is swallowed, while what the broker sends still passes: the ingest handles and commits a
    message whose acknowledgement never arrives, as when it is killed before the ack is out."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self.hold = threading.Event()
        self._target = target_port
        self._listen = socket.create_server((LOOPBACK, self.port))
        threading.Thread(target=self._accept, name="uplink-proxy", daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listen.accept()
                upstream = socket.create_connection((LOOPBACK, self._target))
            except OSError:
                return
            for src, dst, uplink in ((client, upstream, True), (upstream, client, False)):
                threading.Thread(target=self._pump, args=(src, dst, uplink), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, uplink: bool) -> None:
        try:
            while data := src.recv(65536):
                if not (uplink and self.hold.is_set()):
                    dst.sendall(data)
        except OSError:
            pass
        finally:  # one side gone: close both, as a dead client's connection would
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def close(self) -> None:
        self._listen.close()
