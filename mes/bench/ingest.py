"""`mes bench ingest`: the ingest against its ceiling and its floor, in one run.

On a private PostgreSQL and mosquitto (free loopback ports), with the demo tenant:

1. throughput: N messages (R state records each) are queued at the broker for the ingest's
   persistent session while it is stopped; the ingest is started and timed until every row
   is committed (its own commit counter, so the figure is the ingest's, not the publisher's
   nor a poller's); once with `--records` per message, once with `--small-records`;
2. ceiling: the same rows written by one binary COPY straight into the same table, right
   before and right after each throughput run (their mean: other load drifts);
3. naive: a consumer that INSERTs each record and commits per message (what one writes by
   hand), over the same messages;
4. latency: a steady offered load of half the measured rate for `--latency-seconds`; p50 and
   p99 from record time to commit;
5. burst: ten times the measured rate for a few seconds at an ingest running as its own
   process; its peak resident memory;
6. scale-out: for 1, 2, 4, ... up to `--processes` ingest processes (`mes ingest run`, one
   writer each: N processes are N database writers) on one shared subscription: connected,
   paused (SIGSTOP), a backlog published, resumed and timed until every row is committed;
   against the COPY ceiling of as many parallel writers.

Steps 1-2 also measure the COPY with as many writers as the ingest has (`ingest.writers`).

Prints a summary with every ratio and its target, the load average and the cores, and one
JSON line. Ratios, not absolute numbers, are what to compare across machines.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
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
from ingest.settings import IngestOptions, IngestSettings
from mes.demo_seed import DEMO_ORG, DemoTenant, seed_demo
from mes.services.broker import BrokerServer
from mes.services.ports import free_port
from mes.services.postgres import PostgresServer

STATES = [MachineState.RUNNING, MachineState.IDLE, MachineState.FAULT, MachineState.STARVED]


def register_bench(benches: Any) -> None:
    """Add `mes bench ingest` to the `mes bench` parser."""
    p = benches.add_parser("ingest", help="ingest throughput and latency against COPY and naive")
    p.add_argument("--messages", type=int, default=4000,
                   help="messages of the throughput runs (as many rows for the small ones)")
    p.add_argument("--records", type=int, default=100, help="records per message")
    p.add_argument("--small-records", type=int, default=20,
                   help="records per message of the second throughput run (0: skip it)")
    p.add_argument("--naive-messages", type=int, default=300,
                   help="messages for the naive consumer (it is slow)")
    p.add_argument("--latency-seconds", type=float, default=10)
    p.add_argument("--burst-seconds", type=float, default=5)
    p.add_argument("--processes", type=int, default=4,
                   help="scale-out: 1, 2, 4, ... up to this many ingest processes (0: skip)")
    p.set_defaults(func=cmd_bench_ingest)


class Feed:
    """Distinct state messages of the demo's gateways, taking turns (a central ingest hears
    many gateways): (topic, payload) on demand."""

    def __init__(self, demo: DemoTenant, records: int, days_back: int = 1) -> None:
        self.gateways = [(demo.gateways[plant], demo.machines[plant],
                          str(Topic(DEMO_ORG, plant, demo.gateways[plant], Kind.STATE)))
                         for plant in sorted(demo.gateways)]
        self.records = records
        self.seq = 0
        self.t0 = datetime.now(UTC) - timedelta(days=days_back)  # each run its own window

    def message(self, ts: datetime | None = None) -> tuple[str, bytes]:
        """The next (topic, payload): `records` state records of the next gateway."""
        self.seq += 1
        gateway, machines, topic = self.gateways[self.seq % len(self.gateways)]
        base = ts or self.t0 + timedelta(milliseconds=self.seq * self.records)
        recs = [StateRecord(machine=machines[i % len(machines)],
                            ts=base + timedelta(microseconds=i // len(machines)),
                            state=STATES[i % len(STATES)]) for i in range(self.records)]
        env = StateEnvelope(v=1, gateway=gateway, seq=self.seq // len(self.gateways) + 1,
                            sent_at=datetime.now(UTC), records=recs)
        return topic, encode(env)


def _machines(owner: str) -> dict[str, tuple[uuid.UUID, uuid.UUID]]:
    """Machine code -> (machine id, plant id) of the demo."""
    with psycopg.connect(owner) as conn:
        return {code: (m, p) for code, m, p in
                conn.execute("SELECT code, id, plant_id FROM mes.machines ORDER BY code")}


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
    # For a process measured from outside; count(*) scans the table, so not too often.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _count(owner) >= target:
            return time.monotonic()
        time.sleep(0.25)
    raise TimeoutError(f"{_count(owner)} of {target} rows after {timeout}s")


def _wait_for(committed: Callable[[], float], target: int, timeout: float = 600) -> float:
    """When `committed()` (rows an ingest committed, by its own counter) reached `target`."""
    deadline = time.monotonic() + timeout
    while (done := committed()) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{done:.0f} of {target} rows committed after {timeout}s")
        time.sleep(0.01)
    return time.monotonic()


def _publish(broker: BrokerServer, feed: Feed, messages: int) -> int:
    """Publish `messages` of `feed` and wait until the broker has them; returns their rows."""
    pub = Pub(broker)
    for _ in range(messages):
        pub.send(*feed.message())
    pub.wait(messages)
    pub.close()
    return messages * feed.records


def bench_throughput(owner: str, app: str, broker: BrokerServer, feed: Feed, messages: int
                     ) -> dict[str, float]:
    """Step 1 of the module docstring: a backlog at the broker, timed until committed."""
    settings = _settings(owner, app, broker, f"bench-ingest-{feed.records}")
    service = IngestService(settings)  # register the persistent session, then go away
    service.start()
    service.consumer.subscribed.wait(10)
    time.sleep(0.3)
    service.stop()
    rows = _publish(broker, feed, messages)
    service = IngestService(settings)
    started = time.monotonic()
    service.start()
    done = _wait_for(lambda: service.metrics.sample("ingest_rows_offered_total",
                                                    kind="machine_status"), rows)
    service.stop()
    return {"rows": rows, "seconds": done - started, "rows_per_s": rows / (done - started)}


def bench_copy_ceiling(owner: str, demo: DemoTenant, rows: int, days_back: int,
                       writers: int = 1) -> dict[str, float]:
    """The same shape of rows by binary COPY as the owner straight into the table: `writers`
    connections in parallel, each its share of the rows, timed until the last commits."""
    known = _machines(owner)
    ids = [known[code] for plant in sorted(demo.gateways) for code in demo.machines[plant]]
    t0 = datetime.now(UTC) - timedelta(days=days_back)
    org = demo.organization_id
    data = [(org, ids[i % len(ids)][1], ids[i % len(ids)][0], t0 + timedelta(microseconds=i),
             STATES[i % len(STATES)].value, None) for i in range(rows)]
    spec = STAGING["machine_status"]
    conns = [psycopg.connect(owner) for _ in range(writers)]
    go = threading.Barrier(writers + 1)

    def write(conn: psycopg.Connection, share: list[tuple[Any, ...]]) -> None:
        go.wait()
        with conn.cursor().copy(f"COPY mes.{spec.table} ({', '.join(spec.columns)}) "
                                "FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(spec.types))
            for row in share:
                copy.write_row(row)
        conn.commit()

    threads = [threading.Thread(target=write, args=(c, data[i::writers]))
               for i, c in enumerate(conns)]
    for t in threads:
        t.start()
    go.wait()
    started = time.monotonic()
    for t in threads:
        t.join()
    seconds = time.monotonic() - started
    for c in conns:
        c.close()
    return {"rows": rows, "writers": writers, "seconds": seconds, "rows_per_s": rows / seconds}


def bench_naive(owner: str, broker: BrokerServer, feed: Feed, messages: int, demo: DemoTenant
                ) -> dict[str, float]:
    """Subscribe, and per message: INSERT each record, COMMIT, then acknowledge."""
    machines = _machines(owner)
    conn = psycopg.connect(owner)
    org = demo.organization_id
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
                    (org, machines[r.machine][1], machines[r.machine][0], r.ts, r.state.value,
                     r.reason_code))
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


def _ingest_process(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """`mes ingest run` as its own process, its log in `log` (shown if the bench fails)."""
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "mes.cli", "ingest", "run"],
                                env={**os.environ, **env}, stdout=out, stderr=out)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGCONT)  # a paused process cannot act on SIGTERM
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _log_tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""


def _wait_healthy(procs: list[subprocess.Popen[bytes]], ports: list[int], logs: list[Path]
                  ) -> None:
    """Until every process answers /health with 200 (subscribed: what the broker receives
    from then on is kept for it), or raise with their logs."""
    deadline = time.monotonic() + 60
    while not all(_healthy(p) for p in ports):
        if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
            raise RuntimeError("an ingest process did not come up:\n"
                               + "\n".join(_log_tail(log) for log in logs))
        time.sleep(0.1)


def bench_burst(owner: str, app: str, broker: BrokerServer, feed: Feed, rows_per_s: float,
                seconds: float, workdir: Path) -> dict[str, float]:
    """Step 5: `mes ingest run` as a process under `rows_per_s`; its peak resident memory."""
    log, port = workdir / "burst.log", free_port()
    proc = _ingest_process({**_env(owner, app, broker, "bench-burst"),
                            "MES_INGEST__STATUS_PORT": str(port)}, log)
    try:
        _wait_healthy([proc], [port], [log])
        time.sleep(1.0)  # what it allocates once, before the burst
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
        try:
            _wait_rows(owner, before + sent * feed.records)
        except TimeoutError as e:
            raise TimeoutError(f"{e}; the ingest's log ends:\n{_log_tail(log)}") from None
        stop.set()
        sampler.join()
        return {"offered_rows_per_s": 10 * rows_per_s, "published_rows": sent * feed.records,
                "rss_start_mib": baseline / 1024, "rss_peak_mib": peak[0] / 1024}
    finally:
        _stop(proc)


def _rows_committed(port: int) -> float:
    """`ingest_rows_offered_total{kind="machine_status"}` of the ingest on status `port`."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return 0.0
    for line in text.splitlines():
        if line.startswith('ingest_rows_offered_total{kind="machine_status"}'):
            return float(line.split()[-1])
    return 0.0


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def bench_processes(owner: str, app: str, broker: BrokerServer, feed: Feed, n: int,
                    messages: int, workdir: Path) -> dict[str, float]:
    """Step 6 for `n` processes: connected and subscribed, paused, a backlog published, resumed
    together and timed until every row is committed (their own counters, summed)."""
    group = f"bench-share-{n}"
    ports = [free_port() for _ in range(n)]
    logs = [workdir / f"{group}-{i}.log" for i in range(n)]
    procs = [_ingest_process({**_env(owner, app, broker, f"{group}-{i}"),
                              "MES_MQTT__SHARE_GROUP": group, "MES_INGEST__STATUS_PORT": str(port),
                              "MES_MAINTENANCE__ENABLED": "false", "MES_INGEST__WRITERS": "1"}, log)
             for i, (port, log) in enumerate(zip(ports, logs, strict=True))]
    try:
        _wait_healthy(procs, ports, logs)
        for proc in procs:  # the broker keeps each member's share while they are paused
            proc.send_signal(signal.SIGSTOP)
        rows = _publish(broker, feed, messages)
        started = time.monotonic()
        for proc in procs:
            proc.send_signal(signal.SIGCONT)
        try:
            done = _wait_for(lambda: sum(_rows_committed(p) for p in ports), rows)
        except TimeoutError as e:
            raise TimeoutError(f"{e}; logs:\n" + "\n".join(_log_tail(log) for log in logs)
                               ) from None
        shares = [_rows_committed(p) for p in ports]
    finally:
        for proc in procs:
            _stop(proc)
    return {"processes": n, "rows": rows, "seconds": done - started,
            "rows_per_s": rows / (done - started), "rows_per_process": shares}


def _process_counts(most: int) -> list[int]:
    counts, n = [], 1
    while n <= most:
        counts.append(n)
        n *= 2
    return counts


def _against_copy(owner: str, demo: DemoTenant, rows: int, days_back: int, writers: int,
                  run: Callable[[], dict[str, Any]], also: int | None = None) -> dict[str, Any]:
    """`run()`'s figures with the COPY ceiling of as many rows by `writers` parallel writers,
    measured right before and right after it (their mean: other load on the machine drifts),
    and the ratio; with `also`, the same for that many writers as `copy_also`."""
    counts = [writers] if also is None or also == writers else [writers, also]
    before = [bench_copy_ceiling(owner, demo, rows, days_back + 2 * i, n)["rows_per_s"]
              for i, n in enumerate(counts)]
    result = run()
    after = [bench_copy_ceiling(owner, demo, rows, days_back + 2 * i + 1, n)["rows_per_s"]
             for i, n in enumerate(counts)]
    keys = (("copy_ceiling", "ratio_to_copy"), ("copy_also", "ratio_to_copy_also"))
    for (key, ratio), n, b, a in zip(keys, counts, before, after, strict=False):
        result[key] = {"writers": n, "rows_per_s": (b + a) / 2, "before": b, "after": a}
        result[ratio] = result["rows_per_s"] / result[key]["rows_per_s"]
    return result


def _say(what: str, run: dict[str, Any], target: str) -> None:
    also = run.get("copy_also")
    print(f"{what}: {run['rows_per_s']:,.0f} rows/s committed; raw binary COPY "
          f"{run['copy_ceiling']['rows_per_s']:,.0f} rows/s with "
          f"{run['copy_ceiling']['writers']} writer(s); ratio {run['ratio_to_copy']:.2f}{target}"
          + (f"; COPY with {also['writers']} writers (as many as the ingest's) "
             f"{also['rows_per_s']:,.0f}, ratio {run['ratio_to_copy_also']:.2f}" if also else ""),
          flush=True)


def cmd_bench_ingest(args: argparse.Namespace) -> int:
    """Run the six steps, print the summary and one JSON line."""
    load_start = os.getloadavg()
    results: dict[str, Any] = {"messages": args.messages, "records_per_message": args.records,
                               "cores": os.cpu_count(), "load_average_start": load_start}
    rows = args.messages * args.records
    with _stack() as (pg, broker, owner, app, demo):
        feed = Feed(demo, args.records, days_back=1)
        writers = IngestOptions().writers
        ingest = results["ingest"] = _against_copy(
            owner, demo, rows, 30, 1,
            lambda: bench_throughput(owner, app, broker, feed, args.messages), also=writers)
        _say(f"ingest, {args.messages} messages x {args.records} records", ingest,
             " (target >= 0.80)")
        if args.small_records:
            small, n = Feed(demo, args.small_records, days_back=2), rows // args.small_records
            results["ingest_small"] = _against_copy(
                owner, demo, n * args.small_records, 34, 1,
                lambda: bench_throughput(owner, app, broker, small, n), also=writers)
            _say(f"ingest, {n} messages x {args.small_records} records",
                 results["ingest_small"], " (target >= 0.60)")
        naive = results["naive"] = bench_naive(owner, broker, feed, args.naive_messages, demo)
        results["ratio_to_naive"] = ingest["rows_per_s"] / naive["rows_per_s"]
        print(f"naive insert-per-record, commit-per-message: {naive['rows_per_s']:,.0f} rows/s; "
              f"ingest / naive {results['ratio_to_naive']:.1f}x (target >= 15)", flush=True)
        lat = results["latency"] = bench_latency(owner, app, broker, feed,
                                                 ingest["rows_per_s"] / 2, args.latency_seconds)
        print(f"latency at {lat['offered_rows_per_s']:,.0f} rows/s offered: "
              f"p50 {lat['p50_s'] * 1000:.0f} ms, p99 {lat['p99_s'] * 1000:.0f} ms "
              "(target p99 < 500 ms)", flush=True)
        burst = results["burst"] = bench_burst(owner, app, broker, feed, ingest["rows_per_s"],
                                               args.burst_seconds, pg.datadir.parent)
        print(f"burst at 10x ({burst['offered_rows_per_s']:,.0f} rows/s offered): RSS "
              f"{burst['rss_start_mib']:.0f} MiB -> peak {burst['rss_peak_mib']:.0f} MiB",
              flush=True)
        scale: list[dict[str, Any]] = []
        results["scale_out"] = scale
        for i, n in enumerate(_process_counts(args.processes)):
            shared = Feed(demo, args.records, days_back=4 + i)
            run = _against_copy(owner, demo, rows, 40 + 4 * i, n, functools.partial(
                bench_processes, owner, app, broker, shared, n, args.messages,
                pg.datadir.parent))
            run["speedup"] = run["rows_per_s"] / (scale[0] if scale else run)["rows_per_s"]
            scale.append(run)
            _say(f"scale-out, {n} ingest process(es) on one shared subscription "
                 f"({run['speedup']:.2f}x of 1)", run, "")
    results["load_average_end"] = os.getloadavg()
    print(f"machine: {os.cpu_count()} cores; load average (1/5/15 min) at start "
          f"{'/'.join(f'{x:.1f}' for x in load_start)}, at end "
          f"{'/'.join(f'{x:.1f}' for x in results['load_average_end'])}")
    print(json.dumps({"bench": "ingest", **results}))
    return 0
