"""The ground-truth log of a real run: complete, deterministic, and what the model did."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from core.wire import MachineState
from mes.sim.config import SimConfig
from mes.sim.handle import SimulatorHandle
from mes.sim.layout import machine_code
from mes.sim.model import Cycle, Plant, StateChange
from mes.sim.truth import Truth
from tests.support.wait import wait_until

STOP_STATES = {s.value for s in MachineState} - {"running", "offline"}
# Fast enough that one round of the stop deck (about 300 machine seconds) takes a few seconds.
FAST = {"machines": 3, "seed": 7, "speed": 100.0, "tick_s": 0.02, "protocols": ()}


def run_until(config: SimConfig, sim_t: float) -> Truth:
    """Run until the model reached `sim_t` machine seconds, however slow this machine is."""
    assert config.truth is not None
    with SimulatorHandle(config) as sim:
        wait_until(lambda: sim.command("status")["sim_t"] >= sim_t, 60,
                   f"the simulator to reach {sim_t} machine seconds", interval=0.1)
    return Truth.load(config.truth)


def test_short_fast_run_logs_every_state_micro_stops_and_a_rollover(tmp_path: Path) -> None:
    # One round of the stop deck, which holds every stop, lasts at most 483 machine seconds.
    truth = run_until(SimConfig(**FAST, truth=tmp_path / "t.jsonl"), 490.0)
    assert truth.machines() == ["m001", "m002", "m003"]
    for code in truth.machines():
        states = truth.states(code)
        assert states[0]["state"] == "running" and states[0]["sim_t"] == 0
        assert {r["state"] for r in states} >= STOP_STATES
        assert any(r["micro"] for r in states)
        cycles = truth.cycles(code)
        assert [c["total"] for c in cycles] == list(range(1, len(cycles) + 1))
        assert any(c["counter"] == 0 for c in cycles), "cycle counter rolled over"
    stamps = [datetime.fromisoformat(r["ts"]) for r in truth]
    assert all(ts.utcoffset() == UTC.utcoffset(None) for ts in stamps)
    assert stamps == sorted(stamps)


def test_truth_is_the_model_whatever_the_wall_clock(tmp_path: Path) -> None:
    config = SimConfig(**FAST, truth=tmp_path / "t.jsonl")
    truth = run_until(config, 100.0)
    plant = Plant(config.machines, config.seed)
    want: list[tuple[object, ...]] = [
        (machine_code(e.machine), 0, "state", e.state.value, e.reason)
        for e in plant.initial_states()
    ]
    last_t = max(r["sim_t"] for r in truth.records if "sim_t" in r)
    while plant.t < last_t - 1e-9:
        events = plant.step(config.dt)
        t = round(plant.t, 6)
        for e in events:
            if isinstance(e, StateChange):
                want.append((machine_code(e.machine), t, "state", e.state.value, e.reason))
            elif isinstance(e, Cycle):
                want.append((machine_code(e.machine), t, "cycle", e.counter, e.total))
    got = [
        (r["machine"], r["sim_t"], r["type"], r["state"], r["reason"]) if r["type"] == "state"
        else (r["machine"], r["sim_t"], r["type"], r["counter"], r["total"])
        for r in truth if r["type"] in ("state", "cycle")
    ]
    assert len(got) > 20
    assert got == want


def test_mes_sim_command_prints_a_ready_line_and_stops_on_end_of_input(tmp_path: Path) -> None:
    truth = tmp_path / "t.jsonl"
    out = subprocess.run(
        [sys.executable, "-m", "mes.cli", "sim", "--machines", "2", "--seed", "7",
         "--speed", "10", "--protocols", "modbus", "--truth", str(truth), "--control"],
        input="status\n", capture_output=True, text=True, timeout=60, check=True,
    )
    ready, status = out.stdout.splitlines()[:2]
    assert '"event": "ready"' in ready and '"modbus_port": ' in ready
    assert '"opcua_port": null' in ready
    assert '"cmd": "status"' in status
    assert [r["type"] for r in Truth.load(truth).records][-1] == "stop"
