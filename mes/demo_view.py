"""What the demo shows and checks: every record published (seen by a plain subscriber of its
own, by natural key) against every row landed (read back through the application role under
the demo tenant), plus the live view of machines, stops and counters."""

from __future__ import annotations

import threading
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.enums import CallbackAPIVersion
from rich.table import Table

from core.tenancy import Tenant, tenant_transaction
from core.wire import DowntimeRecord, Kind, MachineState, Topic, WireError, decode
from mes.services.broker import BrokerServer

StateKey = tuple[str, datetime]
ValueKey = tuple[str, str, datetime]


@dataclass
class Published:
    """Natural keys of everything the gateway published, by kind."""

    states: set[StateKey] = field(default_factory=set)
    counters: set[ValueKey] = field(default_factory=set)
    telemetry: set[ValueKey] = field(default_factory=set)
    stops: dict[uuid.UUID, DowntimeRecord] = field(default_factory=dict)  # last word per event
    messages: int = 0

    def counts(self) -> dict[str, int]:
        return {"state": len(self.states), "downtime": len(self.stops),
                "counter": len(self.counters), "telemetry": len(self.telemetry)}


class Ledger:
    """Subscribes to the organization's topics and records what was published."""

    def __init__(self, broker: BrokerServer, org: str) -> None:
        self.published = Published()
        self._lock = threading.Lock()
        self.client = mqtt.Client(
            CallbackAPIVersion.VERSION2, client_id=f"mes-demo-ledger-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5 if broker.supports_mqtt5 else mqtt.MQTTv311)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(f"mes/v1/{org}/+/+/+", qos=1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, _c: mqtt.Client, _u: Any, msg: mqtt.MQTTMessage) -> None:
        try:
            topic = Topic.parse(msg.topic)
            if topic.kind is Kind.STATUS:
                return
            env = decode(topic.kind, msg.payload)
        except WireError:
            return  # the ingest dead-letters it; the summary counts dead letters
        p = self.published
        with self._lock:
            p.messages += 1
            for r in env.records:  # type: ignore[attr-defined]
                if topic.kind is Kind.STATE:
                    p.states.add((r.machine, r.ts))
                elif topic.kind is Kind.COUNTER:
                    p.counters.add((r.machine, r.tag, r.ts))
                elif topic.kind is Kind.TELEMETRY:
                    p.telemetry.add((r.machine, r.tag, r.ts))
                elif r.ended_at is not None or r.event_id not in p.stops:
                    p.stops[r.event_id] = r

    def snapshot(self) -> Published:
        with self._lock:
            p = self.published
            return Published(set(p.states), set(p.counters), set(p.telemetry), dict(p.stops),
                             p.messages)


@dataclass
class Landed:
    states: set[StateKey]
    counters: set[ValueKey]
    telemetry: set[ValueKey]
    stops: dict[uuid.UUID, datetime | None]  # event -> ended_at
    dead_letters: int
    latest: dict[str, tuple[str, datetime, str | None]]  # machine -> (state, since, reason)
    cycles: dict[str, float]

    @property
    def rows(self) -> int:
        return len(self.states) + len(self.counters) + len(self.telemetry) + len(self.stops)


def read_landed(app_url: str, owner_url: str, organization_id: uuid.UUID) -> Landed:
    """Everything of the tenant in the database, read as the application role."""
    with psycopg.connect(app_url) as conn, tenant_transaction(conn, Tenant(organization_id)):
        code = dict(conn.execute("SELECT id, code FROM mes.machines").fetchall())
        states = conn.execute("SELECT machine_id, ts, state, reason_code "
                              "FROM mes.v_machine_status_history ORDER BY ts").fetchall()
        values = {view: conn.execute(f"SELECT machine_id, tag, ts, value FROM mes.{view} "
                                     "ORDER BY ts").fetchall()
                  for view in ("v_machine_counter", "v_machine_telemetry")}
        stops = conn.execute("SELECT event_id, ended_at FROM mes.v_downtime_event").fetchall()
    with psycopg.connect(owner_url) as conn:
        row = conn.execute("SELECT count(*) FROM mes.dead_letters").fetchone()
    latest = {code[m]: (s, ts, r) for m, ts, s, r in states}
    cycles = {code[m]: v for m, tag, _ts, v in values["v_machine_counter"] if tag == "cycles"}
    return Landed(
        states={(code[m], ts) for m, ts, _s, _r in states},
        counters={(code[m], tag, ts) for m, tag, ts, _v in values["v_machine_counter"]},
        telemetry={(code[m], tag, ts) for m, tag, ts, _v in values["v_machine_telemetry"]},
        stops=dict(stops), dead_letters=int(row[0]) if row else 0, latest=latest,
        cycles=cycles)


def missing(published: Published, landed: Landed) -> Counter[str]:
    """Published records not (or not completely) in the database, by kind."""
    out: Counter[str] = Counter()
    out["state"] = len(published.states - landed.states)
    out["counter"] = len(published.counters - landed.counters)
    out["telemetry"] = len(published.telemetry - landed.telemetry)
    for event, rec in published.stops.items():
        if event not in landed.stops or (rec.ended_at is not None and landed.stops[event] is None):
            out["downtime"] += 1
    return out


def render(elapsed: float, published: Published, landed: Landed, rows_per_s: float) -> Table:
    """One screenful: each machine's state, since when, its open stop and cycles; totals."""
    totals = (f"{elapsed:,.0f} s: published {sum(published.counts().values()):,} records, "
              f"landed {landed.rows:,} rows ({rows_per_s:,.0f}/s), "
              f"dead letters {landed.dead_letters}")
    table = Table(title=totals, caption="Ctrl-C stops the demo and prints the summary",
                  title_justify="left", caption_justify="left")
    table.add_column("machine")
    table.add_column("state")
    table.add_column("since")
    table.add_column("stop reason")
    table.add_column("category")
    table.add_column("cycles", justify="right")
    open_stops = {r.machine: r for r in published.stops.values() if r.ended_at is None}
    for machine in sorted(landed.latest):
        state, since, _reason = landed.latest[machine]
        # The ledger can be a moment ahead of or behind the rows: a stop shows only on a
        # machine whose landed state is a stop.
        stop = open_stops.get(machine) if MachineState(state).is_stop else None
        cycles = landed.cycles.get(machine)
        table.add_row(
            machine, state, f"{since:%H:%M:%S}",
            (stop.reason_code or "-") if stop else "",
            stop.category.value if stop else "",
            f"{cycles:,.0f}" if cycles is not None else "-",
        )
    return table
