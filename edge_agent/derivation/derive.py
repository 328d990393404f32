"""Apply a machine's state and reason rules to one set of tag values. Pure functions, no memory:
what a rule needs to remember (the hysteresis side) arrives as `previous`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from core.wire import MachineState
from edge_agent.derivation.rules import (
    BitsStateRule,
    CodeStateRule,
    PresetStateRule,
    ReasonRules,
    StateRule,
    ThresholdStateRule,
    normalise_code,
)

_TRUE = frozenset({"1", "true", "on", "yes"})
_FALSE = frozenset({"0", "false", "off", "no", ""})


def truthy(value: object) -> bool | None:
    """A bit's value: numbers by non-zero, a few spellings of strings; None when unreadable."""
    if isinstance(value, bool | int):
        return bool(value)
    if isinstance(value, float):
        return None if math.isnan(value) else value != 0
    if isinstance(value, str):
        text = value.strip().lower()
        return True if text in _TRUE else False if text in _FALSE else None
    return None


def number(value: object) -> float | None:
    """A finite number from a bool, int or float; None otherwise."""
    if type(value) is float:  # the common case (analog tags), checked first: the hot path
        return value if math.isfinite(value) else None
    if isinstance(value, bool | int | float):
        result = float(value)
        return result if math.isfinite(result) else None
    return None


def expand(rule: StateRule) -> StateRule:
    """Presets turned into the plain rule they stand for, once, before the first read."""
    return rule.as_code_rule() if isinstance(rule, PresetStateRule) else rule


def derive_state(
    rule: StateRule, values: Mapping[str, object], previous: MachineState | None
) -> MachineState | None:
    """The state the values show, or None when a tag the rule needs is missing or unreadable."""
    if isinstance(rule, PresetStateRule):
        rule = rule.as_code_rule()
    if isinstance(rule, CodeStateRule):
        code = normalise_code(values.get(rule.tag))
        if code is None:
            return None
        if rule.refine is None:
            return rule.state_for(code)
        refine_code = normalise_code(values.get(rule.refine.tag))
        return None if refine_code is None else rule.state_for(code, refine_code)
    if isinstance(rule, BitsStateRule):
        winner: MachineState | None = None
        for bit in rule.ranked:  # every bit is checked: one unreadable bit makes the read bad
            on = truthy(values.get(bit.tag))
            if on is None:
                return None
            if winner is None and on != bit.invert:
                winner = bit.state
        return winner if winner is not None else rule.default
    if isinstance(rule, ThresholdStateRule):
        value = number(values.get(rule.tag))
        if value is None:
            return None
        if value > rule.threshold:
            return rule.above
        if previous == rule.above and value > rule.threshold - rule.hysteresis:
            return rule.above
        return rule.below
    raise TypeError(f"unknown state rule {rule!r}")


def derive_reason(
    reasons: ReasonRules, state: MachineState, values: Mapping[str, object]
) -> str | None:
    """The reason code of a stop in `state`: the first reason tag that applies and holds one."""
    if not state.is_stop:
        return None
    for source in reasons.tags:
        if source.states is not None and state not in source.states:
            continue
        reason = source.reason_for(normalise_code(values.get(source.tag)))
        if reason is not None:
            return reason
    return None
