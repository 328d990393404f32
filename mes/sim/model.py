"""The simulated machines: a deterministic, fixed-step model seeded per machine.

Each machine alternates between running and a stop. Stops are dealt from a shuffled deck that
holds every kind of stop (two micro-stops, a fault, starved, blocked, idle, setup and a planned
stop), so every machine shows every state within one round of the deck. While running it
completes cycles at its cycle time with jitter, counting a 16-bit cycle counter that starts a
few cycles short of 65535 (so a rollover comes early), a 32-bit parts counter and the runtime
in seconds; its spindle speed is 0 when stopped and its temperature drifts towards a running
or a resting level.

Time here is machine time in seconds ("sim time"). The model only ever advances by fixed steps
`dt`, and transitions happen at step boundaries, so the same seed, step and options give the
same sequence of events whatever the wall clock does, and every state lasts at least one step
(a state shorter than a step could never be seen by a client).
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from core.wire import DowntimeCategory, MachineState
from mes.sim.layout import (
    CATEGORY_OF_STATE,
    FAULT_REASONS,
    PACKML_OF_STATE,
    PLANNED_REASONS,
    STATUS_BITS,
    Reason,
)

MICRO_STOP_S = 5.0  # a stop shorter than this (sim seconds) is meant as a micro-stop
CYCLE_COUNTER_MODULUS = 1 << 16
PARTS_MODULUS = 1 << 32
RUNNING_S = (5.0, 25.0)


@dataclass(frozen=True, slots=True)
class _StopKind:
    states: tuple[MachineState, ...]  # one is drawn; reasons[i] goes with states[i] ...
    reasons: tuple[Reason, ...]  # ... or, for a single state, any of these
    duration_s: tuple[float, float]


_MICRO = _StopKind(
    (MachineState.STARVED, MachineState.BLOCKED, MachineState.FAULT),
    (Reason.STARVED, Reason.BLOCKED, Reason.JAM),
    (1.0, 4.0),
)
_DECK: tuple[_StopKind, ...] = (
    _MICRO,
    _MICRO,
    _StopKind((MachineState.FAULT,), FAULT_REASONS, (10.0, 45.0)),
    _StopKind((MachineState.STARVED,), (Reason.STARVED,), (8.0, 30.0)),
    _StopKind((MachineState.BLOCKED,), (Reason.BLOCKED,), (8.0, 30.0)),
    _StopKind((MachineState.IDLE,), (Reason.NO_ORDER,), (5.0, 20.0)),
    _StopKind((MachineState.SETUP,), (Reason.SETUP,), (20.0, 60.0)),
    _StopKind((MachineState.PLANNED_STOP,), PLANNED_REASONS, (30.0, 90.0)),
)


@dataclass(frozen=True, slots=True)
class StateChange:
    """Machine `machine` entered `state` at the end of the step."""

    machine: int
    state: MachineState
    packml: int
    reason: int
    category: DowntimeCategory | None  # None for running
    micro: bool  # a stop that lasts (in whole steps) less than MICRO_STOP_S


@dataclass(frozen=True, slots=True)
class Cycle:
    """Machine `machine` completed a cycle: the counter's raw value and the true totals."""

    machine: int
    counter: int
    total: int
    parts: int


Event = StateChange | Cycle


@dataclass(slots=True)
class Snapshot:
    """What a machine's PLC shows right now; the field names are layout.TagSpec.field."""

    state: MachineState
    packml: int
    reason: int
    cycle_counter: int
    cycles_total: int
    parts: int
    runtime_s: int
    status_word: int
    running: bool
    faulted: bool
    spindle_speed: float
    temperature: float
    extras: list[float] = field(default_factory=list)


class Machine:
    """One simulated machine; `step(dt)` advances it and returns what happened."""

    def __init__(self, index: int, seed: int, *, extra_tags: int = 0, min_dwell_s: float = 0.0):
        self.index = index
        # String seeds hash with SHA-512: stable across processes and Python runs.
        self._rng = random.Random(f"mes-sim:{seed}:{index}:events")
        self._noise = random.Random(f"mes-sim:{seed}:{index}:analog")
        self._min_dwell_s = min_dwell_s
        self._deck: list[_StopKind] = []
        self._base_cycle_s = 2.0 + 0.25 * (index % 8)
        self._parts_per_cycle = 1 + index % 3
        self._spindle_rpm = 2400.0 + 150.0 * (index % 6)
        self._hot_c = 62.0 + index % 5
        self._extra_periods = [20.0 + 3.7 * k for k in range(extra_tags)]
        self._extra_phases = [0.37 * index + 0.11 * k for k in range(extra_tags)]
        self.t = 0.0
        self._progress = 0.0
        self._cycle_s = self._draw_cycle_s()
        self._runtime = 0.0
        self._remaining = self._draw(RUNNING_S)
        self.snapshot = Snapshot(
            state=MachineState.RUNNING,
            packml=0,
            reason=0,
            cycle_counter=CYCLE_COUNTER_MODULUS - 4 - index % 8,
            cycles_total=0,
            parts=0,
            runtime_s=0,
            status_word=0,
            running=False,
            faulted=False,
            spindle_speed=0.0,
            temperature=25.0 + index % 4,
        )
        self._enter(MachineState.RUNNING, Reason.NONE)
        self._update_analogs(0.0)

    def initial_state(self) -> StateChange:
        """The state the machine starts in, as an event (the truth log's first line for it)."""
        s = self.snapshot
        return StateChange(self.index, s.state, s.packml, s.reason, None, False)

    def step(self, dt: float) -> list[Event]:
        """Advance by `dt` sim seconds: cycles completed, then a state change at the end."""
        events: list[Event] = []
        s = self.snapshot
        if s.state is MachineState.RUNNING:
            self._runtime += dt
            s.runtime_s = int(self._runtime) % PARTS_MODULUS
            self._progress += dt
            while self._progress >= self._cycle_s:
                self._progress -= self._cycle_s
                self._cycle_s = self._draw_cycle_s()
                s.cycle_counter = (s.cycle_counter + 1) % CYCLE_COUNTER_MODULUS
                s.cycles_total += 1
                s.parts = (s.parts + self._parts_per_cycle) % PARTS_MODULUS
                events.append(Cycle(self.index, s.cycle_counter, s.cycles_total, s.parts))
        self.t += dt
        self._remaining -= dt
        if self._remaining <= 0:
            events.append(self._transition(dt))
        self._update_analogs(dt)
        return events

    def _transition(self, dt: float) -> StateChange:
        if self.snapshot.state is not MachineState.RUNNING:
            self._remaining = self._draw(RUNNING_S)
            self._enter(MachineState.RUNNING, Reason.NONE)
            return self.initial_state()
        if not self._deck:
            self._deck = list(_DECK)
            self._rng.shuffle(self._deck)
        kind = self._deck.pop()
        if len(kind.states) > 1:
            i = self._rng.randrange(len(kind.states))
            state, reason = kind.states[i], kind.reasons[i]
        else:
            state, reason = kind.states[0], self._rng.choice(kind.reasons)
        self._remaining = self._draw(kind.duration_s)
        self._enter(state, reason)
        # The stop is seen for whole steps: a micro-stop by what clients see, not by the draw.
        shown_s = math.ceil(self._remaining / dt - 1e-9) * dt
        s = self.snapshot
        return StateChange(
            self.index, state, s.packml, s.reason, CATEGORY_OF_STATE[state], shown_s < MICRO_STOP_S
        )

    def _enter(self, state: MachineState, reason: Reason) -> None:
        s = self.snapshot
        s.state = state
        s.packml = int(PACKML_OF_STATE[state])
        s.reason = int(reason)
        s.status_word = 1 << STATUS_BITS.index(state)
        s.running = state is MachineState.RUNNING
        s.faulted = state is MachineState.FAULT

    def _draw(self, bounds: tuple[float, float]) -> float:
        return max(self._rng.uniform(*bounds), self._min_dwell_s)

    def _draw_cycle_s(self) -> float:
        return self._base_cycle_s * self._rng.uniform(0.9, 1.1)

    def _update_analogs(self, dt: float) -> None:
        s = self.snapshot
        if s.running:
            s.spindle_speed = self._spindle_rpm * (1.0 + self._noise.gauss(0.0, 0.003))
        else:
            s.spindle_speed = 0.0
        target = self._hot_c if s.running else 28.0
        drift = (target - s.temperature) * (1.0 - math.exp(-dt / 180.0))
        s.temperature += drift + self._noise.gauss(0.0, 0.02)
        if self._extra_periods:
            t = self.t
            s.extras = [
                50.0 + 40.0 * math.sin(2.0 * math.pi * t / p + ph)
                for p, ph in zip(self._extra_periods, self._extra_phases, strict=True)
            ]


class Plant:
    """All simulated machines, stepped together."""

    def __init__(
        self, machines: int, seed: int, *, extra_tags: int = 0, min_dwell_s: float = 0.0
    ) -> None:
        self.machines = [
            Machine(i, seed, extra_tags=extra_tags, min_dwell_s=min_dwell_s)
            for i in range(machines)
        ]
        self.t = 0.0

    @property
    def snapshots(self) -> list[Snapshot]:
        return [m.snapshot for m in self.machines]

    def initial_states(self) -> list[StateChange]:
        return [m.initial_state() for m in self.machines]

    def step(self, dt: float) -> list[Event]:
        """Advance every machine by `dt` sim seconds; their events, machine by machine."""
        self.t += dt
        events: list[Event] = []
        for m in self.machines:
            events.extend(m.step(dt))
        return events
