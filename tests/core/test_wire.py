"""The wire contract in core/wire.py: topics, envelopes, records, and the dead-letter reason
each way of breaking them maps to (`bad_topic`, `bad_kind`, `malformed`, `invalid`)."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from core.wire import (
    ENVELOPES,
    CounterEnvelope,
    CounterRecord,
    DowntimeCategory,
    DowntimeEnvelope,
    DowntimeRecord,
    Envelope,
    GatewayStatus,
    Kind,
    MachineState,
    StateEnvelope,
    StateRecord,
    TelemetryEnvelope,
    TelemetryRecord,
    Topic,
    WireError,
    decode,
    decode_status,
    encode,
)

T0 = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)
EVENT_ID = uuid.UUID("0b7e3c52-8d0e-4a43-9f3e-5d2f0c1a9b11")


def envelope_json(records: str = "", **fields: Any) -> bytes:
    """A state envelope as JSON text, `records` spliced in raw, `fields` overriding the rest."""
    head = {"v": 1, "gateway": "gw-1", "seq": 7, "sent_at": T0.isoformat(), **fields}
    body = msgspec.json.encode(head).decode()[:-1]
    return f'{body},"records":[{records}]}}'.encode()


def state_json(**fields: Any) -> str:
    return msgspec.json.encode({"machine": "press-1", "ts": T0.isoformat(), "state": "running",
                                **fields}).decode()  # fmt: skip


def downtime_json(**fields: Any) -> str:
    return msgspec.json.encode({"event_id": str(EVENT_ID), "machine": "press-1",
                                "started_at": T0.isoformat(), "state": "fault",
                                "category": "unplanned", **fields}).decode()  # fmt: skip


def value_json(**fields: Any) -> str:
    return msgspec.json.encode({"machine": "press-1", "tag": "cycles", "ts": T0.isoformat(),
                                "value": 42.0, **fields}).decode()  # fmt: skip


def reason_of(action: Callable[[], object]) -> WireError:
    with pytest.raises(WireError) as caught:
        action()
    return caught.value


# ---------------------------------------------------------------------------------- topics


@pytest.mark.parametrize("kind", list(Kind), ids=str)
def test_topic_of_every_kind_parses_and_prints_back(kind: Kind) -> None:
    text = f"mes/v1/acme/plant-a/gw-1/{kind.value}"
    topic = Topic.parse(text)
    assert topic == Topic("acme", "plant-a", "gw-1", kind)
    assert str(topic) == text


def test_codes_of_63_characters_are_the_longest_allowed() -> None:
    code = "a" * 63
    assert Topic.parse(f"mes/v1/{code}/{code}/{code}/state").gateway == code


# (id, topic, words the error must name)
BAD_TOPICS = [
    ("too-shallow", "mes/v1/acme/plant-a/state", "is not mes/v1/org/plant/gw/kind"),
    ("too-deep", "mes/v1/acme/plant-a/gw-1/state/extra", "is not mes/v1/org/plant/gw/kind"),
    ("leading-slash", "/mes/v1/acme/plant-a/gw-1/state", "is not mes/v1/org/plant/gw/kind"),
    ("other-version", "mes/v2/acme/plant-a/gw-1/state", "is not mes/v1/org/plant/gw/kind"),
    ("other-root", "plant/v1/acme/plant-a/gw-1/state", "is not mes/v1/org/plant/gw/kind"),
    ("empty", "", "is not mes/v1/org/plant/gw/kind"),
    ("org-uppercase", "mes/v1/Acme/plant-a/gw-1/state", "org code 'Acme'"),
    ("org-empty", "mes/v1//plant-a/gw-1/state", "org code ''"),
    ("plant-underscore", "mes/v1/acme/plant_a/gw-1/state", "plant code 'plant_a'"),
    ("plant-wildcard", "mes/v1/acme/+/gw-1/state", "plant code '+'"),
    ("gateway-leading-hyphen", "mes/v1/acme/plant-a/-gw/state", "gateway code '-gw'"),
    ("gateway-64-characters", f"mes/v1/acme/plant-a/{'g' * 64}/state", "gateway code"),
    ("unknown-kind", "mes/v1/acme/plant-a/gw-1/alarm", "unknown kind 'alarm'"),
    ("kind-uppercase", "mes/v1/acme/plant-a/gw-1/STATE", "unknown kind 'STATE'"),
    ("kind-empty", "mes/v1/acme/plant-a/gw-1/", "unknown kind ''"),
]


@pytest.mark.parametrize(("topic", "names"), [c[1:] for c in BAD_TOPICS],
                         ids=[c[0] for c in BAD_TOPICS])  # fmt: skip
def test_bad_topics_are_dead_letters_naming_the_part(topic: str, names: str) -> None:
    error = reason_of(lambda: Topic.parse(topic))
    assert error.reason == "bad_topic"
    assert names in error.detail


def test_a_topic_code_with_a_trailing_newline_is_a_bad_topic() -> None:
    assert reason_of(lambda: Topic.parse("mes/v1/acme/plant-a/gw-1\n/state")).reason == "bad_topic"


def test_an_envelope_gateway_with_a_trailing_newline_is_invalid() -> None:
    assert reason_of(lambda: decode(Kind.STATE, envelope_json(gateway="gw-1\n"))).reason == (
        "invalid")  # fmt: skip


# ------------------------------------------------------------------------------- decoding


def test_status_topics_carry_no_records() -> None:
    error = reason_of(lambda: decode(Kind.STATUS, envelope_json()))
    assert error.reason == "bad_kind"
    assert "'status'" in error.detail


def test_every_record_kind_has_an_envelope() -> None:
    assert set(ENVELOPES) == set(Kind) - {Kind.STATUS}
    for kind, envelope_type in ENVELOPES.items():
        assert envelope_type.kind is kind


@pytest.mark.parametrize("kind", sorted(ENVELOPES), ids=str)
def test_an_empty_batch_decodes_for_every_kind(kind: Kind) -> None:
    decoded = decode(kind, envelope_json())
    assert type(decoded) is ENVELOPES[kind]
    assert (decoded.gateway, decoded.seq, decoded.sent_at, decoded.records) == ("gw-1", 7, T0, [])


MALFORMED = {
    "not-json": b"state: running",
    "empty": b"",
    "truncated": envelope_json()[:-2],
    "nan-literal": envelope_json(value_json().replace("42.0", "NaN")),
    "not-utf8": b'{"v": 1, "gateway": "\xff"}',
}


@pytest.mark.parametrize("payload", MALFORMED.values(), ids=MALFORMED.keys())
def test_payloads_that_are_not_json_are_malformed(payload: bytes) -> None:
    assert reason_of(lambda: decode(Kind.COUNTER, payload)).reason == "malformed"


# (id, kind, payload, where msgspec says the fault is)
INVALID = [
    ("version-2", Kind.STATE, envelope_json(v=2), "$.v"),
    ("gateway-not-a-code", Kind.STATE, envelope_json(gateway="GW 1"), "$.gateway"),
    ("seq-negative", Kind.STATE, envelope_json(seq=-1), "$.seq"),
    ("sent-at-naive", Kind.STATE, envelope_json(sent_at="2026-03-02T06:00:00"), "$.sent_at"),
    ("envelope-unknown-field", Kind.STATE, envelope_json(extra=1), "unknown field `extra`"),
    ("records-missing", Kind.STATE, b'{"v":1,"gateway":"gw-1","seq":1,"sent_at":"'
     + T0.isoformat().encode() + b'"}', "records"),
    ("record-of-another-kind", Kind.COUNTER, envelope_json(state_json()), "$.records[0]"),
    ("record-unknown-field", Kind.STATE, envelope_json(state_json(colour="red")),
     "unknown field `colour`"),
    ("state-unknown", Kind.STATE, envelope_json(state_json(state="dancing")),
     "$.records[0].state"),
    ("state-ts-naive", Kind.STATE, envelope_json(state_json(ts="2026-03-02T06:00:00")),
     "$.records[0].ts"),
    ("machine-empty", Kind.STATE, envelope_json(state_json(machine="")),
     "$.records[0].machine"),
    ("machine-65-characters", Kind.STATE, envelope_json(state_json(machine="m" * 65)),
     "$.records[0].machine"),
    ("reason-code-65-characters", Kind.STATE, envelope_json(state_json(reason_code="r" * 65)),
     "$.records[0].reason_code"),
    ("tag-129-characters", Kind.COUNTER, envelope_json(value_json(tag="t" * 129)),
     "$.records[0].tag"),
    ("value-out-of-range", Kind.TELEMETRY, envelope_json(value_json(value=1e999)),
     "$.records[0].value"),
    ("value-a-string", Kind.TELEMETRY, envelope_json(value_json(value="nan")),
     "$.records[0].value"),
    ("downtime-ended-before-started", Kind.DOWNTIME,
     envelope_json(downtime_json(ended_at=(T0 - timedelta(seconds=1)).isoformat())),
     "ended_at is before started_at"),
    ("downtime-running", Kind.DOWNTIME, envelope_json(downtime_json(state="running")),
     "must be a stop state, not 'running'"),
    ("downtime-offline", Kind.DOWNTIME, envelope_json(downtime_json(state="offline")),
     "must be a stop state, not 'offline'"),
    ("downtime-category-unknown", Kind.DOWNTIME,
     envelope_json(downtime_json(category="maybe")), "$.records[0].category"),
    ("downtime-event-id-not-uuid", Kind.DOWNTIME,
     envelope_json(downtime_json(event_id="42")), "$.records[0].event_id"),
]


@pytest.mark.parametrize(("kind", "payload", "where"), [c[1:] for c in INVALID],
                         ids=[c[0] for c in INVALID])  # fmt: skip
def test_payloads_breaking_the_schema_are_invalid(kind: Kind, payload: bytes, where: str) -> None:
    error = reason_of(lambda: decode(kind, payload))
    assert error.reason == "invalid"
    assert where in error.detail


# id: (payload, dead-letter reason)
BAD_STATUSES = {
    "not-json": (b"online", "malformed"),
    "empty": (b"", "malformed"),
    "truncated": (b'{"v":1,"gateway":"gw-1","status":"onl', "malformed"),
    "status-unknown": (b'{"v":1,"gateway":"gw-1","status":"asleep"}', "invalid"),
    "gateway-not-a-code": (b'{"v":1,"gateway":"Gw","status":"online"}', "invalid"),
    "unknown-field": (b'{"v":1,"gateway":"gw-1","status":"online","uptime":3}', "invalid"),
    "ts-naive": (b'{"v":1,"gateway":"gw-1","status":"online","ts":"2026-03-02T06:00"}',
                 "invalid"),
}


@pytest.mark.parametrize(("payload", "reason"), BAD_STATUSES.values(), ids=BAD_STATUSES.keys())
def test_bad_statuses_are_dead_letters(payload: bytes, reason: str) -> None:
    assert reason_of(lambda: decode_status(payload)).reason == reason


def test_wire_error_carries_reason_and_detail() -> None:
    error = WireError("invalid", "seq is negative")
    assert isinstance(error, ValueError)
    assert (error.reason, error.detail, str(error)) == (
        "invalid", "seq is negative", "invalid: seq is negative")  # fmt: skip


# -------------------------------------------------------------------- building records


@pytest.mark.parametrize("record_type", [CounterRecord, TelemetryRecord],
                         ids=lambda t: t.__name__)  # fmt: skip
@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan], ids=["inf", "-inf", "nan"])
def test_value_records_refuse_non_finite_values(record_type: type, value: float) -> None:
    with pytest.raises(ValueError, match="'speed' is not a finite number"):
        record_type(machine="press-1", tag="speed", ts=T0, value=value)


def downtime(**fields: Any) -> DowntimeRecord:
    return DowntimeRecord(**{"event_id": EVENT_ID, "machine": "press-1", "started_at": T0,
                             "state": MachineState.FAULT,
                             "category": DowntimeCategory.UNPLANNED, **fields})  # fmt: skip


def test_downtime_cannot_end_before_it_started() -> None:
    with pytest.raises(ValueError, match="ended_at is before started_at"):
        downtime(ended_at=T0 - timedelta(microseconds=1))


def test_downtime_may_end_the_instant_it_started() -> None:
    assert downtime(ended_at=T0).ended_at == T0


@pytest.mark.parametrize("state", [s for s in MachineState if not s.is_stop], ids=str)
def test_downtime_in_a_state_that_is_no_stop_is_refused(state: MachineState) -> None:
    with pytest.raises(ValueError, match=f"not '{state.value}'"):
        downtime(state=state)


@pytest.mark.parametrize("state", [s for s in MachineState if s.is_stop], ids=str)
def test_downtime_in_every_stop_state_is_accepted(state: MachineState) -> None:
    assert downtime(state=state).state is state


def test_only_running_and_offline_are_not_stops() -> None:
    assert {s for s in MachineState if not s.is_stop} == {MachineState.RUNNING,
                                                           MachineState.OFFLINE}


def test_a_record_built_with_a_naive_timestamp_is_refused_on_decode() -> None:
    # Building does not check timestamps; decoding does, so such a record never passes the wire.
    naive = StateRecord(machine="press-1", ts=T0.replace(tzinfo=None), state=MachineState.IDLE)
    payload = encode(StateEnvelope(v=1, gateway="gw-1", seq=1, sent_at=T0, records=[naive]))
    error = reason_of(lambda: decode(Kind.STATE, payload))
    assert error.reason == "invalid"
    assert "$.records[0].ts" in error.detail


# -------------------------------------------------------------------------- round trip

ROUND_TRIPS: dict[str, Envelope] = {
    "state": StateEnvelope(v=1, gateway="gw-1", seq=0, sent_at=T0, records=[
        StateRecord(machine="press-1", ts=T0, state=MachineState.RUNNING),
        StateRecord(machine="press-1", ts=T0 + timedelta(seconds=1), state=MachineState.FAULT,
                    reason_code="jam"),
    ]),
    "downtime": DowntimeEnvelope(v=1, gateway="gw-1", seq=1, sent_at=T0, records=[
        downtime(),
        downtime(ended_at=T0 + timedelta(seconds=3), reason_code="jam", micro_stop=True),
    ]),
    "counter": CounterEnvelope(v=1, gateway="gw-1", seq=2, sent_at=T0, records=[
        CounterRecord(machine="press-1", tag="cycles", ts=T0, value=65536.0),
    ]),
    "telemetry": TelemetryEnvelope(v=1, gateway="gw-1", seq=3, sent_at=T0, records=[
        TelemetryRecord(machine="press-1", tag="speed", ts=T0, value=-12.5),
    ]),
}  # fmt: skip


def test_round_trips_cover_every_record_kind() -> None:
    assert {e.kind for e in ROUND_TRIPS.values()} == set(ENVELOPES)


@pytest.mark.parametrize("envelope", ROUND_TRIPS.values(), ids=ROUND_TRIPS.keys())
def test_encode_then_decode_gives_the_same_envelope(envelope: Envelope) -> None:
    assert decode(envelope.kind, encode(envelope)) == envelope


def test_status_round_trip() -> None:
    status = GatewayStatus(v=1, gateway="gw-1", status="online", ts=T0, agent_version="1.4.0",
                           config_hash="abc123")  # fmt: skip
    assert decode_status(encode(status)) == status


def test_timestamps_keep_their_offset_and_instant() -> None:
    berlin_summer = timezone(timedelta(hours=2))
    sent_at = T0.astimezone(berlin_summer)
    envelope = StateEnvelope(v=1, gateway="gw-1", seq=4, sent_at=sent_at, records=[])
    decoded = decode(Kind.STATE, encode(envelope)).sent_at
    assert decoded == T0 and decoded.utcoffset() == timedelta(hours=2)
