"""The shipped tag map for the simulator: generated from the layout, valid, and it recovers the
model's states and reasons through the agent's own rules."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.derivation.derive import derive_reason, derive_state
from edge_agent.tagmap import AgentConfig, load_agent_config
from mes.sim.config import SimConfig
from mes.sim.layout import CATEGORY_OF_STATE, reason_code
from mes.sim.model import Plant
from mes.sim.tagmap import build, render, tag_name

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "edge" / "sim-agent.yaml"


def load(text: str, tmp_path: Path) -> AgentConfig:
    path = tmp_path / "map.yaml"
    path.write_text(text)
    return load_agent_config(path)


def test_shipped_map_is_what_the_generator_writes_and_loads() -> None:
    assert SHIPPED.read_text() == render(SimConfig(machines=4))
    config = load_agent_config(SHIPPED)
    assert {m.code: m.device for m in config.machines} == {
        "m001": "sim-modbus", "m002": "sim-modbus", "m003": "sim-opcua", "m004": "sim-opcua"
    }


def test_bench_shaped_map_validates() -> None:
    config = SimConfig(machines=100, extra_tags=90, assignment="split", modbus_port=1502,
                       opcua_port=14840)
    # Validated from data: PyYAML without libyaml takes seconds to parse 10,000 tags.
    loaded = AgentConfig.model_validate(build(config))
    assert sum(len(m.tags) for m in loaded.machines) == 100 * 100
    assert [d.name for d in loaded.devices] == ["sim-modbus", "sim-opcua"]
    assert sum(m.device == "sim-modbus" for m in loaded.machines) == 50


@pytest.mark.parametrize("state_rule", ["status", "packml"])
def test_map_rules_recover_the_model_states_and_reasons(tmp_path: Path, state_rule: str) -> None:
    config = load(render(SimConfig(machines=2), state_rule=state_rule), tmp_path)  # type: ignore[arg-type]
    plant = Plant(2, seed=4)
    seen = set()
    for _ in range(1500):
        plant.step(1.0)
        for machine, s in zip(config.machines, plant.snapshots, strict=True):
            values = {tag_name(f): getattr(s, f) for f in ("packml", "reason", "status_word")}
            state = derive_state(machine.rules.state, values, None)
            assert state is s.state  # packml: Suspended and Held refined by the stop reason
            if s.state.is_stop:
                assert derive_reason(machine.rules.reasons, s.state, values) == reason_code(
                    s.reason
                )
                category = machine.rules.reasons.category(s.state, reason_code(s.reason))
                assert category is CATEGORY_OF_STATE[s.state]
            seen.add(s.state)
    assert len(seen) == 7
