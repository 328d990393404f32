"""`mes bench maintenance`: what the maintenance engine costs, and what it costs the ingest.

On a private PostgreSQL and broker with the demo tenant grown to `--machines` machines in its
live plant, each with `--schedules-per-machine` schedules (cycles, runtime hours and calendar
in turn) and some history:

1. sweep: every schedule of the plant at once (what the engine does at start and every
   `sweep_s`; the first from scratch, storing checkpoints, the others from them), timed;
   per schedule;
2. per batch: `after_commit` for batches of `--batch-machines` machines (what the ingest asks
   after a commit, with the meter checkpoints the sweep left), timed; per schedule evaluated;
3. ingest rows/s with the engine off and on (the engine as `mes ingest run` runs it: told after
   each commit, evaluating on its own thread), counter messages over all machines, the same
   number of rows each, in the same run, in turns (off first, then on first, ...), each phase
   on a vacuumed and checkpointed database; the ratio of the two. The engine's start-up sweep
   (step 1's figure) is done before the ingest starts, so the ratio is the engine's cost
   while it keeps up with the ingest, not the start-up's;
4. sweep cost against history: `--history-machines` more machines in another plant, the
   same schedules anchored `--history-days` back (each length in turn, on the same machines,
   the older rows added), a counter row every 5 minutes and a state change every 30: a sweep
   from scratch (what every sweep did before stored checkpoints, and what one does once per
   `recompute_s` now) and a sweep from the stored checkpoints (after one that stored them),
   in turns, medians.

Prints a summary and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from core.settings import DatabaseSettings
from core.tenancy import Tenant, tenant_transaction
from core.wire import CounterEnvelope, CounterRecord, Kind, Topic, encode
from ingest.maintenance.engine import MaintenanceEngine
from ingest.maintenance.raising import load_targets, raise_due
from ingest.maintenance.runner import open_runner
from ingest.maintenance.settings import MaintenanceOptions
from ingest.service import IngestService
from mes.bench.ingest import Pub, _settings, _stack
from mes.demo_seed import DEMO_ORG, LIVE_PLANT, DemoTenant


def register_bench(benches: Any) -> None:
    """Add `mes bench maintenance` to the `mes bench` parser."""
    p = benches.add_parser("maintenance", help="maintenance engine cost per batch and per "
                           "schedule; ingest rows/s with the engine on and off")
    p.add_argument("--machines", type=int, default=1000)
    p.add_argument("--schedules-per-machine", type=int, default=10)
    p.add_argument("--batch-machines", type=int, default=50)
    p.add_argument("--batches", type=int, default=20)
    p.add_argument("--messages", type=int, default=1000, help="ingest messages per phase")
    p.add_argument("--records", type=int, default=100, help="records per message")
    p.add_argument("--runs", type=int, default=3, help="sweeps, and ingest off/on pairs, "
                   "whose medians are printed")
    p.add_argument("--history-machines", type=int, default=100)
    p.add_argument("--history-days", type=int, nargs="+", default=[2, 30],
                   help="history lengths the sweep is timed at (step 4), shortest first")
    p.set_defaults(func=cmd_bench_maintenance)


def _seed(owner: str, demo: DemoTenant, machines: int, per_machine: int, t0: datetime
          ) -> list[tuple[uuid.UUID, str]]:
    """Machines, schedules and two hours of history, as the owner (a benchmark's setup)."""
    org, plant = demo.organization_id, demo.plants[LIVE_PLANT]
    with psycopg.connect(owner, autocommit=True) as conn, conn.transaction():
        conn.execute("SELECT set_config('app.org_id', %s, true)", (str(org),))
        ids = conn.execute(
            "INSERT INTO mes.machines (organization_id, plant_id, code, name, kind) "
            "SELECT %s, %s, 'b' || lpad(i::text, 5, '0'), 'Bench ' || i, 'bench' "
            "FROM generate_series(1, %s) i RETURNING id, code", (org, plant, machines)
        ).fetchall()
        conn.execute(
            "INSERT INTO mes.pm_schedules (organization_id, plant_id, machine_id, name, "
            "trigger_kind, interval_value, counter_tag, calendar_every, calendar_unit, "
            "anchor_at) "
            "SELECT %(org)s, %(plant)s, m.id, 'S' || k, "
            "(ARRAY['cycles', 'runtime_hours', 'calendar'])[k %% 3 + 1], "
            "CASE k %% 3 WHEN 0 THEN 1000 * (k + 1) WHEN 1 THEN 10 * (k + 1) END, "
            "CASE k %% 3 WHEN 0 THEN 'cycles' END, "
            "CASE k %% 3 WHEN 2 THEN k + 1 END, CASE k %% 3 WHEN 2 THEN 'days' END, %(t0)s "
            "FROM mes.machines m, generate_series(0, %(n)s - 1) k WHERE m.kind = 'bench'",
            {"org": org, "plant": plant, "n": per_machine, "t0": t0})
        for table, cols, values in (
            ("machine_status_history", "ts, state",
             "%(t0)s + make_interval(mins => 10 * j), "
             "(ARRAY['running', 'idle', 'fault'])[j %% 3 + 1]"),
            ("machine_counter", "tag, ts, value",
             "'cycles', %(t0)s + make_interval(mins => j), 100.0 * j"),
        ):
            conn.execute(
                f"INSERT INTO mes.{table} (organization_id, plant_id, machine_id, {cols}) "
                f"SELECT %(org)s, %(plant)s, m.id, {values} FROM mes.machines m, "
                f"generate_series(0, {12 if table == 'machine_status_history' else 120}) j "
                "WHERE m.kind = 'bench'", {"org": org, "plant": plant, "t0": t0})
    return ids


def bench_evaluation(app: str, tenant: Tenant, machines: list[uuid.UUID], per_machine: int,
                     batch: int, batches: int, runs: int) -> dict[str, float]:
    """Steps 1 and 2 of the module docstring."""
    pool = ConnectionPool(app, min_size=1, max_size=2, kwargs={"autocommit": True})
    engine = MaintenanceEngine(pool)
    times = []
    try:
        sweeps = []
        for _ in range(runs):
            started = time.perf_counter()
            engine.sweep(tenant)
            sweeps.append(time.perf_counter() - started)
        sweep = statistics.median(sweeps)
        for i in range(batches):
            chosen = machines[(i * batch) % len(machines):][:batch]
            started = time.perf_counter()
            engine.after_commit(tenant, chosen)
            times.append(time.perf_counter() - started)
    finally:
        pool.close()
    per_batch = statistics.median(times)
    return {"batch_machines": batch, "per_batch_ms": per_batch * 1000,
            "per_schedule_us": per_batch / (batch * per_machine) * 1e6,
            "sweep_s": sweep, "sweep_per_schedule_us": sweep / (len(machines) * per_machine)
            * 1e6}


def _history(owner: str, org: uuid.UUID, plant: uuid.UUID, start: datetime, end: datetime,
             epoch: datetime) -> None:
    """Rows of the `hist` machines from `start` (inclusive) to `end` (exclusive): a counter
    row every 5 minutes (its running total 100 a minute since `epoch`), a state every 30."""
    with psycopg.connect(owner, autocommit=True) as conn:
        for table, cols, step, values in (
            ("machine_status_history", "ts, state", "30 minutes",
             "ts, (ARRAY['running', 'idle', 'fault'])"
             "[(extract(epoch FROM ts)::bigint / 1800) %% 3 + 1]"),
            ("machine_counter", "tag, ts, value", "5 minutes",
             "'cycles', ts, 100 * extract(epoch FROM ts - %(epoch)s) / 60"),
        ):
            conn.execute(
                f"INSERT INTO mes.{table} (organization_id, plant_id, machine_id, {cols}) "
                f"SELECT %(org)s, %(plant)s, m.id, {values} FROM mes.machines m, "
                f"generate_series(%(start)s, %(end)s - interval '1 microsecond', "
                f"interval '{step}') ts WHERE m.kind = 'hist'",
                {"org": org, "plant": plant, "start": start, "end": end, "epoch": epoch})
        conn.execute("VACUUM (ANALYZE) mes.machine_counter")
        conn.execute("VACUUM (ANALYZE) mes.machine_status_history")


def _scratch_sweep(pool: ConnectionPool, tenant: Tenant, now: datetime) -> None:
    """A sweep's schedules as before stored checkpoints: every meter from scratch."""
    with pool.connection() as conn, tenant_transaction(conn, tenant):
        raise_due(conn, load_targets(conn, None, None), now, {})


def bench_history(owner: str, app: str, demo: DemoTenant, machines: int, per_machine: int,
                  days: list[int], runs: int) -> list[dict[str, float]]:
    """Step 4 of the module docstring."""
    plant_code = next(p for p in demo.plants if p != LIVE_PLANT)
    org, plant = demo.organization_id, demo.plants[plant_code]
    now = datetime.now(UTC).replace(microsecond=0)
    epoch = now - timedelta(days=max(days))
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO mes.machines (organization_id, plant_id, code, name, kind) "
            "SELECT %s, %s, 'h' || lpad(i::text, 5, '0'), 'History ' || i, 'hist' "
            "FROM generate_series(1, %s) i", (org, plant, machines))
        conn.execute(
            "INSERT INTO mes.pm_schedules (organization_id, plant_id, machine_id, name, "
            "trigger_kind, interval_value, counter_tag, calendar_every, calendar_unit, "
            "anchor_at) "
            "SELECT %(org)s, %(plant)s, m.id, 'H' || k, "
            "(ARRAY['cycles', 'runtime_hours', 'calendar'])[k %% 3 + 1], "
            "CASE k %% 3 WHEN 0 THEN 1000000 * (k + 1) WHEN 1 THEN 1000 * (k + 1) END, "
            "CASE k %% 3 WHEN 0 THEN 'cycles' END, "
            "CASE k %% 3 WHEN 2 THEN 400 END, CASE k %% 3 WHEN 2 THEN 'days' END, %(t0)s "
            "FROM mes.machines m, generate_series(0, %(n)s - 1) k WHERE m.kind = 'hist'",
            {"org": org, "plant": plant, "n": per_machine, "t0": now})
    tenant = Tenant(org, plant)
    pool = ConnectionPool(app, min_size=1, max_size=2, kwargs={"autocommit": True})
    engine = MaintenanceEngine(pool)
    out, seeded_from = [], now
    try:
        for d in days:
            start = now - timedelta(days=d)
            _history(owner, org, plant, start, seeded_from, epoch)
            seeded_from = start
            with psycopg.connect(owner, autocommit=True) as conn:
                conn.execute("UPDATE mes.pm_schedules SET anchor_at = %s "
                             "WHERE name LIKE 'H%%' AND plant_id = %s", (start, plant))
            engine.sweep(tenant)  # stores the checkpoints of the new anchors
            scratch, stored = [], []
            for _ in range(runs):
                started = time.perf_counter()
                _scratch_sweep(pool, tenant, datetime.now(UTC))
                scratch.append(time.perf_counter() - started)
                started = time.perf_counter()
                engine.sweep(tenant)
                stored.append(time.perf_counter() - started)
            out.append({"days": d, "schedules": machines * per_machine,
                        "scratch_s": statistics.median(scratch),
                        "stored_s": statistics.median(stored),
                        "load_average": os.getloadavg()[0]})
            print(f"history {d} days, {machines * per_machine} schedules: sweep from scratch "
                  f"{out[-1]['scratch_s']:.3f} s, from stored checkpoints "
                  f"{out[-1]['stored_s']:.3f} s (medians of {runs}); load average "
                  f"{out[-1]['load_average']:.2f}", flush=True)
    finally:
        pool.close()
    return out


def _counter_messages(demo: DemoTenant, codes: list[str], messages: int, records: int,
                      t0: datetime, seq0: int) -> list[tuple[str, bytes]]:
    """Counter rows over all machines in turn, each machine's running total one cycle up per
    row and going on from phase to phase (a realistic meter: few thresholds crossed, so the
    phase measures evaluating, not raising)."""
    gateway = demo.gateways[LIVE_PLANT]
    topic = str(Topic(DEMO_ORG, LIVE_PLANT, gateway, Kind.COUNTER))
    per_phase = messages * records // len(codes)
    base = (seq0 - 1) // messages * per_phase
    out = []
    for n in range(messages):
        ts = t0 + timedelta(seconds=n + 1)
        recs = [CounterRecord(machine=codes[r % len(codes)], tag="cycles",
                              ts=ts + timedelta(microseconds=i),
                              value=float(base + r // len(codes)))
                for i in range(records) for r in [n * records + i]]
        out.append((topic, encode(CounterEnvelope(v=1, gateway=gateway, seq=seq0 + n,
                                                  sent_at=datetime.now(UTC), records=recs))))
    return out


def _settle(owner: str) -> None:
    """Start each timed phase from the same state: the previous phase's rows vacuumed and
    analysed and written out, so that no autovacuum or checkpoint of its rows lands in the
    next phase (it did, and always against the second phase of a pair)."""
    with psycopg.connect(owner, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) mes.machine_counter")
        conn.execute("CHECKPOINT")


def _counter_rows(owner: str) -> int:
    with psycopg.connect(owner) as conn:
        row = conn.execute("SELECT count(*) FROM mes.machine_counter").fetchone()
    return int(row[0]) if row else 0


def bench_ingest(owner: str, app: str, broker: Any, demo: DemoTenant, codes: list[str],
                 messages: int, records: int, t0: datetime, engine_on: bool, seq0: int
                 ) -> dict[str, float]:
    """Step 3, one phase: a backlog at the broker, timed until committed."""
    client = f"bench-maint-{'on' if engine_on else 'off'}"
    settings = _settings(owner, app, broker, client)
    service = IngestService(settings)  # register the persistent session, then go away
    service.start()
    service.consumer.subscribed.wait(10)
    time.sleep(0.3)  # as bench ingest: let the broker settle the subscription first
    service.stop()
    pub = Pub(broker)
    for topic, payload in _counter_messages(demo, codes, messages, records, t0, seq0):
        pub.send(topic, payload)
    pub.wait(messages)
    pub.close()
    _settle(owner)
    before = _counter_rows(owner)
    runner = None
    service = IngestService(settings)
    if engine_on:
        runner = open_runner(DatabaseSettings(url=owner, app_url=app),
                             MaintenanceOptions(sweep_s=3600))
        service.commit_observers.append(runner.on_commit)
        runner.start()
        if not runner.swept.wait(600):
            raise TimeoutError("the engine's start-up sweep did not end within 600 s")
    started = time.monotonic()
    service.start()
    target = before + messages * records
    deadline = started + 600
    while _counter_rows(owner) < target:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{_counter_rows(owner) - before} of {target - before} rows")
        time.sleep(0.02)
    seconds = time.monotonic() - started
    service.stop()
    engine = {"tasks_raised": runner.raised, "evaluations": runner.batch_evaluations,
              "evaluating_s": runner.batch_seconds} if runner else {}
    if runner:
        runner.stop()
    rows = messages * records
    return {"rows": rows, "seconds": seconds, "rows_per_s": rows / seconds, **engine}


def cmd_bench_maintenance(args: argparse.Namespace) -> int:
    """Run the three steps, print the summary and one JSON line."""
    results: dict[str, Any] = {"machines": args.machines,
                               "schedules": args.machines * args.schedules_per_machine}
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
    with _stack() as (_pg, broker, owner, app, demo):
        print(f"seeding {args.machines} machines x {args.schedules_per_machine} schedules ...",
              flush=True)
        machines = _seed(owner, demo, args.machines, args.schedules_per_machine, t0)
        tenant = Tenant(demo.organization_id, demo.plants[LIVE_PLANT])
        ev = results["evaluation"] = bench_evaluation(
            app, tenant, [m for m, _ in machines], args.schedules_per_machine,
            args.batch_machines, args.batches, args.runs)
        print(f"after a commit of {args.batch_machines} machines: {ev['per_batch_ms']:.1f} ms "
              f"(median), {ev['per_schedule_us']:.0f} us per schedule; sweep of "
              f"{results['schedules']} schedules: {ev['sweep_s']:.2f} s (median of {args.runs}) "
              f"({ev['sweep_per_schedule_us']:.0f} us per schedule)", flush=True)
        history = results["history"] = bench_history(
            owner, app, demo, args.history_machines, args.schedules_per_machine,
            sorted(args.history_days), args.runs)
        if len(history) > 1:
            print(f"sweep, {history[-1]['days']} days of history / {history[0]['days']} days: "
                  f"from scratch {history[-1]['scratch_s'] / history[0]['scratch_s']:.2f}, "
                  f"from stored checkpoints "
                  f"{history[-1]['stored_s'] / history[0]['stored_s']:.2f}", flush=True)
        codes = [c for _, c in machines]
        pairs = []
        for run in range(args.runs):
            t1 = t0 + timedelta(hours=6 + 4 * run)
            seq = 1 + 2 * run * args.messages
            # Off first in odd runs, on first in even ones: neither phase is always second.
            order = (False, True) if run % 2 == 0 else (True, False)
            phases = {engine_on: bench_ingest(owner, app, broker, demo, codes, args.messages,
                                              args.records, t1 + timedelta(hours=2 * k),
                                              engine_on, seq + k * args.messages)
                      for k, engine_on in enumerate(order)}
            off, on = phases[False], phases[True]
            pairs.append((off, on, on["rows_per_s"] / off["rows_per_s"]))
            print(f"run {run + 1}: ingest rows/s engine off {off['rows_per_s']:,.0f}, on "
                  f"{on['rows_per_s']:,.0f} (the engine evaluated {on['evaluations']} time(s), "
                  f"{on['evaluating_s']:.2f} s, {on['tasks_raised']} task(s) raised), on / off "
                  f"{pairs[-1][2]:.2f}; load average {os.getloadavg()[0]:.2f}", flush=True)
    results["runs"] = [{"engine_off": off, "engine_on": on, "ratio": r} for off, on, r in pairs]
    off_rate = statistics.median(off["rows_per_s"] for off, _, _ in pairs)
    on_rate = statistics.median(on["rows_per_s"] for _, on, _ in pairs)
    ratio = results["ratio_on_to_off"] = statistics.median(r for _, _, r in pairs)
    results["load_average"] = os.getloadavg()
    print(f"ingest rows/s, medians of {args.runs} runs: engine off {off_rate:,.0f}, engine on "
          f"{on_rate:,.0f}; on / off {ratio:.2f} (target >= 0.90); load average "
          f"{' '.join(f'{x:.2f}' for x in results['load_average'])}")
    print(json.dumps({"bench": "maintenance", **results}))
    return 0
