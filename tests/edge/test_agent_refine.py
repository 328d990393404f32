"""State refinement: a second code tag tells apart states a state code (PackML) cannot."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from core.wire import DowntimeRecord, MachineState, StateRecord
from edge_agent.derivation.derive import derive_state, expand
from edge_agent.derivation.rules import MachineRules
from edge_agent.derivation.state import MachineTracker

PACKML_REFINED = {
    "kind": "preset",
    "preset": "packml",
    "tag": "state",
    "refine": {
        "tag": "stop_reason",
        "states": ["starved", "fault"],
        "codes": {"201": "starved", 202: "blocked", 203: "setup"},
    },
}


def rules(state: dict[str, object]) -> MachineRules:
    return MachineRules.model_validate({"state": state})


@pytest.mark.parametrize(
    ("packml", "reason", "expected"),
    [
        (5, 201, MachineState.STARVED),  # Suspended
        (5, 202, MachineState.BLOCKED),
        (5, 0, MachineState.STARVED),  # no code: the preset's state
        (11, 203, MachineState.SETUP),  # Held
        (11, 103, MachineState.FAULT),  # a code of the table, but not one that refines
        (9, 202, MachineState.BLOCKED),  # Aborted gives fault, in `states`: refined too
        (6, 202, MachineState.RUNNING),  # Execute is not among `states`: never refined
        (2, 203, MachineState.PLANNED_STOP),
    ],
)
def test_packml_refined_by_the_stop_reason(
    packml: int, reason: int, expected: MachineState
) -> None:
    rule = expand(rules(PACKML_REFINED).state)
    assert derive_state(rule, {"state": packml, "stop_reason": reason}, None) is expected


def test_the_refining_tag_is_a_state_tag() -> None:
    r = rules(PACKML_REFINED)
    assert r.state_tags() == {"state", "stop_reason"}
    assert derive_state(expand(r.state), {"state": 5}, None) is None  # unreadable: no state


def test_code_rule_refined_without_state_filter() -> None:
    rule = rules({
        "kind": "code", "tag": "s", "codes": {1: "running", 2: "idle"},
        "refine": {"tag": "r", "codes": {7: "setup"}},
    }).state  # fmt: skip
    assert derive_state(rule, {"s": 2, "r": 7}, None) is MachineState.SETUP
    assert derive_state(rule, {"s": 2, "r": "7"}, None) is MachineState.SETUP
    assert derive_state(rule, {"s": 1, "r": 8}, None) is MachineState.RUNNING


def test_bad_refinement_names_the_key() -> None:
    with pytest.raises(ValidationError) as e:
        rules({**PACKML_REFINED, "refine": {"tag": "r", "codes": {1: "sleeping"}}})
    assert "refine" in str(e.value)


def test_tracker_tells_starved_from_blocked_by_the_reason() -> None:
    r = MachineRules.model_validate({
        "state": PACKML_REFINED,
        "reasons": {"tags": [{"tag": "stop_reason", "codes": {201: "starved", 202: "blocked"}}]},
    })  # fmt: skip
    tracker = MachineTracker("m1", r)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    out = []
    for i, (state, reason) in enumerate([(6, 0), (5, 202), (6, 0), (5, 201)]):
        out += tracker.observe(t0 + timedelta(seconds=i), {"state": state, "stop_reason": reason},
                               {})  # fmt: skip
    states = [(r.state, r.reason_code) for r in out if isinstance(r, StateRecord)]
    assert states == [
        (MachineState.RUNNING, None),
        (MachineState.BLOCKED, "blocked"),
        (MachineState.RUNNING, None),
        (MachineState.STARVED, "starved"),
    ]
    events = {r.event_id: r.state for r in out if isinstance(r, DowntimeRecord)}
    assert list(events.values()) == [MachineState.BLOCKED, MachineState.STARVED]
