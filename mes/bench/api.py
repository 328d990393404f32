"""`mes bench api`: what the API layer costs, on the PM task list and the time-in-state endpoint.

On a private PostgreSQL, the demo tenant's live plant grows to `--machines` machines with
`--days` of state history (a change every `--state-minutes`) and `--tasks-per-machine` PM
tasks (a calendar schedule per machine, its past occurrences done, the latest open). `mes api`
runs as its own process (uvicorn, its default workers and pool) and `--clients` concurrent
clients (httpx, async) ask, as the live plant's technician, for `--seconds` per endpoint:

- the task list: `GET /v1/pm/tasks?status=open` (the first page, 50 tasks);
- time in state: `GET /v1/machines/{id}/time-in-state` over the whole history, a random
  machine each time.

Twice: paced, each client sending a request every `--interval` seconds on a fixed schedule
whatever the answers do (open loop: what people and boards do; latency counts from when the
request was due, so a late send is not hidden), which is what the target (p99 < 100 ms at 50
clients) is judged on; and back to back, each client sending its next request as soon as the
previous answer arrives (closed loop: the capacity, in requests/s; its latency is mostly
queueing behind the other clients, at least clients / throughput).

Then the same queries run directly through psycopg as the application role, each in a
transaction under the same tenant context, over as many connections as the API's pools have,
from as many concurrent clients, the same two ways: the baseline. Per endpoint: requests/s,
p50 and p99 of both, and the ratios (what the API layer costs: HTTP, token check, ORM, JSON).
`--runs` repeats it and reports medians, with the load average. Prints a summary and one JSON
line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg_pool import AsyncConnectionPool

from api.cli import default_workers
from core import migrations
from core.tenancy import SET_TENANT_SQL, Tenant
from mes.demo_seed import DEMO_TECHNICIAN, LIVE_PLANT, DemoTenant, demo_token, seed_demo
from mes.services.ports import LOOPBACK, free_port, wait_for_port
from mes.services.postgres import PostgresServer
from mes.services.process import Child

SECRET = "bench-api-secret-" + "x" * 32
POOL_SIZE = 10  # the API's default `api.pool_size` (per worker)
WORKERS = default_workers()  # the API's default `api.workers`
DIRECT_CONNECTIONS = POOL_SIZE * WORKERS  # the baseline's: as many as the API's pools
MODES = ("paced", "closed")
TASKS_SQL = ("SELECT * FROM mes.pm_tasks WHERE status = ANY(%s) "
             "ORDER BY created_at, id LIMIT %s")
MACHINE_SQL = "SELECT * FROM mes.machines WHERE id = %s"
TIME_IN_STATE_SQL = "SELECT state, seconds FROM mes.machine_time_in_state(%s, %s, %s)"


def register_bench(benches: Any) -> None:
    """Add `mes bench api` to the `mes bench` parser."""
    p = benches.add_parser("api", help="API requests/s and p50/p99 on the task list and time "
                           "in state, against the same queries through psycopg")
    p.add_argument("--machines", type=int, default=1000)
    p.add_argument("--days", type=int, default=30, help="days of state history")
    p.add_argument("--state-minutes", type=int, default=30,
                   help="minutes between state changes of a machine")
    p.add_argument("--tasks-per-machine", type=int, default=5)
    p.add_argument("--clients", type=int, default=50)
    p.add_argument("--seconds", type=float, default=10, help="per endpoint, side and mode")
    p.add_argument("--interval", type=float, default=1.0,
                   help="seconds between a client's requests in the paced run")
    p.add_argument("--runs", type=int, default=3)
    p.set_defaults(func=cmd_bench_api)


def _seed(owner: str, demo: DemoTenant, args: argparse.Namespace, t0: datetime,
          technician: uuid.UUID) -> list[uuid.UUID]:
    """Machines, their state history and PM tasks, as the owner (a benchmark's setup)."""
    org, plant = demo.organization_id, demo.plants[LIVE_PLANT]
    params = {"org": org, "plant": plant, "t0": t0, "n": args.machines,
              "steps": args.days * 24 * 60 // args.state_minutes, "every": args.state_minutes,
              "tasks": args.tasks_per_machine, "tech": technician}
    with psycopg.connect(owner, autocommit=True) as conn:
        with conn.transaction():
            conn.execute("SELECT set_config('app.org_id', %s, true)", (str(org),))
            ids = [r[0] for r in conn.execute(
                "INSERT INTO mes.machines (organization_id, plant_id, code, name, kind) "
                "SELECT %(org)s, %(plant)s, 'b' || lpad(i::text, 5, '0'), 'Bench ' || i, "
                "'bench' FROM generate_series(1, %(n)s) i RETURNING id", params)]
            conn.execute(
                "INSERT INTO mes.machine_status_history (organization_id, plant_id, machine_id,"
                " ts, state) SELECT %(org)s, %(plant)s, m.id, "
                "%(t0)s + make_interval(mins => %(every)s * j), "
                "(ARRAY['running', 'running', 'idle', 'fault', 'planned_stop'])[j %% 5 + 1] "
                "FROM mes.machines m, generate_series(0, %(steps)s - 1) j "
                "WHERE m.kind = 'bench'", params)
            # One calendar schedule per machine, its past occurrences done, the latest open.
            conn.execute(
                "INSERT INTO mes.pm_schedules (organization_id, plant_id, machine_id, name, "
                "trigger_kind, calendar_every, calendar_unit, anchor_at) "
                "SELECT %(org)s, %(plant)s, m.id, 'Bench service', 'calendar', 6, 'days', "
                "%(t0)s FROM mes.machines m WHERE m.kind = 'bench'", params)
            conn.execute(
                "INSERT INTO mes.pm_tasks (organization_id, plant_id, schedule_id, machine_id, "
                "occurrence, status, due_at, title, completed_at, completed_by_user_id) "
                "SELECT %(org)s, %(plant)s, s.id, s.machine_id, k, "
                "CASE WHEN k < %(tasks)s THEN 'done' ELSE 'open' END, "
                "%(t0)s + make_interval(days => 6 * k), 'Bench service ' || k, "
                "CASE WHEN k < %(tasks)s THEN %(t0)s + make_interval(days => 6 * k) END, "
                "CASE WHEN k < %(tasks)s THEN %(tech)s::uuid END "
                "FROM mes.pm_schedules s, generate_series(1, %(tasks)s) k "
                "WHERE s.name = 'Bench service'", params)
        conn.execute("ANALYZE")
    return ids


@contextmanager
def _api(owner: str, app: str, log_path: Path) -> Iterator[str]:
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("MES_")},
           "MES_DATABASE__URL": owner, "MES_DATABASE__APP_URL": app,
           "MES_TOKENS__SECRET": SECRET, "MES_LOG__LEVEL": "warning",
           "MES_API__POOL_SIZE": str(POOL_SIZE),
           # Capacity is measured, not a client's manners: 50 clients share one token here.
           "MES_API__RATE_LIMIT_PER_S": "0"}
    child = Child(["api", "--host", LOOPBACK, "--port", str(port)], log_path, env=env)
    try:
        if not wait_for_port(port, timeout=60):
            raise RuntimeError(f"mes api did not listen: {log_path.read_text()[-2000:]}")
        base_url = f"http://{LOOPBACK}:{port}"
        # The supervisor listens before its workers have started: wait until they answer
        # (a new connection each time, which any worker may take), or the first run would
        # count their start-up as latency.
        answered = 0
        for _ in range(600):
            try:
                answered = answered + 1 if httpx.get(base_url + "/health").status_code == 200 \
                    else 0
            except httpx.TransportError:
                answered = 0
            if answered >= 4 * WORKERS:
                break
            time.sleep(0.1)
        yield base_url
    except Exception:
        print(f"the API's log ends:\n{log_path.read_text()[-3000:]}")
        raise
    finally:
        child.stop()


Request = Callable[[random.Random], Awaitable[None]]


def _figures(latencies: list[float], elapsed: float) -> dict[str, float]:
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return {"requests": len(latencies), "rps": len(latencies) / elapsed,
            "p50_ms": cuts[49] * 1000, "p99_ms": cuts[98] * 1000}


async def _closed(clients: int, seconds: float, request: Request) -> dict[str, float]:
    """`clients` workers sending `request` back to back for a warm-up, then `seconds` counted
    (no pause between the two: an idle keep-alive connection may be closed by the server)."""
    latencies: list[float] = []
    measured_from = time.perf_counter() + min(2.0, seconds / 5)
    until = measured_from + seconds

    async def worker(n: int) -> None:
        rng = random.Random(n)
        while (started := time.perf_counter()) < until:
            await request(rng)
            if started >= measured_from:
                latencies.append(time.perf_counter() - started)

    await asyncio.gather(*(worker(n) for n in range(clients)))
    return _figures(latencies, until - measured_from)


async def _paced(clients: int, seconds: float, interval: float, request: Request
                 ) -> dict[str, float]:
    """`clients` clients each sending `request` every `interval` seconds (from a random
    offset) whether or not the previous answer came: a warm-up, then `seconds` counted.
    Latency is from when a request was due, so a client that falls behind shows it."""
    latencies: list[float] = []
    begun = time.perf_counter()
    measured_from = begun + min(2.0, seconds / 5)
    until = measured_from + seconds
    sent: list[asyncio.Task[None]] = []

    async def one(due: float, rng: random.Random) -> None:
        await request(rng)
        if due >= measured_from:
            latencies.append(time.perf_counter() - due)

    async def client(n: int) -> None:
        rng = random.Random(n)
        due = begun + rng.uniform(0, interval)
        while due < until:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            sent.append(asyncio.create_task(one(due, rng)))
            due += interval

    await asyncio.gather(*(client(n) for n in range(clients)))
    await asyncio.gather(*sent)
    return _figures(latencies, until - measured_from)


async def _modes(args: argparse.Namespace, requests: dict[str, Request]
                 ) -> dict[str, dict[str, dict[str, float]]]:
    """Each endpoint's figures, paced then closed loop."""
    return {mode: {endpoint: await (
        _paced(args.clients, args.seconds, args.interval, request) if mode == "paced"
        else _closed(args.clients, args.seconds, request))
        for endpoint, request in requests.items()} for mode in MODES}


async def _through_api(base_url: str, token: str, args: argparse.Namespace,
                       machines: list[uuid.UUID], start: datetime, end: datetime
                       ) -> tuple[dict[str, dict[str, dict[str, float]]], int]:
    """The figures, and how many requests were sent again after a dropped connection."""
    resent = 0
    limits = httpx.Limits(max_connections=args.clients, max_keepalive_connections=args.clients)
    headers = {"Authorization": f"Bearer {token}"}
    window = {"start": start.isoformat(), "end": end.isoformat()}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits,
                                 timeout=60) as client:

        def get(path_of: Callable[[random.Random], str], params: dict[str, str]) -> Request:
            async def send(rng: random.Random) -> None:
                nonlocal resent
                path = path_of(rng)
                try:
                    r = await client.get(path, params=params)
                except (httpx.RemoteProtocolError, httpx.ReadError):
                    # A keep-alive connection the server closed as the request went out (a
                    # client on a busy machine can leave one idle past uvicorn's 5 s): sent
                    # again on a new one, as browsers do, and counted.
                    resent += 1
                    r = await client.get(path, params=params)
                if r.status_code != 200:
                    raise RuntimeError(f"{r.url}: {r.status_code} {r.text[:300]}")
            return send

        figures = await _modes(args, {
            "task_list": get(lambda _: "/v1/pm/tasks", {"status": "open"}),
            "time_in_state": get(lambda rng: f"/v1/machines/{rng.choice(machines)}/time-in-state",
                                 window)})
    return figures, resent


async def _direct(app: str, tenant: Tenant, args: argparse.Namespace,
                  machines: list[uuid.UUID], start: datetime, end: datetime
                  ) -> dict[str, dict[str, dict[str, float]]]:
    async with AsyncConnectionPool(app, min_size=DIRECT_CONNECTIONS,
                                   max_size=DIRECT_CONNECTIONS, open=False) as pool:
        await pool.wait()

        async def unit(queries: list[tuple[str, tuple[Any, ...]]]) -> None:
            async with pool.connection() as conn, conn.transaction():
                await conn.execute(SET_TENANT_SQL, tenant.params())
                for sql, params in queries:
                    await (await conn.execute(sql, params)).fetchall()

        async def tasks(_: random.Random) -> None:
            await unit([(TASKS_SQL, (["open"], 51))])

        async def time_in_state(rng: random.Random) -> None:
            machine = rng.choice(machines)
            await unit([(MACHINE_SQL, (machine,)), (TIME_IN_STATE_SQL, (machine, start, end))])

        return await _modes(args, {"task_list": tasks, "time_in_state": time_in_state})


def _median(runs: list[dict[str, Any]], side: str, mode: str, endpoint: str, key: str
            ) -> float:
    return statistics.median(r[side][mode][endpoint][key] for r in runs)


ENDPOINTS = ("task_list", "time_in_state")


def cmd_bench_api(args: argparse.Namespace) -> int:
    """Seed, run the API and the baseline `--runs` times, print the summary and one JSON line."""
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    t0 = now - timedelta(days=args.days)
    runs: list[dict[str, Any]] = []
    resent = 0
    with PostgresServer.create() as pg, tempfile.TemporaryDirectory() as tmp:
        with psycopg.connect(pg.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE mes")
        owner, app = pg.url("mes"), pg.url("mes", user=migrations.APP_ROLE)
        migrations.migrate(owner)
        demo = seed_demo(app)
        print(f"seeding {args.machines} machines, {args.days} days of state history, "
              f"{args.tasks_per_machine} PM tasks each ...", flush=True)
        with psycopg.connect(owner) as conn:
            row = conn.execute("SELECT id FROM mes.users WHERE email = %s",
                               (DEMO_TECHNICIAN,)).fetchone()
        assert row is not None  # the demo registry has its technician
        technician = row[0]
        started = time.monotonic()
        machines = _seed(owner, demo, args, t0, technician)
        with psycopg.connect(owner) as conn:
            history = conn.execute("SELECT count(*) FROM mes.machine_status_history").fetchone()
        print(f"seeded {history[0] if history else 0:,} state rows in "
              f"{time.monotonic() - started:.0f} s", flush=True)
        token = demo_token(app, demo.organization_id, SECRET)
        tenant = Tenant(demo.organization_id, demo.plants[LIVE_PLANT], technician)
        with _api(owner, app, Path(tmp) / "api.log") as base_url:
            for n in range(args.runs):
                through, again = asyncio.run(_through_api(base_url, token, args, machines, t0,
                                                          now))
                resent += again
                direct = asyncio.run(_direct(app, tenant, args, machines, t0, now))
                runs.append({"api": through, "direct": direct})
                for mode in MODES:
                    for endpoint in ENDPOINTS:
                        a, d = through[mode][endpoint], direct[mode][endpoint]
                        print(f"run {n + 1} {mode:6} {endpoint:13} api {a['rps']:6.0f} req/s "
                              f"p50 {a['p50_ms']:6.1f} p99 {a['p99_ms']:6.1f} ms | direct "
                              f"{d['rps']:6.0f} req/s p50 {d['p50_ms']:6.1f} p99 "
                              f"{d['p99_ms']:6.1f} ms", flush=True)
    load = os.getloadavg()
    results: dict[str, Any] = {
        "machines": args.machines, "state_rows": history[0] if history else 0,
        "tasks": args.machines * args.tasks_per_machine, "clients": args.clients,
        "interval_s": args.interval, "runs": args.runs, "workers": WORKERS,
        "pool_size": POOL_SIZE, "resent": resent, "loadavg": [round(x, 2) for x in load]}
    print(f"\nmedians of {args.runs} runs, {args.clients} clients, API {WORKERS} worker(s) x "
          f"{POOL_SIZE} connections, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
          f"{f', {resent} request(s) sent again after a dropped connection' if resent else ''}:")
    for mode in MODES:
        print(f"paced, each client a request every {args.interval:g} s (the target: p99 < 100 "
              "ms):" if mode == "paced" else "closed loop, back to back (capacity):")
        results[mode] = {}
        for endpoint in ENDPOINTS:
            figures: dict[str, Any] = {
                side: {k: _median(runs, side, mode, endpoint, k)
                       for k in ("rps", "p50_ms", "p99_ms")} for side in ("api", "direct")}
            a, d = figures["api"], figures["direct"]
            figures["api_to_direct_rps"] = a["rps"] / d["rps"]
            figures["api_to_direct_p50"] = a["p50_ms"] / d["p50_ms"]
            results[mode][endpoint] = figures
            print(f"  {endpoint:13} api {a['rps']:6.0f} req/s p50 {a['p50_ms']:6.1f} p99 "
                  f"{a['p99_ms']:6.1f} ms | direct {d['rps']:6.0f} req/s p50 "
                  f"{d['p50_ms']:6.1f} p99 {d['p99_ms']:6.1f} ms | api/direct req/s "
                  f"{figures['api_to_direct_rps']:.2f}, p50 {figures['api_to_direct_p50']:.1f}x")
    print(json.dumps({"bench": "api", **results}))
    return 0
