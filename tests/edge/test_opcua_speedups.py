"""The agent's faster paths through asyncua's decoder give exactly what asyncua's own give."""

from __future__ import annotations

import asyncio
import dataclasses
import math
import struct
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import Client, ua
from asyncua.client import ua_session
from asyncua.common.utils import Buffer
from asyncua.ua import ua_binary, uatypes
from asyncua.ua.ua_binary import struct_to_binary

import edge_agent.drivers.opcua.driver  # noqa: F401  (installs the speedups)
from edge_agent.drivers.opcua import speedups
from edge_agent.drivers.opcua.speedups import datatype_to_varianttype
from tests.edge.conftest import OpcUaTestServer
from tests.support.wait import wait_until_async


def _outcome(f: Any, arg: Any) -> Any:
    try:
        return f(arg)
    except Exception as e:  # the same error, too
        return type(e), str(e)


def test_the_decoder_uses_the_table_lookup_and_the_publish_decoder() -> None:
    assert ua.datatype_to_varianttype is datatype_to_varianttype
    assert ua_session.struct_from_binary is speedups._struct_from_binary


def test_every_variant_type_number_gives_what_asyncua_gives() -> None:
    # 0-63: what the 6 bits of a variant's encoding byte can say; then a NodeId and a bad type.
    for arg in [*range(64), ua.NodeId(11), ua.NodeId(40), "11"]:
        assert _outcome(datatype_to_varianttype, arg) == _outcome(
            uatypes.datatype_to_varianttype, arg
        ), arg


# ------------------------------------------------------------------ publish responses

_T0 = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
_SCALARS: list[ua.Variant] = [
    ua.Variant(True, ua.VariantType.Boolean),
    ua.Variant(False, ua.VariantType.Boolean),
    ua.Variant(-5, ua.VariantType.SByte),
    ua.Variant(250, ua.VariantType.Byte),
    ua.Variant(-32768, ua.VariantType.Int16),
    ua.Variant(65535, ua.VariantType.UInt16),
    ua.Variant(-(2**31), ua.VariantType.Int32),
    ua.Variant(2**32 - 1, ua.VariantType.UInt32),
    ua.Variant(-(2**63), ua.VariantType.Int64),
    ua.Variant(2**64 - 1, ua.VariantType.UInt64),
    ua.Variant(0.1, ua.VariantType.Float),
    ua.Variant(-0.0, ua.VariantType.Double),
    ua.Variant(math.inf, ua.VariantType.Double),
    ua.Variant(math.nan, ua.VariantType.Double),
    ua.Variant(1e308, ua.VariantType.Double),
    ua.Variant("Line 1 — Ünïcode", ua.VariantType.String),
    ua.Variant("", ua.VariantType.String),
    ua.Variant(None, ua.VariantType.String),
    ua.Variant(b"\x00\xff", ua.VariantType.ByteString),
    ua.Variant(None, ua.VariantType.ByteString),
    ua.Variant(_T0, ua.VariantType.DateTime),
    ua.Variant(datetime(1601, 1, 1, tzinfo=UTC), ua.VariantType.DateTime),
    ua.Variant(ua.StatusCode(ua.StatusCodes.BadOutOfRange), ua.VariantType.StatusCode),
    ua.Variant(None, ua.VariantType.Null),
]
# What the fast path leaves to asyncua: every one must still decode as asyncua decodes it.
_OTHERS: list[ua.Variant] = [
    ua.Variant([1, 2, 3], ua.VariantType.Int32),
    ua.Variant([[1.0, 2.0], [3.0, 4.0]], ua.VariantType.Double),
    ua.Variant([], ua.VariantType.String),
    ua.Variant(ua.LocalizedText("Läuft", "de"), ua.VariantType.LocalizedText),
    ua.Variant(ua.NodeId("x", 2), ua.VariantType.NodeId),
    ua.Variant(ua.QualifiedName("q", 1), ua.VariantType.QualifiedName),
    ua.Variant(uuid.UUID(int=7), ua.VariantType.Guid),
    ua.Variant(ua.Argument(Name="a"), ua.VariantType.ExtensionObject),
]


def _data_values(variants: list[ua.Variant]) -> list[ua.DataValue]:
    """Each variant alone, with a status, with each timestamp, and with all of them."""
    out = []
    for i, v in enumerate(variants):
        out += [
            ua.DataValue(v),
            ua.DataValue(v, ua.StatusCode(ua.StatusCodes.UncertainLastUsableValue)),
            ua.DataValue(v, SourceTimestamp=_T0 + timedelta(microseconds=i)),
            ua.DataValue(v, ServerTimestamp=_T0),
            ua.DataValue(v, ua.StatusCode(ua.StatusCodes.BadTimeout), _T0, _T0),
        ]
    return out


def _fast_values() -> list[ua.DataValue]:
    """What the fast path reads: the scalars, and values with no variant at all."""
    bad = ua.StatusCode(ua.StatusCodes.BadNoCommunication)
    no_variant = ua.DataValue(StatusCode=bad)
    no_variant.Value = None  # encoded without the value bit
    no_value = [ua.DataValue(), ua.DataValue(StatusCode=bad), no_variant]
    return [*no_value, *_data_values(_SCALARS)]


def _response(notifications: list[Any], *, seq: int = 7) -> bytes:
    response = ua.PublishResponse()
    response.ResponseHeader.Timestamp = _T0
    response.ResponseHeader.RequestHandle = 42
    response.Parameters = ua.PublishResult(
        SubscriptionId=3,
        AvailableSequenceNumbers=[5, 6, seq],
        MoreNotifications=False,
        NotificationMessage=ua.NotificationMessage(seq, _T0, notifications),
        Results=[ua.StatusCode()],
    )
    return struct_to_binary(response)


def _items(values: list[ua.DataValue]) -> list[ua.MonitoredItemNotification]:
    return [ua.MonitoredItemNotification(i + 1, dv) for i, dv in enumerate(values)]


def _corpus() -> list[bytes]:
    scalars = _fast_values()
    with_pico = ua.DataValue(_SCALARS[4], SourceTimestamp=_T0, SourcePicoseconds=9,
                             ServerTimestamp=_T0, ServerPicoseconds=3)  # fmt: skip
    event = ua.EventNotificationList([ua.EventFieldList(1, [ua.Variant(5)])])
    status = ua.StatusChangeNotification(ua.StatusCode(ua.StatusCodes.BadTimeout))
    diag = ua.DataChangeNotification(_items(scalars[:3]), [ua.DiagnosticInfo(SymbolicId=1)])
    return [
        _response([ua.DataChangeNotification(_items(scalars))]),
        *(_response([ua.DataChangeNotification(_items([dv]))]) for dv in scalars),
        *(_response([ua.DataChangeNotification(_items([dv]))]) for dv in _data_values(_OTHERS)),
        _response([ua.DataChangeNotification(_items([*scalars[:4], with_pico]))]),
        _response([ua.DataChangeNotification(_items(scalars[:5])), event, status]),
        _response([diag, ua.DataChangeNotification(_items(scalars[5:9]))]),
        _response([ua.DataChangeNotification([])]),
        _response([]),
    ]


def _same(raw: bytes) -> bool:
    """Decode `raw` with asyncua and with the fast path; assert the results are identical.
    Returns whether the fast path read at least one notification itself."""
    generic = ua_binary.struct_from_binary(ua.PublishResponse, Buffer(raw))
    fast = speedups.decode_publish_response(Buffer(raw))
    _assert_identical(fast, generic, "response")
    assert struct_to_binary(fast) == struct_to_binary(generic)
    return bool(_fast_reads(raw))


def _assert_identical(a: Any, b: Any, where: str) -> None:
    """Same types, every dataclass field (those left out of repr and == too), floats bit for
    bit (NaN and -0.0 included)."""
    assert type(a) is type(b), where
    if dataclasses.is_dataclass(a):
        for f in dataclasses.fields(a):
            _assert_identical(getattr(a, f.name), getattr(b, f.name), f"{where}.{f.name}")
    elif isinstance(a, list | tuple):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            _assert_identical(x, y, f"{where}[{i}]")
    elif isinstance(a, float):
        assert struct.pack("<d", a) == struct.pack("<d", b), where
    else:
        assert a == b, where


def _fast_reads(raw: bytes) -> list[Any]:
    """The notifications of `raw` the fast path decodes itself (not handed to asyncua)."""
    handed: list[Any] = []
    original = ua_binary.extensionobject_from_binary

    def counting(data: Buffer) -> Any:
        out = original(data)
        handed.append(out)
        return out

    ua_binary.extensionobject_from_binary = counting
    try:
        notifications = speedups.decode_publish_response(Buffer(raw)).Parameters
    finally:
        ua_binary.extensionobject_from_binary = original
    data = notifications.NotificationMessage.NotificationData or []
    return [n for n in data if not any(n is h for h in handed)]


def test_publish_responses_decode_exactly_as_asyncua_decodes_them() -> None:
    corpus = _corpus()
    fast = [_same(raw) for raw in corpus]
    # The scalar ones are read by the fast path, the rest (arrays, other types, picoseconds,
    # diagnostic infos) by asyncua, events and status changes always by asyncua.
    n = len(_fast_values())
    assert fast[0] and all(fast[1 : 1 + n])
    assert not any(fast[1 + n : 1 + n + len(_data_values(_OTHERS)) + 1])  # + picoseconds
    mixed = _fast_reads(corpus[-4])
    assert [type(x) for x in mixed] == [ua.DataChangeNotification]
    assert len(_fast_reads(corpus[-3])) == 1  # the second one; the one with diagnostics not


def test_truncated_or_inconsistent_responses_fail_as_asyncua_fails() -> None:
    raw = _response([ua.DataChangeNotification(_items(_fast_values()))])
    for cut in (len(raw) - 1, len(raw) // 2, 40):
        assert _outcome(_decode_generic, raw[:cut]) == _outcome(_decode_fast, raw[:cut])
    # A body length shorter than its content: asyncua's error, not a silent over-read.
    at = raw.index(b"\x01\x00\x2b\x03\x01") + 5
    short = raw[:at] + struct.pack("<i", 10) + raw[at + 4 :]
    assert _outcome(_decode_generic, short) == _outcome(_decode_fast, short)


def _decode_generic(raw: bytes) -> str:
    return repr(ua_binary.struct_from_binary(ua.PublishResponse, Buffer(raw)))


def _decode_fast(raw: bytes) -> str:
    return repr(speedups.decode_publish_response(Buffer(raw)))


def test_responses_of_a_real_server_decode_exactly_as_asyncua_decodes_them(
    opcua_server: OpcUaTestServer,
) -> None:
    captured: list[bytes] = []

    def capture(objtype: Any, data: Any) -> Any:
        if objtype is ua.PublishResponse:
            captured.append(bytes(data._data[data._cur_pos : data._cur_pos + data._size]))
        return speedups._struct_from_binary(objtype, data)

    async def main() -> None:
        ua_session.struct_from_binary = capture
        try:
            async with Client(opcua_server.endpoint, timeout=5) as client:
                sub = await client.create_subscription(20, queue_maxsize=0)
                nodes = [client.get_node(f"ns=2;s=Line1.{n}") for n in opcua_server.values]
                await sub.subscribe_data_change(nodes, sampling_interval=0)
                for i in range(5):
                    await asyncio.to_thread(opcua_server.set, "Speed", 13.5 + i)
                    await asyncio.to_thread(opcua_server.set, "Name", f"Line {i}")
                    await asyncio.to_thread(
                        opcua_server.set, "Count", ua.Variant(1001 + i, ua.VariantType.UInt32),
                        source_ts=_T0 + timedelta(seconds=i),
                    )  # fmt: skip
                    await asyncio.sleep(0.05)
                await wait_until_async(
                    lambda: sum(_notified(r) for r in captured) >= 5 * 3 + 5, what="15 changes"
                )
        finally:
            speedups.install()

    asyncio.run(main())
    assert all(_same(raw) for raw in captured if _notified(raw))


def _notified(raw: bytes) -> int:
    """How many data changes a captured response carries."""
    data = ua_binary.struct_from_binary(ua.PublishResponse, Buffer(raw))
    return sum(len(getattr(n, "MonitoredItems", []))
               for n in data.Parameters.NotificationMessage.NotificationData or [])  # fmt: skip
