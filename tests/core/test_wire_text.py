"""Codes on the wire (machine, tag, reason) are printable text: every class of hostile string is
refused by validation as `invalid`, naming the field, before a database could see it."""

from __future__ import annotations

import json
from typing import Any

import pytest

from core.wire import TEXT_RULE, Kind, WireError, decode, is_text

SENT = "2026-01-05T08:00:00Z"

HOSTILE = {
    "nul": "F\u00001",
    "bel-esc": "F\u0007\u001b[31m",
    "cr-lf": "F1\r\nF2",
    "tab": "F\t1",
    "del": "F\u007f",
    "c1-control": "F\u0085",
    "double-quote": 'say "F1"',
    "single-quote-sql": "F1'; DROP TABLE mes.machines; --",
    "backtick": "`F1`",
    "backslash": "F\\1",
    "zero-width-space": "F\u200b1",
    "bidi-override": "\u202eF1",
    "byte-order-mark": "\ufeffF1",
    "line-separator": "F1\u2028",
    "no-break-space": "F\u00a01",
    "leading-space": " F1",
    "trailing-space": "F1 ",
}
GOOD = ["F12", "emergency_stop", "Line 1.Temp", "Störung Öl", "温度", "a/b:c#1"]


def envelope(kind: Kind, record: dict[str, Any]) -> bytes:
    return json.dumps({"v": 1, "gateway": "gw-1", "seq": 1, "sent_at": SENT,
                       "records": [record]}).encode()


# Each code field of each record kind, as a record holding `value` in that field.
FIELDS = {
    "state.machine": (Kind.STATE, lambda v: {"machine": v, "ts": SENT, "state": "fault"}),
    "state.reason_code": (Kind.STATE, lambda v: {"machine": "m1", "ts": SENT, "state": "fault",
                                                 "reason_code": v}),
    "downtime.reason_code": (Kind.DOWNTIME, lambda v: {
        "event_id": "6f1c3a9e-2b1d-4c4e-9a61-0c5b8f0f2a11", "machine": "m1", "started_at": SENT,
        "state": "fault", "category": "unplanned", "reason_code": v}),
    "counter.tag": (Kind.COUNTER, lambda v: {"machine": "m1", "tag": v, "ts": SENT, "value": 1}),
    "telemetry.machine": (Kind.TELEMETRY, lambda v: {"machine": v, "tag": "t", "ts": SENT,
                                                     "value": 1.5}),
}


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_code_is_invalid_and_named(field: str, value: str) -> None:
    kind, record = FIELDS[field]
    with pytest.raises(WireError) as refused:
        decode(kind, envelope(kind, record(value)))
    name = field.split(".")[1]
    assert refused.value.reason == "invalid"
    assert refused.value.detail == f"{name} must be {TEXT_RULE} - at `$.records[0].{name}`"


@pytest.mark.parametrize("field", FIELDS)
@pytest.mark.parametrize("value", GOOD)
def test_printable_codes_pass(field: str, value: str) -> None:
    kind, record = FIELDS[field]
    decoded = decode(kind, envelope(kind, record(value)))
    assert value in {getattr(decoded.records[0], n, None)  # type: ignore[attr-defined]
                     for n in ("machine", "tag", "reason_code")}


def test_lone_surrogate_is_invalid_with_its_field_not_malformed() -> None:
    payload = envelope(Kind.STATE, {"machine": "m1", "ts": SENT, "state": "fault",
                                    "reason_code": "PLACEHOLDER"})
    payload = payload.replace(b"PLACEHOLDER", b"F\\ud800")
    with pytest.raises(WireError) as refused:
        decode(Kind.STATE, payload)
    assert refused.value.reason == "invalid"
    assert "lone surrogate" in refused.value.detail
    assert "$.records[0].reason_code" in refused.value.detail


def test_invalid_utf8_stays_malformed() -> None:
    payload = envelope(Kind.STATE, {"machine": "m1", "ts": SENT, "state": "fault"})
    with pytest.raises(WireError) as refused:
        decode(Kind.STATE, payload.replace(b"m1", b"m\xff"))
    assert refused.value.reason == "malformed"


def test_a_bad_topic_code_in_the_envelope_states_the_rule() -> None:
    payload = envelope(Kind.STATE, {"machine": "m1", "ts": SENT, "state": "fault"})
    with pytest.raises(WireError) as refused:
        decode(Kind.STATE, payload.replace(b'"gw-1"', b'"GW 1"'))
    assert refused.value.detail == ("must be a code matching ^[a-z0-9][a-z0-9-]{0,62}$ - at "
                                    "`$.gateway`")


@pytest.mark.parametrize("value", HOSTILE.values(), ids=HOSTILE.keys())
def test_is_text_refuses_each_hostile_class(value: str) -> None:
    assert not is_text(value)
