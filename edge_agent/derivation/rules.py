"""A machine's state rules: how raw tag values become a canonical state, reasons and counters.

Pure configuration, no I/O. One typed model owns every default (`MachineRules` and its parts);
`edge_agent.derivation.state.MachineTracker` applies them. In a tag map they sit under a machine:

```yaml
state:                       # one of four kinds, chosen by `kind`
  kind: code                 # a state-code tag and a code -> state table
  tag: state_code
  codes: {1: running, 2: idle, 3: fault, 7: setup}
  default: offline           # what an unmapped code means (offline = unknown, no downtime)
# kind: bits                 # run/fault/... bits; the highest-priority true bit wins
#   bits: [{tag: run, state: running}, {tag: fault, state: fault}]
# kind: threshold            # a value against a threshold, with hysteresis
#   tag: speed, threshold: 5, hysteresis: 1, above: running, below: idle
# kind: preset               # ready-made state models, see PACKML_STATES
#   preset: packml, tag: StateCurrent
#   refine: {tag: stop_reason, states: [starved], codes: {202: blocked}}   # code and preset
reasons:
  tags: [{tag: fault_code, codes: {12: jam, 40: e_stop}, states: [fault]}]
  reason_categories: {changeover: planned}
micro_stop_below_s: 120
heartbeat_s: 60
offline_after_s: 30
counters: [{tag: cycles_reg, kind: cycles, width: 16}]
telemetry: [{tag: motor_temp, deadband_abs: 0.5, min_interval_s: 5, max_interval_s: 300}]
```

Code tables accept integer or string codes; TOML keys are always strings, so a key that
spells an integer (`"12"`) is the integer 12, and a PLC value 12, 12.0 or "12" finds it.
"""

from __future__ import annotations

import math
import re
from enum import IntEnum, StrEnum
from functools import cached_property
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from core.config_model import StrictModel, finite
from core.wire import (
    REASON_CODE_MAX,
    TAG_NAME_MAX,
    TEXT_RULE,
    DowntimeCategory,
    MachineState,
    as_text,
    is_text,
)


def wire_text(value: str) -> str:
    """A code the wire accepts (core.wire.is_text), refused here rather than by the ingest."""
    if not is_text(value):
        raise ValueError(f"{value!r} must be {TEXT_RULE} (the ingest refuses anything else)")
    return value


# Lengths as core.wire's TagName and ReasonCode.
TagRef = Annotated[str, Field(min_length=1, max_length=TAG_NAME_MAX), AfterValidator(wire_text)]
ReasonCodeStr = Annotated[str, Field(min_length=1, max_length=REASON_CODE_MAX),
                          AfterValidator(wire_text)]
Code = int | str
"""A PLC state, fault or stop code after `normalise_code`."""

_INT_RE = re.compile(r"^[+-]?\d+$")


def normalise_code(value: object) -> Code | None:
    """The lookup key of a raw code: integers stay integers (also when spelled `"12"` or
    `12.0`), other strings are stripped; None, NaN, fractional floats and other types give None.
    """
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    if isinstance(value, str):
        text = value.strip()
        return int(text) if _INT_RE.match(text) else text
    return None


def _normalise_keys(table: object) -> object:
    if not isinstance(table, dict):
        return table
    out: dict[object, object] = {}
    for key, value in table.items():
        code = normalise_code(key)
        if code is None or code == "":
            raise ValueError(f"code {key!r} is not an integer or a non-empty string")
        if code in out:
            raise ValueError(f"code {key!r} appears twice")
        out[code] = value
    return out


# ---------------------------------------------------------------------------------- state rules


class StateRefinement(StrictModel):
    """A second code tag that tells apart states the state code cannot (`refine:` under a
    `code` or `preset` rule), e.g. PackML shows starved and blocked both as Suspended:

    ```yaml
    refine: {tag: stop_reason, states: [starved], codes: {202: blocked}}
    ```

    When the state code gives one of `states` (unset: any state) and `tag` holds a code of
    `codes`, the state is that code's; otherwise the state code's stands. The tag is a state
    tag: a read is good only when it is readable too.
    """

    tag: TagRef
    codes: dict[Code, MachineState] = Field(min_length=1)
    states: frozenset[MachineState] | None = None

    _keys = field_validator("codes", mode="before")(_normalise_keys)

    def apply(self, state: MachineState, code: Code | None) -> MachineState:
        """`state` refined by the normalised code of `tag`."""
        if code is None or (self.states is not None and state not in self.states):
            return state
        return self.codes.get(code, state)


class CodeStateRule(StrictModel):
    """A state-code tag and a table code -> canonical state (optionally refined)."""

    kind: Literal["code"]
    tag: TagRef
    codes: dict[Code, MachineState] = Field(min_length=1)
    default: MachineState = MachineState.OFFLINE
    """An unmapped code is unknown time (`offline`), so a gap in the table never invents a
    downtime; set it to e.g. `fault` to count unknown codes as stops."""
    refine: StateRefinement | None = None

    _keys = field_validator("codes", mode="before")(_normalise_keys)

    def state_for(self, code: Code, refine_code: Code | None = None) -> MachineState:
        """The state a normalised code (and the refining tag's code) stands for."""
        state = self.codes.get(code, self.default)
        return state if self.refine is None else self.refine.apply(state, refine_code)


_DEFAULT_BIT_PRIORITY: dict[MachineState, int] = {
    MachineState.FAULT: 60,
    MachineState.SETUP: 50,
    MachineState.PLANNED_STOP: 40,
    MachineState.BLOCKED: 30,
    MachineState.STARVED: 20,
    MachineState.IDLE: 10,
    MachineState.RUNNING: 0,
    MachineState.OFFLINE: -10,
}


class StateBit(StrictModel):
    """One bit tag: when true (or false with `invert`) the machine is in `state`."""

    tag: TagRef
    state: MachineState
    priority: int | None = None
    """Higher wins among true bits. Unset: by state, fault > setup > planned_stop > blocked >
    starved > idle > running, so a fault bit beats a run bit that stays on. Ties: list order."""
    invert: bool = False

    @property
    def effective_priority(self) -> int:
        """`priority`, or the state's default rank."""
        return self.priority if self.priority is not None else _DEFAULT_BIT_PRIORITY[self.state]


class BitsStateRule(StrictModel):
    """Run/fault/idle/... bits; the highest-priority true bit gives the state."""

    kind: Literal["bits"]
    bits: list[StateBit] = Field(min_length=1)
    default: MachineState = MachineState.IDLE
    """The state when no bit is true."""

    @field_validator("bits")
    @classmethod
    def _unique_tags(cls, bits: list[StateBit]) -> list[StateBit]:
        seen = set()
        for bit in bits:
            if (bit.tag, bit.invert) in seen:
                raise ValueError(f"bit tag {bit.tag!r} is listed twice")
            seen.add((bit.tag, bit.invert))
        return bits

    @cached_property
    def ranked(self) -> list[StateBit]:
        """Bits by falling priority, list order among equals."""
        return sorted(self.bits, key=lambda b: -b.effective_priority)


class ThresholdStateRule(StrictModel):
    """A value tag against a threshold: `above` when value > threshold, else `below`.

    With hysteresis h, a machine in `above` stays there until value <= threshold - h, so a
    speed hovering at the threshold does not flap.
    """

    kind: Literal["threshold"]
    tag: TagRef
    threshold: float
    hysteresis: float = Field(default=0.0, ge=0)
    above: MachineState = MachineState.RUNNING
    below: MachineState = MachineState.IDLE

    _finite = field_validator("threshold", "hysteresis")(finite)


class PackMLState(IntEnum):
    """PackML `StateCurrent` numbers (ISA-TR88.00.02 / OMAC PackTags)."""

    CLEARING = 1
    STOPPED = 2
    STARTING = 3
    IDLE = 4
    SUSPENDED = 5
    EXECUTE = 6
    STOPPING = 7
    ABORTING = 8
    ABORTED = 9
    HOLDING = 10
    HELD = 11
    UNHOLDING = 12
    SUSPENDING = 13
    UNSUSPENDING = 14
    RESETTING = 15
    COMPLETING = 16
    COMPLETE = 17


PACKML_STATES: dict[PackMLState, MachineState] = {
    # Producing.
    PackMLState.EXECUTE: MachineState.RUNNING,
    # Ready or getting ready, nothing to do: the machine waits for a start command.
    PackMLState.IDLE: MachineState.IDLE,
    PackMLState.STARTING: MachineState.IDLE,
    PackMLState.RESETTING: MachineState.IDLE,
    PackMLState.COMPLETING: MachineState.IDLE,
    PackMLState.COMPLETE: MachineState.IDLE,
    # Stopped by command (operator or line control): a planned stop.
    PackMLState.STOPPED: MachineState.PLANNED_STOP,
    PackMLState.STOPPING: MachineState.PLANNED_STOP,
    # Abort follows an emergency stop or a machine fault; Clearing is recovering from it.
    PackMLState.ABORTING: MachineState.FAULT,
    PackMLState.ABORTED: MachineState.FAULT,
    PackMLState.CLEARING: MachineState.FAULT,
    # Suspended: the standard's state for EXTERNAL conditions (upstream starved, downstream
    # blocked). PackML does not say which; starved is the more common, override per machine.
    PackMLState.SUSPENDED: MachineState.STARVED,
    PackMLState.SUSPENDING: MachineState.STARVED,
    PackMLState.UNSUSPENDING: MachineState.STARVED,
    # Held: INTERNAL conditions stop production (a jam, a material refill, an operator hold):
    # an unplanned stop of the machine itself, the closest canonical state is fault.
    PackMLState.HOLDING: MachineState.FAULT,
    PackMLState.HELD: MachineState.FAULT,
    PackMLState.UNHOLDING: MachineState.FAULT,
}
"""PackML state -> canonical state; anything else (0 Undefined, vendor codes) is `offline`
(unknown) unless `overrides` maps it."""


class Preset(StrEnum):
    """Ready-made state models."""

    PACKML = "packml"


class PresetStateRule(StrictModel):
    """A ready-made state model read from one state tag, e.g. PackML `StateCurrent`."""

    kind: Literal["preset"]
    preset: Preset
    tag: TagRef
    overrides: dict[Code, MachineState] = Field(default_factory=dict)
    """Replace or add entries of the preset's table (e.g. `{5: blocked}`)."""
    default: MachineState = MachineState.OFFLINE
    refine: StateRefinement | None = None
    """Tell apart what the preset cannot, by a second tag (see StateRefinement)."""

    _keys = field_validator("overrides", mode="before")(_normalise_keys)

    def as_code_rule(self) -> CodeStateRule:
        """The preset expanded into the plain code table it stands for."""
        table: dict[Code, MachineState] = {int(k): v for k, v in PACKML_STATES.items()}
        table.update(self.overrides)
        return CodeStateRule(
            kind="code", tag=self.tag, codes=table, default=self.default, refine=self.refine
        )


StateRule = Annotated[
    CodeStateRule | BitsStateRule | ThresholdStateRule | PresetStateRule,
    Field(discriminator="kind"),
]


# -------------------------------------------------------------------------------------- reasons

_PLANNED_BY_DEFAULT = frozenset({MachineState.PLANNED_STOP, MachineState.SETUP})


class ReasonTag(StrictModel):
    """A fault or stop code tag and its table code -> reason code.

    Zero and the empty string mean "no code". A code not in the table gives its own text as the
    reason code (`"42"`) unless `unmapped` is `ignore`.
    """

    tag: TagRef
    codes: dict[Code, ReasonCodeStr] = Field(default_factory=dict)
    states: frozenset[MachineState] | None = None
    """Read this tag only in these states (e.g. a fault code in `fault`); unset: every stop."""
    unmapped: Literal["raw", "ignore"] = "raw"

    _keys = field_validator("codes", mode="before")(_normalise_keys)

    def reason_for(self, code: Code | None) -> str | None:
        """The reason code for a normalised code, or None when there is none."""
        if code is None or code in (0, ""):
            return None
        if code in self.codes:
            return self.codes[code]
        # Raw PLC text is made printable (the wire's rule) rather than dropped: an operator
        # still sees which code it was, and the ingest does not refuse the message.
        return as_text(str(code), REASON_CODE_MAX) if self.unmapped == "raw" else None


class ReasonRules(StrictModel):
    """Where a stop's reason code comes from and whether it was planned."""

    tags: list[ReasonTag] = Field(default_factory=list)
    """Tried in order; the first that applies to the state and holds a code wins."""
    state_categories: dict[MachineState, DowntimeCategory] = Field(default_factory=dict)
    """Category per stop state; unset states: planned_stop and setup are planned, others not."""
    reason_categories: dict[ReasonCodeStr, DowntimeCategory] = Field(default_factory=dict)
    """Category per reason code, over the state's (e.g. `changeover: planned` in a fault)."""

    @field_validator("state_categories")
    @classmethod
    def _stop_states_only(
        cls, table: dict[MachineState, DowntimeCategory]
    ) -> dict[MachineState, DowntimeCategory]:
        for state in table:
            if not state.is_stop:
                raise ValueError(f"{state.value!r} is not a stop state and has no category")
        return table

    def category(self, state: MachineState, reason: str | None) -> DowntimeCategory:
        """The category of a stop in `state` with `reason`."""
        if reason is not None and reason in self.reason_categories:
            return self.reason_categories[reason]
        if state in self.state_categories:
            return self.state_categories[state]
        if state in _PLANNED_BY_DEFAULT:
            return DowntimeCategory.PLANNED
        return DowntimeCategory.UNPLANNED


# ---------------------------------------------------------------------- counters and telemetry


class CounterKind(StrEnum):
    CYCLES = "cycles"
    PARTS = "parts"
    RUNTIME = "runtime"


class CounterSpec(StrictModel):
    """A PLC counter register published as a running total with its rollover unwrapped.

    Published under `name` (default: the kind, so the centre finds `cycles`, `parts` and
    `runtime` by name); value = unwrapped raw count x `scale` (e.g. 1/3600 for a runtime
    register in seconds published in hours).
    """

    tag: TagRef
    kind: CounterKind
    name: TagRef | None = None
    width: Literal[16, 32, 64] = 32
    scale: float = Field(default=1.0, gt=0)
    min_interval_s: float = Field(default=0.0, ge=0)
    """At most one record per this many seconds (the latest total); 0: one per change."""

    _finite = field_validator("scale", "min_interval_s")(finite)

    @property
    def published_name(self) -> str:
        """The tag name on the wire."""
        return self.name or self.kind.value


class TelemetrySpec(StrictModel):
    """An analog tag, published when it moved past its deadband, at most every min_interval_s.

    With both deadbands a change must exceed both (the absolute one silences noise near zero,
    the percentage one noise on large values). `max_interval_s` republishes an unchanged value
    so the centre sees it is still current.
    """

    tag: TagRef
    name: TagRef | None = None
    deadband_abs: float = Field(default=0.0, ge=0)
    deadband_pct: float = Field(default=0.0, ge=0, le=100)
    min_interval_s: float = Field(default=0.0, ge=0)
    max_interval_s: float | None = Field(default=None, gt=0)

    _finite = field_validator("deadband_abs", "min_interval_s", "max_interval_s")(finite)

    @model_validator(mode="after")
    def _intervals(self) -> TelemetrySpec:
        if self.max_interval_s is not None and self.max_interval_s < self.min_interval_s:
            raise ValueError("max_interval_s is shorter than min_interval_s")
        return self

    @property
    def published_name(self) -> str:
        """The tag name on the wire."""
        return self.name or self.tag


# ------------------------------------------------------------------------------------ the rules

HOUR_US = 3_600_000_000


class MachineRules(StrictModel):
    """Everything the tracker needs to turn one machine's tag values into records."""

    state: StateRule
    reasons: ReasonRules = Field(default_factory=ReasonRules)
    micro_stop_below_s: float = Field(default=120.0, ge=0)
    """A stop shorter than this is flagged `micro_stop`."""
    heartbeat_s: float = Field(default=60.0, gt=0, le=3600)
    """A state record every this many seconds on a wall-clock grid; must divide an hour."""
    offline_after_s: float = Field(default=30.0, gt=0)
    """No good read of the state tags for this long -> `offline`."""
    counters: list[CounterSpec] = Field(default_factory=list)
    telemetry: list[TelemetrySpec] = Field(default_factory=list)

    @field_validator("heartbeat_s")
    @classmethod
    def _divides_hour(cls, value: float) -> float:
        step = round(value * 1_000_000)
        if step <= 0 or HOUR_US % step or abs(step - value * 1_000_000) > 1e-3:
            raise ValueError("must divide an hour exactly (e.g. 10, 15, 30, 60, 300)")
        return value

    _finite = field_validator("micro_stop_below_s", "offline_after_s")(finite)

    @model_validator(mode="after")
    def _unique_names(self) -> MachineRules:
        names = [c.published_name for c in self.counters]
        for kind, dup in (
            ("counter", names),
            ("telemetry", [t.published_name for t in self.telemetry]),
        ):
            seen: set[str] = set()
            for name in dup:
                if name in seen:
                    raise ValueError(f"two {kind} entries publish the name {name!r}")
                seen.add(name)
        return self

    def state_tags(self) -> set[str]:
        """The tags the state derivation reads; a read is good when all of them are."""
        rule = self.state
        if isinstance(rule, BitsStateRule):
            return {b.tag for b in rule.bits}
        if isinstance(rule, CodeStateRule | PresetStateRule) and rule.refine is not None:
            return {rule.tag, rule.refine.tag}
        return {rule.tag}

    def referenced_tags(self) -> set[str]:
        """Every tag name these rules read (for checking them against the tag map)."""
        return (
            self.state_tags()
            | {r.tag for r in self.reasons.tags}
            | {c.tag for c in self.counters}
            | {t.tag for t in self.telemetry}
        )
