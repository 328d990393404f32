"""The columns form (envelope v 2) of counter and telemetry batches: it decodes to exactly the
records the records form (v 1) carries, and each way of breaking it is `invalid`, naming the
item by its JSON path."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest

from core.wire import (
    COLUMN_KINDS,
    RECORD_TYPES,
    ColumnsEnvelope,
    DeadLetterReason,
    Kind,
    WireError,
    WireForm,
    decode,
    decode_piece,
    encode_piece,
    form_of,
    payload,
    to_columns,
)
from tests.wire_samples import sample_record

T0 = datetime(2026, 3, 2, 6, 0, 0, 123457, tzinfo=UTC)
VALUE_KINDS = sorted(COLUMN_KINDS)


def records(kind: Kind) -> list[Any]:
    """Several machines and tags, reads sharing one time object, times going back and forth,
    a non-UTC offset, integral, negative, zero, tiny and huge values."""
    make = RECORD_TYPES[kind]
    read = T0 + timedelta(microseconds=1)
    cest = timezone(timedelta(hours=2))
    return [
        make("press-1", "cycles", read, 41.0),
        make("press-1", "Line 1.Temp", read, -0.0),
        make("press-1", "Störung Öl", read, 72.41383361816406),
        make("press-2", "cycles", T0 - timedelta(hours=5), 2.0**60),
        make("press-2", "cycles", (T0 + timedelta(seconds=3)).astimezone(cest), -7.0),
        make("press-1", "cycles", T0 + timedelta(days=40, microseconds=999_999), 5e-324),
    ]


def columns_payload(kind: Kind, recs: list[Any], form: WireForm = WireForm.COLUMNS) -> bytes:
    return payload(kind, form, "gw-1", 7, T0, [encode_piece(kind, form, recs)])


@pytest.mark.parametrize("kind", VALUE_KINDS)
def test_both_forms_decode_to_the_same_records(kind: Kind) -> None:
    recs = records(kind)
    columns = decode(kind, columns_payload(kind, recs))
    plain = decode(kind, columns_payload(kind, recs, WireForm.RECORDS))
    assert columns == plain
    assert columns.records == recs
    for got, sent in zip(columns.records, recs, strict=True):  # the instant, to the microsecond
        assert got.ts == sent.ts and got.ts.utcoffset() is not None
        assert repr(got.value) == repr(float(sent.value))  # -0.0 stays -0.0


@pytest.mark.parametrize("kind", VALUE_KINDS)
def test_a_message_of_several_blocks_keeps_their_order(kind: Kind) -> None:
    recs = records(kind)
    pieces = [encode_piece(kind, WireForm.COLUMNS, recs[:2]),
              encode_piece(kind, WireForm.COLUMNS, recs[2:])]  # fmt: skip
    assert decode(kind, payload(kind, WireForm.COLUMNS, "gw-1", 7, T0, pieces)).records == recs


def test_the_columns_form_is_about_a_third_of_the_records_form() -> None:
    read = T0 + timedelta(milliseconds=5)
    recs = [RECORD_TYPES[Kind.TELEMETRY](f"m{m:03}", f"Analog{t}", read, 20 + t / 7)
            for m in range(5) for t in range(100)]  # fmt: skip
    columns = len(columns_payload(Kind.TELEMETRY, recs))
    plain = len(columns_payload(Kind.TELEMETRY, recs, WireForm.RECORDS))
    assert columns < 0.4 * plain


def test_state_and_downtime_always_go_as_records() -> None:
    assert {k for k in RECORD_TYPES if form_of(k, WireForm.COLUMNS) is WireForm.COLUMNS} == {
        Kind.COUNTER, Kind.TELEMETRY}


@pytest.mark.parametrize("kind", list(RECORD_TYPES))
@pytest.mark.parametrize("form", list(WireForm))
def test_a_piece_decodes_to_its_records(kind: Kind, form: WireForm) -> None:
    if kind in COLUMN_KINDS:
        recs = records(kind)
    else:
        recs = [sample_record(RECORD_TYPES[kind], T0) for _ in range(3)]
    assert decode_piece(kind, form, encode_piece(kind, form, recs)) == recs


def test_integral_values_go_as_integers_and_come_back_as_floats() -> None:
    block = to_columns([RECORD_TYPES[Kind.COUNTER]("m", "c", T0, v) for v in (3.0, 0.0, 0.5)])
    assert block.x == [3, 0.0, 0.5]
    assert all(type(r.value) is float for r in decode(
        Kind.COUNTER, columns_payload(Kind.COUNTER, records(Kind.COUNTER))).records)


def block_json(**fields: Any) -> bytes:
    """A one-block counter message of two records, `fields` overriding the block's."""
    block = {"t0": T0.isoformat(), "machines": ["press-1"], "tags": ["cycles", "parts"],
             "m": [0, 0], "k": [0, 1], "dt": [0, 0], "x": [1, 2], **fields}  # fmt: skip
    return msgspec.json.encode({"v": 2, "gateway": "gw-1", "seq": 7, "sent_at": T0.isoformat(),
                                "blocks": [block]})  # fmt: skip


def test_a_well_formed_block_decodes() -> None:
    assert [(r.tag, r.value) for r in decode(Kind.COUNTER, block_json()).records] == [
        ("cycles", 1.0), ("parts", 2.0)]


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"x": [1]}, "$.blocks[0].m"),  # columns of different lengths
        ({"dt": [0, 0, 0]}, "$.blocks[0].dt"),
        ({"m": [0, 1]}, "$.blocks[0].m[1]"),  # index past the table
        ({"k": [2, 0]}, "$.blocks[0].k[0]"),
        ({"k": [0, -1]}, "$.blocks[0].k[1]"),
        ({"x": [1, "2"]}, "$.blocks[0].x[1]"),
        ({"x": [1, 1e999]}, "$.blocks[0].x[1]"),  # not a finite number
        ({"dt": [0, 0.5]}, "$.blocks[0].dt[1]"),  # microseconds are whole
        ({"dt": [0, 10**18]}, "$.blocks[0].dt[1]"),  # past the range of dates
        ({"t0": "2026-03-02T06:00:00"}, "$.blocks[0].t0"),  # no offset
        ({"machines": ["press\n1"]}, "$.blocks[0].machines[0]"),
        ({"tags": ["cycles", 'pa"rts']}, "$.blocks[0].tags[1]"),
        ({"tags": ["cycles", "t" * 129]}, "$.blocks[0].tags[1]"),
        ({"machines": [""]}, "$.blocks[0].machines[0]"),
        ({"records": []}, "$.blocks[0]"),  # unknown field
    ],
)
def test_a_broken_block_is_invalid_naming_the_item(fields: dict[str, Any], where: str) -> None:
    with pytest.raises(WireError) as e:
        decode(Kind.COUNTER, block_json(**fields))
    assert e.value.reason is DeadLetterReason.INVALID
    assert f"`{where}`" in e.value.detail, e.value.detail


def test_records_in_a_v2_envelope_or_blocks_in_a_v1_are_invalid() -> None:
    good = block_json()
    for bad, field in ((good.replace(b'"v":2', b'"v":1'), "`blocks`"),
                       (good.replace(b'"blocks"', b'"records"'), "`records`")):  # fmt: skip
        with pytest.raises(WireError) as e:
            decode(Kind.COUNTER, bad)
        assert e.value.reason is DeadLetterReason.INVALID and field in e.value.detail


@pytest.mark.parametrize("kind", [Kind.STATE, Kind.DOWNTIME])
def test_the_columns_form_is_refused_for_state_and_downtime(kind: Kind) -> None:
    with pytest.raises(WireError) as e:
        decode(kind, block_json())
    assert e.value.reason is DeadLetterReason.INVALID and "`$.v`" in e.value.detail


def test_the_version_is_found_wherever_another_encoder_puts_it() -> None:
    envelope = msgspec.json.decode(block_json(), type=ColumnsEnvelope)
    spaced = msgspec.json.format(msgspec.json.encode(msgspec.structs.asdict(envelope)), indent=2)
    moved = spaced.replace(b'"v": 2,', b"").replace(b'"seq": 7', b'"seq": 7, "v": 2')
    assert decode(Kind.COUNTER, moved) == decode(Kind.COUNTER, block_json())
