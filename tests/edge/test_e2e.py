"""End to end against `mes sim` on both protocols: what the agent publishes is what happened.

The simulator runs in its own process (Modbus for m001-m002, OPC UA for m003-m004, at 5x
speed), the agent in this one, publishing to a private mosquitto; a subscriber collects what
arrives and the simulator's truth log says what really happened.
"""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from core.status_server import StatusServer
from core.wire import CounterRecord, DowntimeRecord, MachineState, StateRecord
from mes.services.broker import BrokerServer
from mes.sim.config import SimConfig
from mes.sim.handle import SimulatorHandle
from tests.edge.e2e_helpers import (
    AgentThread,
    Span,
    check_natural_keys,
    drain_and_stop,
    events_of,
    first_run,
    records_in_order,
    sim_map,
    spans_until_stopped,
    truth_from,
    truth_spans,
    wait_published_where_truth_ends,
    write_map,
)
from tests.edge.mqtt_helpers import Collector
from tests.support.wait import wait_until

SPEED = 5.0
SEED = 77  # covers every state, micro-stops and every machine's counter rollover early
TICK_S = 0.1
# Micro-stops last at most 4 machine seconds, other stops at least 5: the threshold sits
# between, and a stop whose wall-clock length is near it (polling and tick jitter) is not judged.
MICRO_BELOW_S = 4.5 / SPEED
MICRO_MARGIN_S = 0.15
LAG = timedelta(seconds=3)  # a generous bound on read delay: this is about what, not how fast
PLC_OUTAGE_S = 1.0


def sim_config(tmp_path: Path) -> SimConfig:
    return SimConfig(
        machines=4, seed=SEED, speed=SPEED, tick_s=TICK_S, min_dwell_s=0.3,
        truth=tmp_path / "truth.jsonl",
    )  # fmt: skip


def _truth_covers_everything(sim: SimulatorHandle) -> bool:
    truth = first_run(sim.truth())
    states = {r["state"] for r in truth if r["type"] == "state"}
    micro = sum(1 for r in truth if r["type"] == "state" and r["micro"])
    rolled = {r["machine"] for r in truth if r["type"] == "cycle" and r["counter"] < 100}
    return len(states) == len(MachineState) - 1 and micro >= 2 and len(rolled) == 4


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as reply:
        return reply.status, reply.read()


def test_published_records_match_the_simulators_truth(
    broker_factory: Callable[..., BrokerServer], tmp_path: Path
) -> None:
    broker = broker_factory()
    with SimulatorHandle(sim_config(tmp_path), process=True) as sim:
        sim.pause()  # the agent sees every machine from its first state on
        data = sim_map(sim, broker.port, tmp_path / "outbox.sqlite", v5=broker.supports_mqtt5,
                       micro_stop_below_s=MICRO_BELOW_S)  # fmt: skip
        config = write_map(tmp_path / "map.yaml", data)
        collector = Collector(broker.host, broker.port, v5=broker.supports_mqtt5)
        runner = AgentThread(config).start()
        agent = runner.agent
        status = StatusServer("127.0.0.1", 0, agent.health, agent.registry).start()
        try:
            wait_until(lambda: all(agent.machine_states().values()), 20, "every first state")
            sim.resume()
            wait_until(lambda: _truth_covers_everything(sim), 60, "the run to show everything")
            code, body = _get(f"http://127.0.0.1:{status.port}/health")
            health = json.loads(body)
            assert code == 200 and health["healthy"], health
            assert health["broker"] == "connected"
            assert all(d["connected"] for d in health["devices"].values()), health
            _, metrics = _get(f"http://127.0.0.1:{status.port}/metrics")
            text = metrics.decode()
            for line in ('mes_edge_device_connected{device="sim-modbus"} 1.0',
                         'mes_edge_device_connected{device="sim-opcua"} 1.0',
                         "mes_edge_broker_connected 1.0"):  # fmt: skip
                assert line in text
            for name in ("mes_edge_reads_total", "mes_edge_read_latency_seconds",
                         "mes_edge_records_total", "mes_edge_outbox_oldest_age_seconds",
                         "mes_edge_machine_state", "mes_edge_publish_rate"):  # fmt: skip
                assert name in text
            sim.pause()
            wait_published_where_truth_ends(sim, collector)
            drain_and_stop(runner, collector)
        finally:
            status.stop()
            collector.close()
            if agent.running:
                runner.stop()
        truth = first_run(sim.truth())

    records = records_in_order(collector)
    check_natural_keys(records)
    micro_checked = 0
    for machine in sim.machines:
        got = spans_until_stopped(records, machine)
        want = truth_from(truth_spans(truth, machine), got[0].ts)
        assert [s.state for s in got] == [s.state for s in want], machine
        for seen, real in zip(got[1:], want[1:], strict=True):
            assert timedelta(0) <= seen.ts - real.ts < LAG, (machine, seen, real)
        micro_checked += _check_downtime(records, machine, got, want)
        _check_cycles(records, truth, machine)
    assert micro_checked >= 2


def _check_downtime(records: list[Any], machine: str, got: list[Span], want: list[Span]) -> int:
    """Every stop is one event with the truth's state, reason, category and micro-stop flag;
    returns how many micro-stop flags could be judged."""
    events = events_of(records, machine)
    stops = [(seen, real) for seen, real in zip(got, want, strict=True) if real.state.is_stop]
    assert len(events) == len(stops), machine
    judged = 0
    for event, (seen, real) in zip(events, stops, strict=True):
        assert event.started_at == seen.ts, (machine, event)
        if seen.until is None:  # in force when the agent stopped: ended then, cut short
            assert event.truncated and event.ended_at is not None, (machine, event)
            assert event.micro_stop is False, (machine, event)
        else:
            assert event.ended_at == seen.until and not event.truncated, (machine, event)
        assert (event.state, event.reason_code, event.category.value) == (
            real.state, real.reason_code, real.category
        ), (machine, event, real)  # fmt: skip
        if real.seconds is not None and abs(real.seconds - MICRO_BELOW_S) > MICRO_MARGIN_S:
            assert event.micro_stop == real.micro, (machine, event, real)
            judged += real.micro is True
    states = [r for r in records if isinstance(r, StateRecord) and r.machine == machine]
    for r in states:  # a stop's state records carry the open event's reason
        if r.state.is_stop:
            open_ = [e for e in events if e.started_at <= r.ts
                     and (e.ended_at is None or r.ts < e.ended_at)]  # fmt: skip
            assert len(open_) == 1 and r.reason_code in (None, open_[0].reason_code)
    return judged


def _check_cycles(records: list[Any], truth: list[dict[str, Any]], machine: str) -> None:
    """The cycle total follows the PLC's 16-bit counter through its rollover."""
    counts = [
        r for r in records
        if isinstance(r, CounterRecord) and r.machine == machine and r.tag == "cycles"
    ]  # fmt: skip
    cycles = [r for r in truth if r["type"] == "cycle" and r["machine"] == machine]
    first, last = counts[0], counts[-1]
    # The first read sets the total to the raw register: find the true count at that value.
    before = [c for c in cycles if c["counter"] == first.value % 65536
              and datetime.fromisoformat(c["ts"]) <= first.ts]  # fmt: skip
    base = before[-1]["total"] if before else 0
    assert last.value - first.value == cycles[-1]["total"] - base, machine
    assert first.value < 65536 <= last.value, f"{machine}: no rollover seen"


def test_plc_outage_is_a_gap_not_a_stop(
    broker_factory: Callable[..., BrokerServer], tmp_path: Path
) -> None:
    broker = broker_factory()
    with SimulatorHandle(sim_config(tmp_path), process=True) as sim:
        data = sim_map(sim, broker.port, tmp_path / "outbox.sqlite", v5=broker.supports_mqtt5,
                       offline_after_s=2.0)
        config = write_map(tmp_path / "map.yaml", data)
        collector = Collector(broker.host, broker.port, v5=broker.supports_mqtt5)
        runner = AgentThread(config).start()
        agent = runner.agent
        opcua = agent.drivers["sim-opcua"]
        try:
            wait_until(lambda: all(agent.machine_states().values()), 20, "every first state")
            nodes = set(getattr(opcua, "subscribed", set()))
            assert nodes, "OPC UA tags are subscribed"
            wait_until(lambda: {r.machine for r in collector.records()
                                if isinstance(r, StateRecord)} == set(sim.machines),
                       20, "every first state to be published")  # fmt: skip
            down = datetime.now(UTC)
            sim.servers_down()
            wait_until(
                lambda: set(agent.machine_states().values()) == {MachineState.OFFLINE},
                20, "every machine offline",
            )  # fmt: skip
            time.sleep(PLC_OUTAGE_S)  # the scenario: the PLCs stay unreachable for a while
            up = datetime.now(UTC)
            sim.servers_up()
            wait_until(
                lambda: MachineState.OFFLINE not in agent.machine_states().values(),
                30, "every machine back",
            )  # fmt: skip
            wait_until(lambda: getattr(opcua, "subscribed", set()) == nodes, 20, "resubscribed")
            # Live data after the outage: a state change the truth shows on each OPC UA machine
            # must reach the agent through the re-established subscription.
            opcua_machines = sim.info["opcua_machines"]
            recovered = datetime.now(UTC)

            def changed_after_recovery() -> bool:
                truth = first_run(sim.truth())
                return all(
                    any(s.ts > recovered for s in truth_spans(truth, m)) for m in opcua_machines
                )

            wait_until(changed_after_recovery, 30, "state changes after the outage")
            sim.pause()
            wait_published_where_truth_ends(sim, collector)
            assert agent.running and agent.driver_restarts == 0
            drain_and_stop(runner, collector)
        finally:
            collector.close()
            if agent.running:
                runner.stop()
        truth = first_run(sim.truth())

    records = records_in_order(collector)
    check_natural_keys(records)
    slack = timedelta(seconds=0.5)
    for machine in sim.machines:
        spans = spans_until_stopped(records, machine)
        offline = [s for s in spans if s.state is MachineState.OFFLINE]
        assert len(offline) == 1, (machine, spans)
        gap = offline[0]
        assert down <= gap.ts <= down + slack, (machine, gap)  # the first failed read
        assert gap.until is not None and gap.until >= up, (machine, gap)
        for event in events_of(records, machine):
            # No downtime invented in the gap: events end at the last good read before it
            # and start again only with a good read after it.
            assert not (down + slack < event.started_at < up), (machine, event)
            if event.started_at < down:
                assert event.ended_at is not None and event.ended_at <= down + slack
                assert event.truncated and not event.micro_stop, (machine, event)  # cut short
        downtime_states = [r.state for r in records
                           if isinstance(r, DowntimeRecord) and r.machine == machine]  # fmt: skip
        assert MachineState.OFFLINE not in downtime_states
    for machine in sim.info["opcua_machines"]:
        got = spans_until_stopped(records, machine)
        for real in truth_spans(truth, machine):
            if real.ts > recovered:  # seen through the re-established subscription
                assert any(seen.state == real.state and timedelta(0) <= seen.ts - real.ts < LAG
                           for seen in got), (machine, real)  # fmt: skip
