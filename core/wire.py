"""The MQTT wire contract: topics, envelopes, records (reader's version: docs/wire-format.md).

This module is the one source of truth for the format: the edge agent encodes with it, the
ingest decodes and validates with it. msgspec does both in one typed pass, several times faster
than pydantic for this shape, which matters at tens of thousands of records per second.

Two forms of envelope: `v` 1 carries a list of record objects (every kind); `v` 2, the columns
form, carries counter and telemetry records as blocks of columns (`Columns`), about a third of
the bytes. `decode` takes either and returns the records form, so what the ingest validates and
writes is the same records whichever form they travelled in.

Natural keys make replays harmless: state `(machine, ts)`, counter and telemetry
`(machine, tag, ts)`, downtime `event_id` (made at the edge when the stop starts, sent again when
it ends).
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Literal, get_args, get_type_hints

import msgspec

WIRE_VERSION = 1
COLUMNS_VERSION = 2
TOPIC_ROOT = "mes/v1"
CODE_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"
# The same rule for Python's `re` (and msgspec, which uses it): there `$` also matches before a
# final newline, so "gw-1\n" would pass; \A and \Z anchor at the very ends. (pydantic's regex
# engine reads `$` as the very end, so tag maps use CODE_PATTERN itself.)
_CODE_PY_PATTERN = r"\A[a-z0-9][a-z0-9-]{0,62}\Z"
CODE_RE = re.compile(_CODE_PY_PATTERN)

# Machine codes, tag names and reason codes come from tag maps and PLCs, so they are freer than
# topic codes, but they are printable text (`check_text`).
Code = Annotated[str, msgspec.Meta(pattern=_CODE_PY_PATTERN)]
MACHINE_CODE_MAX, TAG_NAME_MAX, REASON_CODE_MAX = 64, 128, 64
MachineCode = Annotated[str, msgspec.Meta(min_length=1, max_length=MACHINE_CODE_MAX)]
TagName = Annotated[str, msgspec.Meta(min_length=1, max_length=TAG_NAME_MAX)]
ReasonCode = Annotated[str, msgspec.Meta(min_length=1, max_length=REASON_CODE_MAX)]
FreeText = Annotated[str, msgspec.Meta(max_length=256)]
Timestamp = Annotated[datetime, msgspec.Meta(tz=True)]
Seq = Annotated[int, msgspec.Meta(ge=0)]
Index = Annotated[int, msgspec.Meta(ge=0)]

TEXT_RULE = ("printable text without control characters, quotes, backslash, invisible "
             "characters or spaces at either end")
_QUOTES = frozenset("\"'`\\")


def is_text(value: str) -> bool:
    """Whether a code is printable text (TEXT_RULE).

    Control characters, quotes, invisible format characters (zero-width, bidi overrides, byte
    order mark) and surrounding spaces turn a code into a different code that looks the same,
    break logs and exports, and a NUL makes PostgreSQL refuse a whole batch: validation refuses
    them first. `str.isprintable` is Unicode's rule (no "Other" or "Separator" but the ASCII
    space) at C speed.
    """
    return (value.isprintable() and value[:1] != " " and value[-1:] != " "
            and _QUOTES.isdisjoint(value))


def as_text(value: str, max_length: int) -> str | None:
    """`value` made to follow TEXT_RULE, for text read from a PLC at run time (a reason string
    the tag map could not check): each forbidden character becomes "_", surrounding spaces go,
    the length is cut; None when nothing but underscores is left."""
    kept = "".join(c if c.isprintable() and c not in _QUOTES else "_" for c in value)
    text = kept.strip(" ")[:max_length].rstrip(" ")
    return text if text.strip("_") else None


class Kind(StrEnum):
    """The last topic level: what the envelope's records are."""

    STATE = "state"
    DOWNTIME = "downtime"
    COUNTER = "counter"
    TELEMETRY = "telemetry"
    STATUS = "status"


class MachineState(StrEnum):
    """Canonical machine states. Every state but RUNNING and OFFLINE is a stop."""

    RUNNING = "running"
    IDLE = "idle"
    STARVED = "starved"
    BLOCKED = "blocked"
    SETUP = "setup"
    PLANNED_STOP = "planned_stop"
    FAULT = "fault"
    OFFLINE = "offline"

    @property
    def is_stop(self) -> bool:
        """A stop opens a downtime event; OFFLINE is a data gap, never a stop."""
        return self not in (MachineState.RUNNING, MachineState.OFFLINE)


class DeadLetterReason(StrEnum):
    """Why the ingest refuses a message: the `reason` of its dead letter (mes.dead_letters).

    One list for the errors of this module (WireError) and the ingest's own checks, so that
    `mes ingest dead-letters list --reason ...`, the metrics and the tests name them alike.
    """

    # The contract itself (this module).
    BAD_TOPIC = "bad_topic"
    BAD_KIND = "bad_kind"
    MALFORMED = "malformed"  # not JSON
    INVALID = "invalid"  # JSON, but not the schema: types, lengths, finite numbers, fields
    # The ingest's checks of a well-formed message (core/intake/validator.py).
    PAYLOAD_TOO_LARGE = "payload_too_large"
    GATEWAY_MISMATCH = "gateway_mismatch"
    UNKNOWN_GATEWAY = "unknown_gateway"
    INACTIVE_GATEWAY = "inactive_gateway"
    WRONG_TENANT = "wrong_tenant"
    TIMESTAMP_OUT_OF_RANGE = "timestamp_out_of_range"
    UNKNOWN_MACHINE = "unknown_machine"
    # The database refused the message's rows (a constraint), once isolated from its batch.
    REFUSED_BY_DATABASE = "refused_by_database"


class DowntimeCategory(StrEnum):
    PLANNED = "planned"
    UNPLANNED = "unplanned"


class _Record(msgspec.Struct, forbid_unknown_fields=True, frozen=True, gc=False):
    """A record holds no container, so it can be in no reference cycle: left out of the
    garbage collector, the tens of thousands made a second cost less to make and to keep."""


class StateRecord(_Record):
    """The machine entered (or, for a heartbeat, still is in) `state` at `ts`."""

    machine: MachineCode
    ts: Timestamp
    state: MachineState
    reason_code: ReasonCode | None = None


class DowntimeRecord(_Record):
    """A stop: sent when it starts (`ended_at` null) and again, same `event_id`, when it ends."""

    event_id: uuid.UUID
    machine: MachineCode
    started_at: Timestamp
    state: MachineState
    category: DowntimeCategory
    ended_at: Timestamp | None = None
    reason_code: ReasonCode | None = None
    micro_stop: bool | None = None
    # An end forced by a data gap or the agent stopping, not by the machine: the stop's real
    # length is unknown, so it is never a micro-stop. Optional: older agents do not send it.
    truncated: bool | None = None

    def __post_init__(self) -> None:
        if not self.state.is_stop:
            raise ValueError(f"downtime state must be a stop state, not {self.state.value!r}")
        if self.ended_at is not None and self.ended_at < self.started_at:
            raise ValueError("downtime ended_at is before started_at")


class _ValueRecord(_Record):
    machine: MachineCode
    tag: TagName
    ts: Timestamp
    value: float

    def __post_init__(self) -> None:
        if not math.isfinite(self.value):
            raise ValueError(f"value of {self.tag!r} is not a finite number")


class CounterRecord(_ValueRecord):
    """A counter's running total at `ts`, rollover of the PLC register already unwrapped."""


class TelemetryRecord(_ValueRecord):
    """An analog value at `ts` (after deadband and minimum interval at the edge)."""


Record = StateRecord | DowntimeRecord | CounterRecord | TelemetryRecord


class Envelope(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One MQTT message: a batch of records of the topic's kind from one gateway.

    `seq` increases by one per message per gateway and survives agent restarts.
    """

    v: Literal[1]
    gateway: Code
    seq: Seq
    sent_at: Timestamp
    kind: ClassVar[Kind]


class StateEnvelope(Envelope, frozen=True):
    records: list[StateRecord]
    kind: ClassVar[Kind] = Kind.STATE


class DowntimeEnvelope(Envelope, frozen=True):
    records: list[DowntimeRecord]
    kind: ClassVar[Kind] = Kind.DOWNTIME


class CounterEnvelope(Envelope, frozen=True):
    records: list[CounterRecord]
    kind: ClassVar[Kind] = Kind.COUNTER


class TelemetryEnvelope(Envelope, frozen=True):
    records: list[TelemetryRecord]
    kind: ClassVar[Kind] = Kind.TELEMETRY


class GatewayStatus(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """Retained on the `status` topic: birth (`online`) and last will (`offline`)."""

    v: Literal[1]
    gateway: Code
    status: Literal["online", "offline"]
    ts: Timestamp | None = None
    agent_version: FreeText | None = None
    config_hash: FreeText | None = None

    def __post_init__(self) -> None:
        for name in ("agent_version", "config_hash"):
            value = getattr(self, name)
            if value is not None and not value.isprintable():
                raise ValueError(f"{name} must be printable text")


# The kinds that carry records, downtime first: the outbox offers kinds turns in this order.
ENVELOPES: dict[Kind, type[Envelope]] = {
    e.kind: e for e in (DowntimeEnvelope, StateEnvelope, CounterEnvelope, TelemetryEnvelope)
}
RECORD_KINDS: tuple[Kind, ...] = tuple(ENVELOPES)


def _record_type(envelope: type[Envelope]) -> type[Any]:
    records = next(f for f in msgspec.structs.fields(envelope) if f.name == "records")
    (record_type,) = get_args(records.type)  # list[XRecord]
    return record_type  # type: ignore[no-any-return]


# What each kind's envelope carries, read from the envelope classes, never listed again.
RECORD_TYPES: dict[Kind, type[Any]] = {k: _record_type(e) for k, e in ENVELOPES.items()}
KIND_OF: dict[type[Any], Kind] = {t: k for k, t in RECORD_TYPES.items()}

class WireForm(StrEnum):
    """How an envelope carries its records: `records` (v 1, one object per record) or
    `columns` (v 2, counter and telemetry only; other kinds always go as records)."""

    RECORDS = "records"
    COLUMNS = "columns"


# The kinds the columns form carries: natural key (machine, tag, ts) and a number.
COLUMN_KINDS: frozenset[Kind] = frozenset({Kind.COUNTER, Kind.TELEMETRY})


class Columns(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """A block of counter or telemetry records as columns (the `blocks` of a v 2 envelope).

    Record i is: machine `machines[m[i]]`, tag `tags[k[i]]`, time `t0` plus `dt[0] + ... +
    dt[i]` microseconds (each record's time as microseconds after the previous one's, so a read's
    records, which share one time, cost one `0` each), value `x[i]`. The four columns have one
    item per record. Times stay exact: microseconds are the resolution of the records' times.
    """

    t0: Timestamp
    machines: list[MachineCode]
    tags: list[TagName]
    m: list[Index]
    k: list[Index]
    dt: list[int]
    x: list[float]


class ColumnsEnvelope(msgspec.Struct, forbid_unknown_fields=True, frozen=True):
    """One MQTT message of the columns form: `v` 2, the envelope fields of v 1, and `blocks`
    instead of `records` (the records are the blocks' records, in order)."""

    v: Literal[2]
    gateway: Code
    seq: Seq
    sent_at: Timestamp
    blocks: list[Columns]


_DECODERS = {kind: msgspec.json.Decoder(cls) for kind, cls in ENVELOPES.items()}
_COLUMNS_DECODER = msgspec.json.Decoder(ColumnsEnvelope)
_STATUS_DECODER = msgspec.json.Decoder(GatewayStatus)
_ENCODER = msgspec.json.Encoder()


@dataclass(frozen=True, slots=True)
class Topic:
    """`mes/v1/{org}/{plant}/{gateway}/{kind}`."""

    org: str
    plant: str
    gateway: str
    kind: Kind

    def __str__(self) -> str:
        return f"{TOPIC_ROOT}/{self.org}/{self.plant}/{self.gateway}/{self.kind.value}"

    @classmethod
    def parse(cls, topic: str) -> Topic:
        """Parse and check a topic; raises WireError naming what is wrong."""
        parts = topic.split("/")
        if len(parts) != 6 or "/".join(parts[:2]) != TOPIC_ROOT:
            raise WireError(DeadLetterReason.BAD_TOPIC,
                            f"topic {topic!r} is not {TOPIC_ROOT}/org/plant/gw/kind")
        org, plant, gateway, kind = parts[2:]
        for name, code in (("org", org), ("plant", plant), ("gateway", gateway)):
            if not CODE_RE.match(code):
                raise WireError(DeadLetterReason.BAD_TOPIC,
                                f"{name} code {code!r} in topic is not a valid code")
        try:
            return cls(org, plant, gateway, Kind(kind))
        except ValueError:
            raise WireError(DeadLetterReason.BAD_TOPIC, f"unknown kind {kind!r} in topic") from None


class WireError(ValueError):
    """A message that does not follow the contract; `reason` is the dead-letter reason."""

    def __init__(self, reason: DeadLetterReason, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def encode(message: Envelope | ColumnsEnvelope | GatewayStatus) -> bytes:
    """Serialise an envelope or status to its UTF-8 JSON payload."""
    return _ENCODER.encode(message)


# -- records in pieces: what the edge's outbox stores and splices into messages ----------------

def form_of(kind: Kind, form: WireForm) -> WireForm:
    """The form records of `kind` travel in when the agent is set to `form`."""
    return form if kind in COLUMN_KINDS else WireForm.RECORDS


def encode_piece(kind: Kind, form: WireForm, records: Sequence[Record]) -> bytes:
    """Records of `kind` (at least one) as one piece of a message body, in `form_of(kind,
    form)`: comma-separated record objects (records form) or one `Columns` block. Pieces of
    one kind and form join into a message with `payload()`."""
    if form_of(kind, form) is WireForm.COLUMNS:
        return _ENCODER.encode(to_columns(records))  # type: ignore[arg-type]
    return _ENCODER.encode(records)[1:-1]  # the list's items, without its brackets


def decode_piece(kind: Kind, form: WireForm, piece: bytes) -> list[Record]:
    """The records of a piece made by `encode_piece` (to split it)."""
    if form_of(kind, form) is WireForm.COLUMNS:
        return _expand(RECORD_TYPES[kind], [msgspec.json.decode(piece, type=Columns)])
    return msgspec.json.decode(b"[" + piece + b"]", type=list[RECORD_TYPES[kind]])  # type: ignore[valid-type]


# The bytes a payload adds to its pieces: the envelope's fields, seq and sent_at included.
PAYLOAD_OVERHEAD = 200


def payload(kind: Kind, form: WireForm, gateway: str, seq: int, sent_at: datetime,
            pieces: Sequence[bytes]) -> bytes:
    """One message's payload made of pieces (`encode_piece`) of `kind` in `form`: the bytes
    `encode` makes of the envelope holding their records, without decoding and encoding the
    pieces again. At most `PAYLOAD_OVERHEAD` bytes longer than the pieces and their commas."""
    if form_of(kind, form) is WireForm.COLUMNS:
        empty = encode(ColumnsEnvelope(v=COLUMNS_VERSION, gateway=gateway, seq=seq,
                                       sent_at=sent_at, blocks=[]))
        field = b'"blocks":['
    else:
        empty = encode(ENVELOPES[kind](v=WIRE_VERSION, gateway=gateway, seq=seq,  # type: ignore[call-arg]
                                       sent_at=sent_at, records=[]))
        field = b'"records":['
    # The list is the envelope's last field: cut its empty brackets, put the pieces in.
    head = empty[: -len(field) - 2]
    assert head + field + b"]}" == empty, empty
    return b"".join((head, field, b",".join(pieces), b"]}"))


_US = timedelta(microseconds=1)
_EXACT = 2.0**53  # integral floats below this are exact as JSON integers


def to_columns(records: Sequence[CounterRecord | TelemetryRecord]) -> Columns:
    """Records (at least one) as one block of columns; `_expand` gives them back exactly."""
    machines: dict[str, int] = {}
    tags: dict[str, int] = {}
    m: list[int] = []
    k: list[int] = []
    dt: list[int] = []
    x: list[float] = []
    t0 = prev = records[0].ts
    for r in records:
        i = machines.get(r.machine)
        if i is None:
            i = machines[r.machine] = len(machines)
        m.append(i)
        i = tags.get(r.tag)
        if i is None:
            i = tags[r.tag] = len(tags)
        k.append(i)
        ts = r.ts
        if ts is prev:  # the records of one read share their time object: the common case
            dt.append(0)
        else:
            dt.append((ts - prev) // _US)
            prev = ts
        v = r.value
        # A counter's 1234.0 as 1234 (msgspec reads it back as the same float); not 0.0, whose
        # sign an integer would lose.
        if v.__class__ is float and v.is_integer() and 0 < abs(v) < _EXACT:
            v = int(v)
        x.append(v)
    return Columns(t0, list(machines), list(tags), m, k, dt, x)


def _expand(record_type: type[Any], blocks: Sequence[Columns]) -> list[Any]:
    """The records of decoded blocks, each column checked; WireError (`invalid`) names the
    first bad item by its path."""
    out: list[Any] = []
    for b, block in enumerate(blocks):
        at = f"$.blocks[{b}]"
        n = len(block.x)
        for name in ("m", "k", "dt"):
            if (length := len(getattr(block, name))) != n:
                raise WireError(DeadLetterReason.INVALID,
                                f"`{name}` has {length} items but `x` has {n} (one per record)"
                                f" - at `{at}.{name}`")
        for column, name, what in (("m", "machines", "machine"), ("k", "tags", "tag")):
            index, table = getattr(block, column), getattr(block, name)
            if n and max(index) >= len(table):
                i = next(i for i, v in enumerate(index) if v >= len(table))
                raise WireError(DeadLetterReason.INVALID,
                                f"index {index[i]} is past the {len(table)} entries of `{name}`"
                                f" - at `{at}.{column}[{i}]`")
            for i, text in enumerate(table):
                if not is_text(text):
                    raise WireError(DeadLetterReason.INVALID,
                                    f"{what} must be {TEXT_RULE} - at `{at}.{name}[{i}]`")
        machines, tags = block.machines, block.tags
        ts = block.t0
        first = len(out)
        try:
            for mi, ki, d, v in zip(block.m, block.k, block.dt, block.x, strict=True):
                if d:
                    ts = ts + timedelta(microseconds=d)
                out.append(record_type(machines[mi], tags[ki], ts, v))
        except OverflowError:
            raise WireError(DeadLetterReason.INVALID, "the time leaves the range of dates - at "
                                                      f"`{at}.dt[{len(out) - first}]`") from None
    return out


def decode(kind: Kind, payload: bytes) -> Envelope:
    """Decode and validate one payload of the given kind, in either form; raises WireError.

    A columns-form (v 2) payload comes back as the records it carries, in the records-form
    envelope of its kind (same gateway, seq and sent_at): the same records, field for field,
    as if they had been sent one object each.
    """
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise WireError(DeadLetterReason.BAD_KIND,
                        f"no records are carried on {kind.value!r} topics")
    if kind in COLUMN_KINDS and _version(payload) == COLUMNS_VERSION:
        columns: ColumnsEnvelope = _decode(_COLUMNS_DECODER, payload)
        return ENVELOPES[kind](v=WIRE_VERSION, gateway=columns.gateway, seq=columns.seq,  # type: ignore[call-arg]
                               sent_at=columns.sent_at,
                               records=_expand(RECORD_TYPES[kind], columns.blocks))
    envelope = _decode(decoder, payload)
    if not payload.isascii() or any(mark in payload for mark in _MAYBE_NOT_TEXT):
        _check_texts(envelope)
    return envelope


# Codes are checked after decoding, per record, only when the raw payload could hold a string
# that breaks TEXT_RULE: in compact JSON such a string shows as a backslash escape, a non-ASCII
# byte, a quote or a space. Our agents' payloads have none of these unless a code does, and
# skipping the per-record check keeps decoding nearly twice as fast (100 records: 20 us, 37 us).
_MAYBE_NOT_TEXT = (b"\\", b"'", b"`", b" ")  # one byte each: memchr, not a substring search
_CODE_TYPES = (MachineCode, TagName, ReasonCode)


def _text_fields(record_type: type) -> tuple[str, ...]:
    hints = get_type_hints(record_type, include_extras=True)
    return tuple(name for name, hint in hints.items()
                 if hint in _CODE_TYPES or any(hint == t | None for t in _CODE_TYPES))


_TEXT_FIELDS: dict[type, tuple[str, ...]] = {
    t: _text_fields(t) for t in (StateRecord, DowntimeRecord, CounterRecord, TelemetryRecord)}


def _check_texts(envelope: Envelope) -> None:
    for i, record in enumerate(envelope.records):  # type: ignore[attr-defined]
        for name in _TEXT_FIELDS[type(record)]:
            value = getattr(record, name)
            if value is not None and not is_text(value):
                raise WireError(DeadLetterReason.INVALID, f"{name} must be {TEXT_RULE} - at "
                                           f"`$.records[{i}].{name}`")


class _Version(msgspec.Struct):
    v: Any = None


_VERSION_DECODER = msgspec.json.Decoder(_Version)


def _version(payload: bytes) -> Any:
    """The envelope's `v`: from its first bytes when our encoder wrote it, else parsed (another
    encoder may put it anywhere, with spaces); None when there is none to read."""
    if payload.startswith(b'{"v":2,'):
        return 2
    if payload.startswith(b'{"v":1,'):
        return 1
    try:
        return _VERSION_DECODER.decode(payload).v
    except msgspec.MsgspecError:
        return None  # the records-form decoder says what is wrong


def decode_status(payload: bytes) -> GatewayStatus:
    """Decode a `status` topic payload (birth or last will); raises WireError."""
    return _decode(_STATUS_DECODER, payload)


def _decode(decoder: msgspec.json.Decoder[Any], payload: bytes) -> Any:
    """msgspec's errors as dead-letter reasons: `invalid` (schema), `malformed` (not JSON)."""
    try:
        return decoder.decode(payload)
    except msgspec.ValidationError as e:
        raise WireError(DeadLetterReason.INVALID, _explain(str(e))) from None
    except msgspec.DecodeError as e:
        if where := _lone_surrogate(payload):
            raise WireError(DeadLetterReason.INVALID,
                            f"a string holds a lone surrogate - at `{where}`") from None
        raise WireError(DeadLetterReason.MALFORMED, str(e)) from None


_PATTERN_ERROR = re.compile(r"Expected `str` matching regex (?P<pattern>'.*') - at (?P<at>.*)$")


def _explain(message: str) -> str:
    """msgspec quotes a failed pattern as a regex; an operator reading a dead letter needs the
    rule in words, with the field's path."""
    found = _PATTERN_ERROR.match(message)
    if found and found["pattern"] == repr(_CODE_PY_PATTERN):
        return f"must be a code matching {CODE_PATTERN} - at {found['at']}"
    return message


def _lone_surrogate(payload: bytes) -> str | None:
    """Where a string escapes a lone UTF-16 surrogate (`"\\ud800"`), which msgspec reports as
    "Input data was truncated": the path of the first such string, else None.

    Only on the error path: the standard library's parser accepts lone surrogates, so it can
    say which field holds one.
    """
    try:
        document = json.loads(payload)
    except ValueError:
        return None

    def walk(node: Any, path: str) -> str | None:
        if isinstance(node, str):
            return path if _SURROGATE.search(node) else None
        items: Iterable[tuple[str, Any]] = ()
        if isinstance(node, dict):
            items = ((f"{path}.{k}" if not _SURROGATE.search(k) else path, v)
                     for k, v in node.items())
            if any(_SURROGATE.search(k) for k in node):
                return path
        elif isinstance(node, list):
            items = ((f"{path}[{i}]", v) for i, v in enumerate(node))
        return next((found for p, v in items if (found := walk(v, p))), None)

    return walk(document, "$")


_SURROGATE = re.compile("[\ud800-\udfff]")
