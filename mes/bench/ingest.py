"""`mes bench ingest`: the ingest against its ceiling and its floor, in one run.

On a private PostgreSQL and mosquitto (free loopback ports), with the demo tenant:

1. throughput: N messages (R state records each) are queued at the broker for the ingest's
   persistent session while it is stopped; the ingest is started and timed until every row
   is committed (so the figure is the ingest's, not the publisher's);
2. ceiling: the same rows written by one binary COPY straight into the same table;
3. naive: a consumer that INSERTs each record and commits per message (what one writes by
   hand), over the same messages;
4. latency: a steady offered load of half the measured rate for `--latency-seconds`; p50 and
   p99 from record time to commit;
5. burst: ten times the measured rate for a few seconds at an ingest running as its own
   process; its peak resident memory.

Prints a summary and one JSON line. Ratios, not absolute numbers, are what to compare across
machines.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion

from core import migrations
from core.settings import load_settings
from core.staging import STAGING
from core.wire import Kind, MachineState, StateEnvelope, StateRecord, Topic, encode
from ingest.service import IngestService
from ingest.settings import IngestSettings
from mes.demo_seed import DEMO_ORG, DemoTenant, seed_demo
from mes.services.broker import BrokerServer
from mes.services.postgres import PostgresServer

STATES = [MachineState.RUNNING, MachineState.IDLE, MachineState.FAULT, MachineState.STARVED]


def register_bench(benches: Any) -> None:
    """Add `mes bench ingest` to the `mes bench` parser."""
    p = benches.add_parser("ingest", help="ingest throughput and latency against COPY and naive")
    p.add_argument("--messages", type=int, default=2000)
    p.add_argument("--records", type=int, default=100, help="records per message")
    p.add_argument("--naive-messages", type=int, default=300,
                   help="messages for the naive consumer (it is slow)")
    p.add_argument("--latency-seconds", type=float, default=10)
    p.add_argument("--burst-seconds", type=float, default=5)
    p.set_defaults(func=cmd_bench_ingest)


class Feed:
    """Distinct state messages of the demo gateway: (topic, payload, rows) on demand."""

    def __init__(self, demo: DemoTenant, records: int) -> None:
        plant = next(iter(demo.gateways))
        self.gateway = demo.gateways[plant]
        self.machines = demo.machines[plant]
        self.topic = str(Topic(DEMO_ORG, plant, self.gateway, Kind.STATE))
        self.records = records
        self.seq = 0
        self.t0 = datetime.now(UTC) - timedelta(days=1)

    def message(self, ts: datetime | None = None) -> tuple[str, bytes]:
        """The next (topic, payload): `records` state records, the next seq."""
        self.seq += 1
        base = ts or self.t0 + timedelta(milliseconds=self.seq * self.records)
        recs = [StateRecord(machine=self.machines[i % len(self.machines)],
                            ts=base + timedelta(microseconds=i // len(self.machines)),
                            state=STATES[i % len(STATES)]) for i in range(self.records)]
        env = StateEnvelope(v=1, gateway=self.gateway, seq=self.seq,
                            sent_at=datetime.now(UTC), records=recs)
        return self.topic, encode(env)


class Pub:
    """A QoS 1 publisher that counts PUBACKs (the broker has the message)."""

    def __init__(self, broker: BrokerServer) -> None:
        self.acked = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=f"bench-pub-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(1000)
        self.client.on_publish = self._on_publish
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def _on_publish(self, *_a: object) -> None:
        self.acked += 1

    def send(self, topic: str, payload: bytes) -> None:
        """Publish, waiting while paho's in-flight window is full (it does not raise)."""
        while self.client.publish(topic, payload, qos=1).rc != mqtt.MQTT_ERR_SUCCESS:
            time.sleep(0.001)

    def wait(self, n: int, timeout: float = 300) -> None:
        """Until `n` publishes are acknowledged, or `timeout`."""
        deadline = time.monotonic() + timeout
        while self.acked < n and time.monotonic() < deadline:
            time.sleep(0.01)

    def close(self) -> None:
        """Disconnect and stop paho's network thread."""
        self.client.disconnect()
        self.client.loop_stop()


@contextmanager
def _stack() -> Iterator[tuple[PostgresServer, BrokerServer, str, str, DemoTenant]]:
    with PostgresServer.create() as pg, BrokerServer.create() as broker:
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE mes")
        owner, app = pg.url("mes"), pg.url("mes", user=migrations.APP_ROLE)
        migrations.migrate(owner)
        yield pg, broker, owner, app, seed_demo(app)


def _env(owner: str, app: str, broker: BrokerServer, client_id: str) -> dict[str, str]:
    # Each phase in a share group of its own: mosquitto keeps giving an offline persistent
    # member of a shared subscription its share (see docs/operations.md), and the earlier
    # phases' sessions stay registered.
    return {"MES_DATABASE__URL": owner, "MES_DATABASE__APP_URL": app,
            "MES_MQTT__HOST": broker.host, "MES_MQTT__PORT": str(broker.port),
            "MES_MQTT__CLIENT_ID": client_id, "MES_MQTT__SHARE_GROUP": client_id,
            "MES_LOG__LEVEL": "warning"}


def _settings(owner: str, app: str, broker: BrokerServer, client_id: str) -> IngestSettings:
    os.environ.update(_env(owner, app, broker, client_id))
    return load_settings(None, IngestSettings)


def _count(owner: str) -> int:
    with psycopg.connect(owner) as conn:
        row = conn.execute("SELECT count(*) FROM mes.machine_status_history").fetchone()
    return int(row[0]) if row else 0


def _wait_rows(owner: str, target: int, timeout: float = 600) -> float:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _count(owner) >= target:
            return time.monotonic()
        time.sleep(0.02)
    raise TimeoutError(f"{_count(owner)} of {target} rows after {timeout}s")


def bench_throughput(owner: str, app: str, broker: BrokerServer, feed: Feed, messages: int
                     ) -> dict[str, float]:
    """Step 1 of the module docstring: a backlog at the broker, timed until committed."""
    settings = _settings(owner, app, broker, "bench-ingest")
    service = IngestService(settings)  # register the persistent session, then go away
    service.start()
    service.consumer.subscribed.wait(10)
    time.sleep(0.3)
    service.stop()
    before = _count(owner)
    pub = Pub(broker)
    for _ in range(messages):
        pub.send(*feed.message())
    pub.wait(messages)
    pub.close()
    service = IngestService(settings)
    started = time.monotonic()
    service.start()
    done = _wait_rows(owner, before + messages * feed.records)
    service.stop()
    rows = messages * feed.records
    return {"rows": rows, "seconds": done - started, "rows_per_s": rows / (done - started)}


def bench_copy_ceiling(owner: str, demo: DemoTenant, rows: int) -> dict[str, float]:
    """The same shape of rows, one binary COPY as the owner straight into the table."""
    plant_code = next(iter(demo.gateways))
    with psycopg.connect(owner) as conn:
        ids = conn.execute("SELECT id FROM mes.machines WHERE code = ANY(%s) ORDER BY code",
                           (demo.machines[plant_code],)).fetchall()
        t0 = datetime.now(UTC) - timedelta(days=3)
        org, plant = demo.organization_id, demo.plants[plant_code]
        data = [(org, plant, ids[i % len(ids)][0], t0 + timedelta(microseconds=i),
                 STATES[i % len(STATES)].value, None) for i in range(rows)]
        spec = STAGING["machine_status"]
        started = time.monotonic()
        with conn.cursor().copy(
            f"COPY mes.{spec.table} ({', '.join(spec.columns)}) "
            "FROM STDIN (FORMAT BINARY)"
        ) as copy:
            copy.set_types(list(spec.types))
            for row in data:
                copy.write_row(row)
        conn.commit()
        seconds = time.monotonic() - started
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}


def bench_naive(owner: str, broker: BrokerServer, feed: Feed, messages: int, demo: DemoTenant
                ) -> dict[str, float]:
    """Subscribe, and per message: INSERT each record, COMMIT, then acknowledge."""
    plant_code = next(iter(demo.gateways))
    conn = psycopg.connect(owner)
    machine_ids = dict(conn.execute("SELECT code, id FROM mes.machines").fetchall())
    org, plant = demo.organization_id, demo.plants[plant_code]
    got = threading.Event()
    done = [0]

    def on_message(client: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        env = msgspec.json.decode(msg.payload, type=StateEnvelope)
        with conn.cursor() as cur:
            for r in env.records:
                cur.execute(
                    "INSERT INTO mes.machine_status_history (organization_id, plant_id, "
                    "machine_id, ts, state, reason_code) VALUES (%s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT DO NOTHING",
                    (org, plant, machine_ids[r.machine], r.ts, r.state.value, r.reason_code))
        conn.commit()
        client.ack(msg.mid, msg.qos)
        done[0] += 1
        if done[0] >= messages:
            got.set()

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-naive",
                         protocol=mqtt.MQTTv5, manual_ack=True)
    client.on_message = on_message
    client.connect(broker.host, broker.port)
    client.subscribe("bench/naive/#", qos=1)
    client.loop_start()
    time.sleep(0.3)
    pub = Pub(broker)
    payloads = [feed.message()[1] for _ in range(messages)]
    started = time.monotonic()
    for p in payloads:
        pub.send("bench/naive/state", p)
    got.wait(600)
    seconds = time.monotonic() - started
    pub.close()
    client.disconnect()
    client.loop_stop()
    conn.close()
    rows = messages * feed.records
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds}


def bench_latency(owner: str, app: str, broker: BrokerServer, feed: Feed, rows_per_s: float,
                  seconds: float) -> dict[str, float]:
    """Step 4: record time to commit at a steady `rows_per_s`, p50 and p99."""
    settings = _settings(owner, app, broker, "bench-latency")
    service = IngestService(settings)
    lags: list[float] = []
    service.lag_observers.append(lambda lag, _n: lags.append(lag))
    service.start()
    service.consumer.subscribed.wait(10)
    time.sleep(0.3)
    pub = Pub(broker)
    per_s = max(1.0, rows_per_s / feed.records)
    started = time.monotonic()
    sent = 0
    while (now := time.monotonic()) - started < seconds:
        due = int((now - started) * per_s)
        while sent < due:
            pub.send(*feed.message(ts=datetime.now(UTC)))
            sent += 1
        time.sleep(0.002)
    pub.wait(sent)
    pub.close()
    deadline = time.monotonic() + 30
    while len(lags) < sent and time.monotonic() < deadline:
        time.sleep(0.05)
    service.stop()
    lags.sort()
    q = statistics.quantiles(lags, n=100) if len(lags) >= 2 else lags * 99
    return {"offered_rows_per_s": per_s * feed.records, "messages": sent,
            "p50_s": q[49], "p99_s": q[98], "max_s": lags[-1] if lags else float("nan")}


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def bench_burst(owner: str, app: str, broker: BrokerServer, feed: Feed, rows_per_s: float,
                seconds: float) -> dict[str, float]:
    """Step 5: `mes ingest run` as a process under `rows_per_s`; its peak resident memory."""
    env = {**os.environ, **_env(owner, app, broker, "bench-burst")}
    proc = subprocess.Popen([sys.executable, "-m", "mes.cli", "ingest", "run"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(2.0)
        baseline = _rss_kib(proc.pid)
        before = _count(owner)
        peak = [baseline]
        stop = threading.Event()

        def sample() -> None:
            while not stop.wait(0.05):
                peak[0] = max(peak[0], _rss_kib(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        pub = Pub(broker)
        per_s = 10 * rows_per_s / feed.records
        started = time.monotonic()
        sent = 0
        while time.monotonic() - started < seconds:
            due = int((time.monotonic() - started) * per_s)
            while sent < due:
                pub.send(*feed.message())
                sent += 1
            time.sleep(0.001)
        pub.wait(sent)
        pub.close()
        _wait_rows(owner, before + sent * feed.records)
        stop.set()
        sampler.join()
        return {"offered_rows_per_s": 10 * rows_per_s, "published_rows": sent * feed.records,
                "rss_start_mib": baseline / 1024, "rss_peak_mib": peak[0] / 1024}
    finally:
        proc.terminate()
        proc.wait(30)


def cmd_bench_ingest(args: argparse.Namespace) -> int:
    """Run the five steps, print the summary and one JSON line."""
    results: dict[str, Any] = {"messages": args.messages, "records_per_message": args.records}
    with _stack() as (_pg, broker, owner, app, demo):
        feed = Feed(demo, args.records)
        print(f"ingest: {args.messages} messages x {args.records} records ...", flush=True)
        ingest = results["ingest"] = bench_throughput(owner, app, broker, feed, args.messages)
        print(f"  {ingest['rows_per_s']:,.0f} rows/s committed", flush=True)
        ceiling = results["copy_ceiling"] = bench_copy_ceiling(owner, demo, int(ingest["rows"]))
        print(f"raw binary COPY: {ceiling['rows_per_s']:,.0f} rows/s", flush=True)
        naive = results["naive"] = bench_naive(owner, broker, feed, args.naive_messages, demo)
        print(f"naive insert-per-record, commit-per-message: {naive['rows_per_s']:,.0f} rows/s",
              flush=True)
        lat = results["latency"] = bench_latency(owner, app, broker, feed,
                                                 ingest["rows_per_s"] / 2, args.latency_seconds)
        print(f"latency at {lat['offered_rows_per_s']:,.0f} rows/s offered: "
              f"p50 {lat['p50_s'] * 1000:.0f} ms, p99 {lat['p99_s'] * 1000:.0f} ms", flush=True)
        burst = results["burst"] = bench_burst(owner, app, broker, feed, ingest["rows_per_s"],
                                               args.burst_seconds)
        print(f"burst at 10x ({burst['offered_rows_per_s']:,.0f} rows/s offered): RSS "
              f"{burst['rss_start_mib']:.0f} MiB -> peak {burst['rss_peak_mib']:.0f} MiB",
              flush=True)
    results["ratio_to_copy"] = ingest["rows_per_s"] / ceiling["rows_per_s"]
    results["ratio_to_naive"] = ingest["rows_per_s"] / naive["rows_per_s"]
    print(f"ingest / COPY ceiling: {results['ratio_to_copy']:.2f} (target >= 0.50); "
          f"ingest / naive: {results['ratio_to_naive']:.1f}x (target >= 10)")
    print(json.dumps({"bench": "ingest", **results}))
    return 0
