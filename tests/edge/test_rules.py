"""State rules: config validation with readable errors, and every rule kind applied to values."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from core.config_errors import describe
from core.wire import DowntimeCategory, MachineState, is_text
from edge_agent.derivation.derive import derive_reason, derive_state
from edge_agent.derivation.rules import PACKML_STATES, MachineRules, PackMLState, ReasonTag

S = MachineState

CODE = {"kind": "code", "tag": "st", "codes": {1: "running", "2": "idle", 3: "fault"}}


def rules(state: dict[str, Any] = CODE, **more: Any) -> MachineRules:
    return MachineRules.model_validate({"state": state, **more})


def problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ValidationError) as info:
        MachineRules.model_validate(data)
    return describe(info.value, file="agent.yaml").problems


# ------------------------------------------------------------------------------ configuration


def test_defaults_are_owned_by_the_model() -> None:
    r = rules()
    assert (r.micro_stop_below_s, r.heartbeat_s, r.offline_after_s) == (120.0, 60.0, 30.0)
    assert r.counters == [] and r.telemetry == [] and r.reasons.tags == []


def test_referenced_tags_covers_every_part() -> None:
    r = rules(
        {
            "kind": "bits",
            "bits": [{"tag": "run", "state": "running"}, {"tag": "flt", "state": "fault"}],
        },
        reasons={"tags": [{"tag": "fault_code"}, {"tag": "stop_code"}]},
        counters=[{"tag": "cyc", "kind": "cycles"}, {"tag": "rt", "kind": "runtime"}],
        telemetry=[{"tag": "temp"}],
    )
    assert r.referenced_tags() == {"run", "flt", "fault_code", "stop_code", "cyc", "rt", "temp"}
    assert r.state_tags() == {"run", "flt"}
    assert rules(
        {"kind": "preset", "preset": "packml", "tag": "StateCurrent"}
    ).referenced_tags() == {"StateCurrent"}


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ({"state": {"kind": "nope", "tag": "x"}}, ["state: Input tag 'nope' found using 'kind'"]),
        ({"state": {"tag": "x"}}, ["state: Unable to extract tag using discriminator 'kind'"]),
        ({**{"state": CODE}, "heartbeat_s": -1}, ["heartbeat_s: Input should be greater than 0"]),
        (
            {"state": CODE, "offline_after_s": 0},
            ["offline_after_s: Input should be greater than 0"],
        ),
        (
            {"state": CODE, "micro_stop_below_s": -5},
            ["micro_stop_below_s: Input should be greater"],
        ),
        ({"state": CODE, "heartbeat_s": 7}, ["heartbeat_s: must divide an hour exactly"]),
        ({"state": CODE, "offline_after_s": "soon"}, ["offline_after_s: Input should be a valid"]),
        ({"state": CODE, "colour": "red"}, ["colour: Extra inputs are not permitted"]),
        (
            {"state": {**CODE, "codes": {1: "runing"}}},
            ["codes[1]: Input should be 'running'"],
        ),
        ({"state": {**CODE, "codes": {"1": "idle", 1: "fault"}}}, ["code 1 appears twice"]),
        (
            {"state": {"kind": "threshold", "tag": "speed", "threshold": 5, "hysteresis": -1}},
            ["hysteresis: Input should be greater than or equal to 0"],
        ),
        ({"state": {"kind": "bits", "bits": []}}, ["bits: List should have at least 1"]),
        (
            {"state": {"kind": "preset", "preset": "isa88", "tag": "S"}},
            ["preset: Input should be 'packml'"],
        ),
        (
            {"state": CODE, "counters": [{"tag": "c", "kind": "cycles", "width": 24}]},
            ["counters[0].width: Input should be 16, 32 or 64"],
        ),
        (
            {"state": CODE, "counters": [{"tag": "c", "kind": "strokes"}]},
            ["counters[0].kind: Input should be 'cycles', 'parts' or 'runtime'"],
        ),
        (
            {
                "state": CODE,
                "counters": [{"tag": "a", "kind": "cycles"}, {"tag": "b", "kind": "cycles"}],
            },
            ["two counter entries publish the name 'cycles'"],
        ),
        (
            {"state": CODE, "telemetry": [{"tag": "t", "min_interval_s": 10, "max_interval_s": 5}]},
            ["telemetry[0]: max_interval_s is shorter than min_interval_s"],
        ),
        (
            {"state": CODE, "telemetry": [{"tag": "t", "deadband_pct": 150}]},
            ["telemetry[0].deadband_pct: Input should be less than or equal to 100"],
        ),
        (
            {"state": CODE, "reasons": {"state_categories": {"running": "planned"}}},
            ["reasons.state_categories: 'running' is not a stop state"],
        ),
    ],
    ids=[
        "state-kind-unknown",
        "state-kind-missing",
        "heartbeat-negative",
        "offline-after-zero",
        "micro-stop-negative",
        "heartbeat-not-dividing-an-hour",
        "offline-after-not-a-number",
        "unknown-key",
        "code-to-misspelt-state",
        "code-given-twice",
        "hysteresis-negative",
        "bits-empty",
        "preset-unknown",
        "counter-width-24",
        "counter-kind-unknown",
        "counter-name-twice",
        "telemetry-max-interval-below-min",
        "telemetry-deadband-over-100-pct",
        "running-given-a-category",
    ],
)
def test_bad_rules_name_the_key_path(data: dict[str, Any], expected: list[str]) -> None:
    # (Inside `state`, pydantic's location also names the union member, e.g. state.code.codes[1];
    # the expectations only pin the key itself.)
    got = problems(data)
    assert len(got) == len(expected), got
    for line, want in zip(got, expected, strict=True):
        assert want in line, got


# --------------------------------------------------------------------------- state derivation


@pytest.mark.parametrize(
    ("value", "state"),
    [(1, S.RUNNING), (2, S.IDLE), ("2", S.IDLE), (3.0, S.FAULT), (" 3 ", S.FAULT), (9, S.OFFLINE),
     ("x", S.OFFLINE), (None, None), (2.5, None), (float("nan"), None)],
    ids=[
        "1-running",
        "2-idle",
        "text-2-idle",
        "float-3-fault",
        "padded-text-3-fault",
        "unmapped-9-offline",
        "text-x-offline",
        "none-unknown",
        "fraction-unknown",
        "nan-unknown",
    ],
)  # fmt: skip
def test_code_rule(value: object, state: MachineState | None) -> None:
    assert derive_state(rules().state, {"st": value}, None) == state


def test_code_rule_default_for_unmapped_codes() -> None:
    r = rules({**CODE, "default": "fault"})
    assert derive_state(r.state, {"st": 99}, None) == S.FAULT
    assert derive_state(r.state, {}, None) is None  # missing tag: unknown, not the default


BITS = {
    "kind": "bits",
    "bits": [
        {"tag": "run", "state": "running"},
        {"tag": "idle", "state": "idle"},
        {"tag": "flt", "state": "fault"},
        {"tag": "setup", "state": "setup"},
    ],
}


@pytest.mark.parametrize(
    ("run", "idle", "flt", "setup", "state"),
    [
        (True, False, False, False, S.RUNNING),
        (True, False, True, False, S.FAULT),  # fault over running, although listed later
        (True, True, False, False, S.IDLE),
        (False, False, True, True, S.FAULT),
        (0, 1, 0, 1, S.SETUP),
        (False, False, False, False, S.IDLE),  # the rule's default
        ("true", "false", "off", "0", S.RUNNING),
        (True, None, False, False, None),  # one unreadable bit: unknown
        (True, "maybe", False, False, None),
    ],
)
def test_bits_rule_priorities(run: object, idle: object, flt: object, setup: object,
                              state: MachineState | None) -> None:  # fmt: skip
    values = {"run": run, "idle": idle, "flt": flt, "setup": setup}
    assert derive_state(rules(BITS).state, values, None) == state


def test_bits_explicit_priority_invert_and_default() -> None:
    r = rules(
        {
            "kind": "bits",
            "bits": [
                {"tag": "run", "state": "running", "priority": 100},
                {"tag": "flt", "state": "fault"},
                {"tag": "ready", "state": "starved", "invert": True},
            ],
            "default": "blocked",
        }
    )
    assert derive_state(r.state, {"run": 1, "flt": 1, "ready": 1}, None) == S.RUNNING
    assert derive_state(r.state, {"run": 0, "flt": 0, "ready": 0}, None) == S.STARVED
    assert derive_state(r.state, {"run": 0, "flt": 0, "ready": 1}, None) == S.BLOCKED


THRESHOLD = {"kind": "threshold", "tag": "speed", "threshold": 10, "hysteresis": 2}


@pytest.mark.parametrize(
    ("speed", "previous", "state"),
    [
        (12, None, S.RUNNING),
        (10, None, S.IDLE),  # strictly above
        (9, None, S.IDLE),
        (9, S.RUNNING, S.RUNNING),  # inside the hysteresis band: stays
        (8.5, S.RUNNING, S.RUNNING),
        (8, S.RUNNING, S.IDLE),  # at threshold - hysteresis: leaves
        (9, S.IDLE, S.IDLE),  # the band does not pull it up
        (11, S.IDLE, S.RUNNING),
        (True, None, S.IDLE),
        ("fast", None, None),
        (float("inf"), None, None),
    ],
)
def test_threshold_rule_hysteresis(
    speed: object, previous: MachineState | None, state: MachineState | None
) -> None:
    assert derive_state(rules(THRESHOLD).state, {"speed": speed}, previous) == state


def test_threshold_custom_states() -> None:
    r = rules(
        {"kind": "threshold", "tag": "p", "threshold": 0.5, "above": "fault", "below": "running"}
    )
    assert derive_state(r.state, {"p": 0.7}, None) == S.FAULT
    assert derive_state(r.state, {"p": 0.2}, None) == S.RUNNING


@pytest.mark.parametrize(
    ("number", "state"),
    [(1, S.FAULT), (2, S.PLANNED_STOP), (3, S.IDLE), (4, S.IDLE), (5, S.STARVED), (6, S.RUNNING),
     (7, S.PLANNED_STOP), (8, S.FAULT), (9, S.FAULT), (10, S.FAULT), (11, S.FAULT), (12, S.FAULT),
     (13, S.STARVED), (14, S.STARVED), (15, S.IDLE), (16, S.IDLE), (17, S.IDLE), (0, S.OFFLINE),
     (18, S.OFFLINE)],
)  # fmt: skip
def test_packml_preset(number: int, state: MachineState) -> None:
    r = rules({"kind": "preset", "preset": "packml", "tag": "StateCurrent"})
    assert derive_state(r.state, {"StateCurrent": number}, None) == state


def test_packml_covers_all_seventeen_states_and_takes_overrides() -> None:
    assert sorted(int(s) for s in PACKML_STATES) == list(range(1, 18))
    assert PackMLState.EXECUTE == 6 and PackMLState.HELD == 11 and PackMLState.COMPLETE == 17
    r = rules(
        {"kind": "preset", "preset": "packml", "tag": "S", "overrides": {"5": "blocked", 0: "idle"}}
    )
    assert derive_state(r.state, {"S": 5}, None) == S.BLOCKED
    assert derive_state(r.state, {"S": 0}, None) == S.IDLE
    assert derive_state(r.state, {"S": 6}, None) == S.RUNNING


# -------------------------------------------------------------------------------------- reasons

REASONS = {
    "tags": [
        {"tag": "fault_code", "codes": {12: "jam", "40": "e_stop"}, "states": ["fault"]},
        {"tag": "stop_code", "codes": {1: "changeover", 2: "break"}, "unmapped": "ignore"},
    ],
    "reason_categories": {"changeover": "planned", "break": "planned"},
    "state_categories": {"idle": "planned"},
}


@pytest.mark.parametrize(
    ("state", "values", "reason", "category"),
    [
        (S.FAULT, {"fault_code": 12, "stop_code": 1}, "jam", DowntimeCategory.UNPLANNED),
        (S.FAULT, {"fault_code": "40"}, "e_stop", DowntimeCategory.UNPLANNED),
        (S.FAULT, {"fault_code": 77}, "77", DowntimeCategory.UNPLANNED),  # unmapped: raw
        (S.FAULT, {"fault_code": 0, "stop_code": 1}, "changeover", DowntimeCategory.PLANNED),
        (S.SETUP, {"fault_code": 12, "stop_code": 0}, None, DowntimeCategory.PLANNED),
        (S.PLANNED_STOP, {"stop_code": 2}, "break", DowntimeCategory.PLANNED),
        (S.STARVED, {"stop_code": 9}, None, DowntimeCategory.UNPLANNED),  # unmapped: ignored
        (S.IDLE, {}, None, DowntimeCategory.PLANNED),  # state category overridden
        (S.RUNNING, {"fault_code": 12}, None, None),  # running has no reason
    ],
    ids=[
        "fault-code-first",
        "fault-code-as-text",
        "unmapped-fault-code-raw",
        "stop-code-without-fault-code",
        "fault-code-only-in-fault",
        "planned-stop-break",
        "unmapped-stop-code-ignored",
        "idle-category-overridden",
        "running-has-no-reason",
    ],
)
def test_reasons_and_categories(
    state: MachineState,
    values: dict[str, object],
    reason: str | None,
    category: DowntimeCategory | None,
) -> None:
    r = rules(reasons=REASONS)
    assert derive_reason(r.reasons, state, values) == reason
    if category is not None:
        assert r.reasons.category(state, reason) == category


@pytest.mark.parametrize(("raw", "reason"), [
    pytest.param("E\x00 17\n", "E_ 17_", id="controls-become-underscores"),
    pytest.param('  say "hi"  ', "say _hi_", id="quotes-and-spaces"),
    pytest.param("\x00\x07", None, id="nothing-printable-left"),
    pytest.param("x" * 100, "x" * 64, id="cut-to-the-wire-length"),
])
def test_raw_reason_text_from_a_plc_is_made_printable(raw: str, reason: str | None) -> None:
    rule = ReasonTag(tag="fault_text")
    assert rule.reason_for(raw) == reason
    assert reason is None or is_text(reason)
