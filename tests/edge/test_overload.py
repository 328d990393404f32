"""Overload: an agent polling far faster than it can stays visible and connected, and slows
every device evenly (edge_agent.pacing). Behaviour only, no timing figures."""

from __future__ import annotations

import logging
import re
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from core.status_server import StatusServer
from edge_agent.drivers.base import TagReading
from edge_agent.drivers.runtime import Pace
from edge_agent.pacing import PaceController
from mes.services.broker import BrokerServer
from mes.sim.config import SimConfig
from mes.sim.handle import SimulatorHandle
from tests.edge.e2e_helpers import AgentThread, sim_map, write_map
from tests.support.wait import wait_until

SCRAPE_TIMEOUT_S = 10
SLOWER_S_PER_VALUE = 20e-6


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=SCRAPE_TIMEOUT_S) as r:
        assert r.status == 200
        return r.read().decode()


def _gauge(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.MULTILINE)
    assert match, name
    return float(match.group(1))


def test_an_agent_past_its_capacity_slows_polling_and_stays_reachable(
    broker_factory: Callable[..., BrokerServer], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    broker = broker_factory()
    sim = SimConfig(machines=4, seed=3, extra_tags=60, tick_s=0.1)
    with SimulatorHandle(sim, process=True) as handle:
        data = sim_map(handle, broker.port, tmp_path / "outbox.sqlite", v5=broker.supports_mqtt5)
        for device in data["devices"]:
            device["poll_interval_s"] = 0.0005  # far more than one process can poll
        for machine in data["machines"]:  # and every value a record: the agent's work, not
            for telemetry in machine["rules"]["telemetry"]:  # the simulator's, is the limit
                telemetry["max_interval_s"] = 0.001
        config = write_map(tmp_path / "map.yaml", data)
        with caplog.at_level(logging.WARNING, logger="edge_agent.pacing"):
            runner = AgentThread(config)
            agent = runner.agent
            # A gateway CPU far slower than this machine's: on this one the agent handles
            # values faster than one simulator process serves them, so it would never be the
            # limit. Burning CPU per value on the loop makes it one, as on a small gateway.
            sink = agent._on_readings

            def slow_gateway(readings: list[TagReading]) -> None:
                until = time.thread_time() + SLOWER_S_PER_VALUE * len(readings)
                while time.thread_time() < until:
                    pass
                sink(readings)

            agent._on_readings = slow_gateway  # type: ignore[method-assign]
            runner.start()
            status = StatusServer("127.0.0.1", 0, agent.health, agent.registry).start()
            try:
                wait_until(lambda: agent.pace.factor > 2, 60, "polling to slow down")
                acked = agent.publisher.stats().acked
                for _ in range(3):  # /metrics answers (within its timeout) all along
                    assert _gauge(_scrape(status.port), "mes_edge_poll_slowdown_ratio") > 1
                wait_until(lambda: agent.publisher.stats().acked > acked, 30, "publishing")
                stats = agent.publisher.stats()
                assert stats.state.value == "connected" and stats.disconnects == 0  # keepalive
            finally:
                status.stop()
                runner.stop()
    warnings = [r.getMessage() for r in caplog.records if r.name == "edge_agent.pacing"]
    assert any("cannot keep the configured poll rate" in w for w in warnings), warnings


class _Clock:
    def __init__(self) -> None:
        self.wall = self.cpu = 0.0


def _controller() -> tuple[Pace, PaceController, _Clock]:
    clock = _Clock()
    pace = Pace()
    return pace, PaceController(pace, clock=lambda: clock.wall, cpu=lambda: clock.cpu), clock


def test_a_saturated_loop_slows_polling_until_it_has_room_and_recovers() -> None:
    pace, control, clock = _controller()
    clock.wall, clock.cpu = 1.0, 0.9  # the process busy 90 % of the window
    control.update()
    assert pace.factor == pytest.approx(0.9 / 0.6)
    clock.wall, clock.cpu = 2.0, 1.5  # 60 %: within the band, the factor holds
    control.update()
    assert pace.factor == pytest.approx(1.5)
    for second in range(3, 20):  # idle: back to the configured rate, a fifth at a time
        clock.wall = float(second)
        control.update()
    assert pace.factor == 1.0
    assert pace.interval(0.5) == 0.5
    clock.wall, clock.cpu = 19.5, 19.0  # a window shorter than WINDOW_S changes nothing
    control.update()
    assert pace.factor == 1.0
