"""`mes maintenance rule|corrective add|list|disable` and the rule validation's messages
(BAD_RULES: broken inputs and the field each message must name)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pydantic import ValidationError

from core.maintenance.rules import ConditionRuleSpec, CorrectiveRuleSpec
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants
from tests.maintenance.test_cli import _mes

TAG = {"name": "x", "machine": "m", "tag": "spindle_temp"}
STATE = {"name": "x", "machine": "m", "state": "fault"}
BAD_RULES: list[tuple[type, dict[str, Any], str]] = [
    (ConditionRuleSpec, {"name": "x", "tag": "t", "above": 1}, "either machine"),
    (ConditionRuleSpec, {"name": "x", "machine": "m"}, "either tag .* or state"),
    (ConditionRuleSpec, {**TAG, "state": "fault", "above": 1}, "either tag .* or state"),
    (ConditionRuleSpec, TAG, "give either above or below"),
    (ConditionRuleSpec, {**TAG, "above": 1, "below": 0}, "give either above or below"),
    (ConditionRuleSpec, {**TAG, "above": 60, "clear": 65}, r"clear \(65\) must be at or below"),
    (ConditionRuleSpec, {**TAG, "below": 5, "clear": 2}, r"clear \(2\) must be at or above"),
    (ConditionRuleSpec, {**TAG, "above": 60, "lasting": "a while"}, "lasting\n.*N seconds"),
    (ConditionRuleSpec, {**TAG, "above": 60, "count": 3}, "count belongs to a state rule"),
    (ConditionRuleSpec, STATE, "give count .* and within"),
    (ConditionRuleSpec, {**STATE, "count": 5, "within": "8 hours", "above": 3},
     "above belongs to a tag rule"),
    (ConditionRuleSpec, {**STATE, "count": 5, "within": "8 hours", "clear_count": 6},
     r"clear_count \(6\) must be at most count"),
    (ConditionRuleSpec, {**STATE, "state": "broken", "count": 1, "within": "1 hour"},
     "state\n.*'running', 'idle'"),
    (ConditionRuleSpec, {**STATE, "count": 0, "within": "1 hour"}, "count\n.*greater than 0"),
    (CorrectiveRuleSpec, {"name": "x"}, "give min_duration .*, reasons"),
    (CorrectiveRuleSpec, {"name": "x", "states": ["running"], "min_duration": "1 minute"},
     "states.0\n.*'idle'"),
    (CorrectiveRuleSpec, {"name": "x", "min_duration": "long"}, "min_duration\n"),
    (CorrectiveRuleSpec, {"name": "x", "reasons": []}, "reasons\n"),
]


@pytest.mark.parametrize(("cls", "spec", "message"), BAD_RULES)
def test_bad_rules_are_refused_naming_what_to_fix(cls: type, spec: dict[str, Any],
                                                  message: str) -> None:
    with pytest.raises(ValidationError, match=re.compile(message, re.S)):
        cls(**spec)


def test_rule_columns_keep_the_threshold_hysteresis_and_window() -> None:
    hot = ConditionRuleSpec(name="hot", kind="press", tag="t", above=60, clear=55,
                            lasting="5 minutes").columns()
    assert (hot["rule_kind"], hot["comparison"], hot["threshold"], hot["clear_threshold"],
            hot["for_seconds"]) == ("telemetry", "above", 60, 55, 300)
    # Without clear there is no band: the episode ends at the threshold itself.
    assert ConditionRuleSpec(name="cold", machine="m", tag="t", below=5).columns()[
        "clear_threshold"] == 5
    faults = ConditionRuleSpec(name="f", machine="m", state="fault", reason="F12", count=5,
                               within="8 hours").columns()
    assert (faults["rule_kind"], faults["reason_code"], faults["count_threshold"],
            faults["window_seconds"]) == ("state_count", "F12", 5, 8 * 3600)


def test_rules_add_list_and_disable_from_the_command_line(database: TestDatabase,
                                                          tenants: Tenants) -> None:
    tenant = ("--org", "org-a", "--plant", "a1")
    hot = _mes(database, "rule", "add", *tenant, "--name", "Spindle too hot", "--machine",
               "a1-press", "--tag", "spindle_temp", "--above", "60", "--lasting", "5 minutes",
               "--clear", "55", "--check", "coolant", "--assignee", "tech-a1@org-a.test")
    assert hot.returncode == 0, hot.stderr
    assert "(telemetry)" in hot.stdout
    faults = _mes(database, "rule", "add", *tenant, "--name", "F12 storm", "--kind", "press",
                  "--state", "fault", "--reason", "F12", "--count", "5", "--within", "8 hours")
    assert faults.returncode == 0 and "(state count)" in faults.stdout
    bad = _mes(database, "rule", "add", *tenant, "--name", "x", "--machine", "a1-press",
               "--tag", "t", "--above", "60", "--clear", "70")
    assert bad.returncode == 1 and "rule refused" in bad.stderr and "clear (70)" in bad.stderr
    unknown = _mes(database, "rule", "add", *tenant, "--name", "x", "--machine", "no-such",
                   "--tag", "t", "--above", "1")
    assert unknown.returncode == 1 and "no machine 'no-such'" in unknown.stderr
    corrective = _mes(database, "corrective", "add", "--org", "org-a", "--name", "Long stop",
                      "--state", "fault", "--state", "blocked", "--min-duration", "10 minutes")
    assert corrective.returncode == 0, corrective.stderr
    missing = _mes(database, "corrective", "add", "--org", "org-a", "--name", "x")
    assert missing.returncode == 1 and "give min_duration" in missing.stderr

    listed = _mes(database, "rule", "list", *tenant)
    assert "Spindle too hot" in listed.stdout and "spindle_temp above 60" in listed.stdout
    assert "F12 storm" in listed.stdout and "kind press" in listed.stdout
    listed_b = _mes(database, "rule", "list", "--org", "org-b")
    assert "Spindle too hot" not in listed_b.stdout  # another organization's rules stay out
    rule_id = re.search(r"Spindle too hot\n\s+([0-9a-f-]{36})", listed.stdout)
    assert rule_id
    off = _mes(database, "rule", "disable", rule_id[1], *tenant)
    assert off.returncode == 0, off.stderr
    assert "Spindle too hot (disabled)" in _mes(database, "rule", "list", *tenant).stdout
    elsewhere = _mes(database, "rule", "disable", rule_id[1], "--org", "org-b")
    assert elsewhere.returncode == 1 and "no rule" in elsewhere.stderr
    corrective_list = _mes(database, "corrective", "list", "--org", "org-a")
    assert "fault,blocked >= 600 s" in corrective_list.stdout
