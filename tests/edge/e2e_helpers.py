"""Helpers for the end-to-end tests: the simulator's tag map pointed at a test broker, the agent
in a thread, and what was published compared with the simulator's ground truth.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from core.wire import CounterRecord, DowntimeRecord, MachineState, StateRecord, TelemetryRecord
from edge_agent.agent import EdgeAgent
from edge_agent.tagmap import AgentConfig, load_agent_config
from mes.sim.handle import SimulatorHandle
from mes.sim.tagmap import build
from mes.sim.truth import Truth
from tests.edge.mqtt_helpers import Collector, Received
from tests.support.wait import wait_until

POLL_S = 0.1


def sim_map(sim: SimulatorHandle, broker_port: int, outbox: Path, *, v5: bool = True,
            **rules: Any) -> dict[str, Any]:
    """The simulator's shipped-style map, read fast, published to the test broker (MQTT 3.1.1
    where the broker is the pip fallback, which has no MQTT 5)."""
    data = build(sim.config, poll_interval_s=POLL_S)
    data["broker"].update(
        port=broker_port, flush_interval_s=0.2, reconnect_min_s=0.2, reconnect_max_s=1.0,
        protocol="mqtt5" if v5 else "mqtt311",
    )
    data["outbox"]["path"] = str(outbox)
    for device in data["devices"]:
        device["backoff_max_s"] = 1.0
    for machine in data["machines"]:
        machine["rules"].update(rules)
    return data


def write_map(path: Path, data: dict[str, Any]) -> AgentConfig:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return load_agent_config(path)


class AgentThread:
    """An EdgeAgent running on its own event loop in a thread (the test drives the rest)."""

    def __init__(self, config: AgentConfig, **options: Any) -> None:
        self.agent = EdgeAgent(config, **options)
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="edge-agent", daemon=True)

    def _main(self) -> None:
        try:
            asyncio.run(self.agent.run())
        except BaseException as e:  # reported by stop()
            self.error = e

    def start(self) -> AgentThread:
        self._thread.start()
        wait_until(lambda: self.agent.running or self.error is not None, 30, "the agent")
        return self

    def drained(self) -> bool:
        depth = self.agent.outbox.depth()
        return not (depth.records or depth.messages or self.agent.publisher.stats().inflight)

    def stop(self, timeout: float = 30) -> None:
        self.agent.request_stop()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the agent did not stop in time"
        if self.error is not None:
            raise self.error


def drain_and_stop(runner: AgentThread, collector: Collector) -> None:
    """Let everything handed to the outbox reach the collector, then stop the agent."""
    wait_until(runner.drained, 30, "the outbox to drain")
    runner.stop()
    last = runner.agent.outbox.next_seq - 1
    wait_until(lambda: len(unique_messages(collector)) >= last, 15, "every message to arrive")


def published_since(collector: Collector, since: datetime) -> bool:
    """The collector holds a value read at or after `since`: live data flows, not a backlog."""
    return any(
        isinstance(r, StateRecord | CounterRecord | TelemetryRecord) and r.ts >= since
        for r in collector.records()
    )


def published_where_truth_ends(
    collector: Collector, truth: list[dict[str, Any]], machines: list[str]
) -> bool:
    """For every machine, the collector holds the truth's last state and last cycle count, each
    read no earlier than the truth shows it: the agent has read and published where the (paused)
    simulator stands. A cycle total matches the PLC's 16-bit register modulo 2**16. A state the
    agent showed already also counts once the cycle count proves it read since (a stop it could
    not see came and went in between; the tests' span checks judge that)."""
    records = collector.records()

    def last(kind: str, machine: str) -> dict[str, Any] | None:
        return next((r for r in reversed(truth) if r["type"] == kind and r["machine"] == machine),
                    None)  # fmt: skip

    def shows_state(r: Any, machine: str, want: dict[str, Any]) -> bool:
        return (isinstance(r, StateRecord) and r.machine == machine
                and r.state.value == want["state"]
                and r.ts >= datetime.fromisoformat(want["ts"]))  # fmt: skip

    def shows_cycles(r: Any, machine: str, want: dict[str, Any]) -> bool:
        return (isinstance(r, CounterRecord) and r.machine == machine and r.tag == "cycles"
                and r.value % 65536 == want["counter"]
                and r.ts >= datetime.fromisoformat(want["ts"]))  # fmt: skip

    def newest_state_is(machine: str, want: dict[str, Any]) -> bool:
        # A stop shorter than the reads' spacing (a loaded machine spaces them out) leaves the
        # state before it unchanged for the agent: the state it shows now is the truth's last.
        states = [r for r in records if isinstance(r, StateRecord) and r.machine == machine]
        return bool(states) and states[-1].state.value == want["state"]

    for machine in machines:
        state, cycle = last("state", machine), last("cycle", machine)
        if state is not None and not any(shows_state(r, machine, state) for r in records) \
                and not (cycle is not None and newest_state_is(machine, state)):
            return False
        if cycle is not None and not any(shows_cycles(r, machine, cycle) for r in records):
            return False
    return True


def wait_published_where_truth_ends(sim: SimulatorHandle, collector: Collector) -> None:
    """After `sim.pause()`: wait until the agent has published what the simulator shows last.
    The truth is read again on each try, in case a tick was under way when the pause came."""
    wait_until(
        lambda: published_where_truth_ends(collector, first_run(sim.truth()), sim.machines),
        30, "the agent to publish where the simulator stopped", interval=0.25,
    )  # fmt: skip


def unique_messages(collector: Collector) -> dict[int, Received]:
    """Messages by seq; a seq received twice must carry the same bytes (a replay)."""
    out: dict[int, Received] = {}
    for m in collector.snapshot():
        seq = m.envelope.seq
        if seq in out:
            assert out[seq].payload == m.payload, f"seq {seq} arrived with different payloads"
        out[seq] = m
    return out


def records_in_order(collector: Collector) -> list[Any]:
    """Every record once, in seq order; asserts that seqs have no gap."""
    messages = unique_messages(collector)
    assert sorted(messages) == list(range(1, len(messages) + 1)), "gap in seq"
    return [r for seq in sorted(messages) for r in messages[seq].envelope.records]


def check_natural_keys(records: list[Any]) -> None:
    """Records sharing a natural key say the same thing (the key is the record's identity)."""
    states: dict[tuple[str, datetime], StateRecord] = {}
    counters: dict[tuple[str, str, datetime], CounterRecord] = {}
    events: dict[uuid.UUID, list[DowntimeRecord]] = defaultdict(list)
    for r in records:
        if isinstance(r, StateRecord):
            assert states.setdefault((r.machine, r.ts), r) == r, f"two states for {r}"
        elif isinstance(r, CounterRecord):
            assert counters.setdefault((r.machine, r.tag, r.ts), r) == r, f"two values for {r}"
        elif isinstance(r, DowntimeRecord):
            events[r.event_id].append(r)
    for event_id, rs in events.items():
        assert len({(r.machine, r.started_at, r.state) for r in rs}) == 1, event_id
        assert len({r.ended_at for r in rs if r.ended_at is not None}) <= 1, event_id


# ------------------------------------------------------------------------- ground truth


def first_run(truth: Truth) -> list[dict[str, Any]]:
    """The truth records of the first run of the log."""
    out: list[dict[str, Any]] = []
    for r in truth.records[1:]:
        if r["type"] in ("start", "stop"):
            break
        out.append(r)
    return out


@dataclass(frozen=True)
class Span:
    """A state as the truth or the agent saw it: from `ts` to `until`."""

    state: MachineState
    ts: datetime
    until: datetime | None
    reason_code: str | None = None
    category: str | None = None
    micro: bool | None = None

    @property
    def seconds(self) -> float | None:
        return None if self.until is None else (self.until - self.ts).total_seconds()


def truth_spans(truth: list[dict[str, Any]], machine: str) -> list[Span]:
    rows = [r for r in truth if r["type"] == "state" and r["machine"] == machine]
    return [
        Span(
            MachineState(r["state"]),
            datetime.fromisoformat(r["ts"]),
            datetime.fromisoformat(nxt["ts"]) if nxt else None,
            r["reason_code"],
            r["category"],
            r["micro"],
        )
        for r, nxt in zip(rows, [*rows[1:], None], strict=True)
    ]


def agent_spans(records: list[Any], machine: str) -> list[Span]:
    """State records of one machine, heartbeats and repeats folded into spans."""
    rows = sorted({(r.ts, r.state) for r in records if isinstance(r, StateRecord)
                   and r.machine == machine})  # fmt: skip
    spans: list[Span] = []
    for ts, state in rows:
        if spans and spans[-1].state == state:
            continue
        if spans:
            spans[-1] = Span(spans[-1].state, spans[-1].ts, ts)
        spans.append(Span(state, ts, None))
    return spans


def spans_until_stopped(records: list[Any], machine: str) -> list[Span]:
    """The spans of a machine whose agent was stopped, without the `offline` that stopping
    recorded (checked here): the last span observed is left open, as when the agent stopped."""
    *seen, stopped = agent_spans(records, machine)
    assert stopped.state is MachineState.OFFLINE and stopped.until is None, (machine, stopped)
    assert seen, machine
    seen[-1] = Span(seen[-1].state, seen[-1].ts, None)
    return seen


def events_of(records: list[Any], machine: str) -> list[DowntimeRecord]:
    """Each downtime event of `machine` as its last record, by start time."""
    last: dict[uuid.UUID, DowntimeRecord] = {}
    for r in records:
        if isinstance(r, DowntimeRecord) and r.machine == machine:
            last[r.event_id] = r
    return sorted(last.values(), key=lambda r: r.started_at)


def truth_from(spans: list[Span], ts: datetime) -> list[Span]:
    """The truth's spans from the one in force at `ts` on."""
    start = max((i for i, s in enumerate(spans) if s.ts <= ts), default=0)
    return spans[start:]
