"""The machine model on its own: deterministic, every state, micro-stops, counter rollover."""

from __future__ import annotations

from itertools import pairwise

from core.wire import MachineState
from mes.sim.layout import CATEGORY_OF_STATE, PACKML_OF_STATE, STATE_OF_REASON, Reason
from mes.sim.model import CYCLE_COUNTER_MODULUS, MICRO_STOP_S, Cycle, Plant, StateChange

STOP_STATES = set(MachineState) - {MachineState.RUNNING, MachineState.OFFLINE}


def run(seed: int, steps: int, dt: float = 1.0, **kw: float) -> list[object]:
    plant = Plant(4, seed, **kw)  # type: ignore[arg-type]
    events: list[object] = list(plant.initial_states())
    for _ in range(steps):
        events.extend(plant.step(dt))
    return events


def test_same_seed_same_events_other_seed_other_events() -> None:
    assert run(7, 2000) == run(7, 2000)
    assert run(7, 2000) != run(8, 2000)


def test_every_state_micro_stops_and_rollover_within_one_deck_round() -> None:
    events = run(3, 600)
    for m in range(4):
        states = [e for e in events if isinstance(e, StateChange) and e.machine == m]
        assert {e.state for e in states} >= STOP_STATES | {MachineState.RUNNING}
        assert any(e.micro for e in states)
        # Running and stops alternate, so every stop is a downtime of its own.
        assert all(
            (a.state is MachineState.RUNNING) != (b.state is MachineState.RUNNING)
            for a, b in pairwise(states)
        )
        cycles = [e for e in events if isinstance(e, Cycle) and e.machine == m]
        assert [c.total for c in cycles] == list(range(1, len(cycles) + 1))
        assert any(c.counter == 0 for c in cycles), "the 16-bit cycle counter rolled over"
        first = cycles[0].counter - 1
        assert all(c.counter == (first + c.total) % CYCLE_COUNTER_MODULUS for c in cycles)


def test_state_codes_reasons_and_categories_follow_the_layout() -> None:
    for e in run(5, 800):
        if not isinstance(e, StateChange):
            continue
        assert e.packml == PACKML_OF_STATE[e.state]
        if e.state is MachineState.RUNNING:
            assert (e.reason, e.category) == (Reason.NONE, None)
            continue
        assert e.category == CATEGORY_OF_STATE[e.state]
        reason = Reason(e.reason)
        # Where PackML shares a number, the reason names the canonical state.
        assert STATE_OF_REASON.get(reason, e.state) == e.state
        if e.state is MachineState.FAULT:
            assert 100 <= e.reason < 200
        else:
            assert 200 <= e.reason < 300


def test_snapshot_values_follow_the_state() -> None:
    plant = Plant(3, 11, extra_tags=5)
    for _ in range(300):
        plant.step(1.0)
        for s in plant.snapshots:
            assert s.running == (s.state is MachineState.RUNNING)
            assert s.faulted == (s.state is MachineState.FAULT)
            assert (s.spindle_speed > 1000) == s.running
            assert s.spindle_speed >= 0
            assert 15 < s.temperature < 80
            assert len(s.extras) == 5


def test_min_dwell_makes_every_state_last_long_enough() -> None:
    plant = Plant(4, 2, min_dwell_s=6.0)
    entered: dict[int, int] = {}
    for step in range(2000):
        for e in plant.step(0.5):
            if isinstance(e, StateChange):
                assert e.machine not in entered or step - entered[e.machine] >= 12
                assert not e.micro
                entered[e.machine] = step


def test_micro_flag_is_what_clients_see_in_whole_steps() -> None:
    plant = Plant(4, 9)
    dt = 1.5
    changes: list[tuple[int, StateChange]] = []
    for step in range(3000):
        changes += [(step, e) for e in plant.step(dt) if isinstance(e, StateChange)]
    for m in range(4):
        mine = [(step, e) for step, e in changes if e.machine == m]
        for (start, stop), (end, _) in pairwise(mine):
            assert stop.micro == ((end - start) * dt < MICRO_STOP_S)
    assert any(e.micro for _, e in changes)
