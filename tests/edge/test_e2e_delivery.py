"""End to end, delivery under faults: the broker goes away for 30 s, the agent is SIGKILLed.

Against `mes sim` (process) and a private mosquitto whose persistence keeps the collecting
subscriber's session across the broker's restart.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.wire import (
    CounterRecord,
    DowntimeRecord,
    Kind,
    MachineState,
    StateRecord,
    WireForm,
    decode_piece,
)
from mes.services.broker import PROJECT_ROOT, BrokerServer
from mes.services.ports import free_port
from mes.sim.handle import SimulatorHandle
from tests.edge.e2e_helpers import (
    AgentThread,
    agent_spans,
    check_natural_keys,
    drain_and_stop,
    first_run,
    published_since,
    records_in_order,
    sim_map,
    spans_until_stopped,
    truth_from,
    truth_spans,
    unique_messages,
    wait_published_where_truth_ends,
    write_map,
)
from tests.edge.mqtt_helpers import Collector
from tests.edge.test_e2e import LAG, sim_config
from tests.fixtures.services import require_mosquitto
from tests.support.wait import wait_until

OUTAGE_S = 30


@pytest.fixture
def broker(broker_factory: Callable[..., BrokerServer]) -> BrokerServer:
    broker = broker_factory()
    require_mosquitto(broker)  # persistence: the collector's session survives the restart
    return broker


def _check_order(records: list[Any]) -> None:
    """In seq order, each machine's records come in time order."""
    last: dict[tuple[str, str], datetime] = {}
    for r in records:
        if isinstance(r, StateRecord):
            key, ts = (r.machine, "state"), r.ts
        elif isinstance(r, CounterRecord):
            key, ts = (r.machine, r.tag), r.ts
        elif isinstance(r, DowntimeRecord):
            key, ts = (r.machine, "downtime"), r.ended_at or r.started_at
        else:
            continue
        if key in last:
            assert ts > last[key] or (isinstance(r, DowntimeRecord) and ts >= last[key]), r
        last[key] = ts


def test_broker_outage_loses_nothing(broker: BrokerServer, tmp_path: Path) -> None:
    with SimulatorHandle(sim_config(tmp_path), process=True) as sim:
        config = write_map(tmp_path / "map.yaml",
                           sim_map(sim, broker.port, tmp_path / "outbox.sqlite"))  # fmt: skip
        collector = Collector(broker.host, broker.port, persistent=True)
        runner = AgentThread(config).start()
        agent = runner.agent
        try:
            wait_until(lambda: agent.publisher.stats().acked >= 5, 20, "publishing")
            broker.stop()
            wait_until(lambda: not agent.publisher.connected, 10, "the agent to notice")
            time.sleep(OUTAGE_S)  # the scenario: the broker stays away this long
            held = agent.outbox.depth()
            assert held.records + held.messages > 0 and held.oldest_age_s is not None
            broker.start()
            wait_until(lambda: agent.publisher.connected, 30, "the reconnect")
            reconnected = datetime.now(UTC)
            wait_until(lambda: published_since(collector, reconnected), 30,
                       "values read after the reconnect")  # fmt: skip
            sim.pause()
            wait_published_where_truth_ends(sim, collector)
            drain_and_stop(runner, collector)
        finally:
            collector.close()
            if agent.running:
                runner.stop()
        truth = first_run(sim.truth())

    assert agent.publisher.stats().disconnects >= 1
    records = records_in_order(collector)
    check_natural_keys(records)
    assert len(records) == sum(agent.records_out.values())  # every record handed over arrived
    _check_order(records)
    for machine in sim.machines:
        got = spans_until_stopped(records, machine)
        want = truth_from(truth_spans(truth, machine), got[0].ts)
        assert [s.state for s in got] == [s.state for s in want], machine


def _health(port: int) -> dict[str, Any] | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as reply:
            return dict(json.loads(reply.read()))
    except (OSError, ValueError):
        return None


def _holding_unacknowledged(port: int, outbox: Path) -> bool:
    """The agent knows the broker is gone and its outbox file holds records or messages
    (committed: what a SIGKILL now leaves behind)."""
    health = _health(port) or {}
    return health.get("broker", "connected") != "connected" and any(_stored(outbox))


@contextmanager
def _agent_process(tag_map: Path, log: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """`mes edge run` as a child process, with its status port; killed if left running."""
    port = free_port()
    with log.open("ab") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mes.cli", "edge", "run", "--config", str(tag_map),
             "--status-port", str(port), "--log-format", "text"],
            cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=err,
        )  # fmt: skip
    try:
        wait_until(lambda: (_health(port) or {}).get("running", False), 60, "the agent process")
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _stored(outbox: Path) -> tuple[dict[int, bytes], list[Any]]:
    """What a dead agent's outbox holds: messages by seq and pending records."""
    db = sqlite3.connect(outbox)
    try:
        messages = dict(db.execute("SELECT seq, payload FROM message"))
        pending = [
            record
            for kind, form, body in db.execute("SELECT kind, form, body FROM piece ORDER BY id")
            for record in decode_piece(Kind(kind), WireForm(form), body)
        ]
    finally:
        db.close()
    return messages, pending


def test_sigkill_replays_the_outbox(broker: BrokerServer, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.sqlite"
    log = tmp_path / "agent.log"
    with SimulatorHandle(sim_config(tmp_path), process=True) as sim:
        # A restart within offline_after_s is no gap: a stop open across it keeps its event.
        data = sim_map(sim, broker.port, outbox, offline_after_s=30.0)
        tag_map = tmp_path / "map.yaml"
        write_map(tag_map, data)
        collector = Collector(broker.host, broker.port, persistent=True)
        try:
            with _agent_process(tag_map, log) as (first, port):
                wait_until(lambda: (_health(port) or {}).get("broker") == "connected", 20, "broker")
                wait_until(lambda: len(unique_messages(collector)) >= 5, 20, "publishing")
                broker.stop()  # what is published from now on is not acknowledged
                wait_until(lambda: _holding_unacknowledged(port, outbox), 20,
                           "the agent to hold data the broker did not acknowledge")  # fmt: skip
                first.send_signal(signal.SIGKILL)
                first.wait()
                killed = datetime.now(UTC)
            messages, pending = _stored(outbox)
            assert messages or pending, "nothing was left unacknowledged"
            broker.start()
            with _agent_process(tag_map, log) as (second, port):
                started = datetime.now(UTC)
                wait_until(lambda: published_since(collector, started), 30,
                           "values read by the restarted agent")  # fmt: skip
                # From here the restarted agent reads at its pace; before, it may still be
                # replaying and catching up (slowly on a loaded machine).
                restarted = datetime.now(UTC)
                sim.pause()
                wait_published_where_truth_ends(sim, collector)

                def drained() -> bool:
                    h = _health(port) or {}
                    box = h.get("outbox", {})
                    return h.get("broker") == "connected" and box.get("records") == 0 == box.get(
                        "messages"
                    )

                wait_until(drained, 30, "the outbox to drain")
                next_seq = (_health(port) or {})["outbox"]["next_seq"]
                second.send_signal(signal.SIGTERM)
                assert second.wait(30) == 0, log.read_text()[-3000:]
            wait_until(lambda: len(unique_messages(collector)) >= next_seq - 1, 15, "arrivals")
        finally:
            collector.close()
        truth = first_run(sim.truth())

    received = unique_messages(collector)
    for seq, payload in messages.items():  # replayed byte for byte: same seq, same records
        assert received[seq].payload == payload
    records = records_in_order(collector)  # seq continued: no gap, no seq reused
    check_natural_keys(records)
    for record in pending:
        assert record in records
    _check_order(records)
    # Every state change well before the kill or well after the restart was published.
    margin = timedelta(seconds=1)
    for machine in sim.machines:
        got = agent_spans(records, machine)
        for real in truth_from(truth_spans(truth, machine), got[0].ts)[1:]:
            if real.ts < killed - margin or real.ts > restarted + margin:
                assert any(seen.state == real.state and timedelta(0) <= seen.ts - real.ts < LAG
                           for seen in got), (machine, real)  # fmt: skip


def _stopped_machines(port: int) -> set[str]:
    """Machines the running agent reports in a stop state."""
    machines = (_health(port) or {}).get("machines", {})
    return {m for m, s in machines.items() if s is not None and MachineState(s).is_stop}


def _last_event(records: list[Any], machine: str) -> DowntimeRecord:
    return [r for r in records if isinstance(r, DowntimeRecord) and r.machine == machine][-1]


@pytest.mark.parametrize("how", ["sigterm", "sigkill"])
def test_stopping_the_agent_leaves_no_open_stop(
    broker: BrokerServer, tmp_path: Path, how: str
) -> None:
    outbox, log = tmp_path / "outbox.sqlite", tmp_path / "agent.log"
    offline_after_s = 1.0
    with SimulatorHandle(sim_config(tmp_path), process=True) as sim:
        data = sim_map(sim, broker.port, outbox, offline_after_s=offline_after_s)
        tag_map = tmp_path / "map.yaml"
        write_map(tag_map, data)
        collector = Collector(broker.host, broker.port, persistent=True)
        try:
            with _agent_process(tag_map, log) as (agent, port):
                wait_until(lambda: bool(_stopped_machines(port)), 30, "a machine in a stop")
                sim.pause()  # the stop stays open from here on
                time.sleep(0.5)
                stopped = _stopped_machines(port)
                assert stopped
                wait_until(lambda: {m for m in stopped
                                    if _last_event(collector.records(), m).ended_at is None}
                           == stopped, 20, "the open stops to be published")  # fmt: skip
                open_ids = {m: _last_event(collector.records(), m).event_id for m in stopped}
                if how == "sigterm":
                    agent.send_signal(signal.SIGTERM)
                    assert agent.wait(30) == 0, log.read_text()[-3000:]
                else:
                    agent.send_signal(signal.SIGKILL)
                    agent.wait()
            if how == "sigkill":  # the stops stay open until a restart finds them
                time.sleep(offline_after_s * 2)
                with _agent_process(tag_map, log) as (again, port):
                    wait_until(lambda: all(_ended(collector, m, open_ids[m]) for m in stopped),
                               20, "the restart to close the stops")  # fmt: skip
                    again.send_signal(signal.SIGTERM)
                    assert again.wait(30) == 0, log.read_text()[-3000:]
            wait_until(lambda: all(_ended(collector, m, open_ids[m]) for m in stopped), 20,
                       "the closed stops to arrive")  # fmt: skip
            wait_until(lambda: all(_went_offline(collector, m) for m in stopped), 20,
                       "every stopped machine's offline state")  # fmt: skip
        finally:
            collector.close()

    records = records_in_order(collector)
    for machine in stopped:
        end = _closing(records, machine, open_ids[machine])
        assert end.truncated is True and end.micro_stop is False, end
        assert end.ended_at is not None and end.ended_at >= end.started_at


def _closing(records: list[Any], machine: str, event_id: Any) -> DowntimeRecord:
    (end,) = [r for r in records if isinstance(r, DowntimeRecord) and r.machine == machine
              and r.event_id == event_id and r.ended_at is not None]  # fmt: skip
    return end


def _ended(collector: Collector, machine: str, event_id: Any) -> bool:
    return any(isinstance(r, DowntimeRecord) and r.machine == machine and r.event_id == event_id
               and r.ended_at is not None for r in collector.records())  # fmt: skip


def _went_offline(collector: Collector, machine: str) -> bool:
    return any(isinstance(r, StateRecord) and r.machine == machine
               and r.state is MachineState.OFFLINE for r in collector.records())  # fmt: skip
