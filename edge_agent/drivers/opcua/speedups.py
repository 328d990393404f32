"""A faster path through asyncua for what the agent receives most: data-change notifications.

Two replacements, each giving exactly what asyncua's own code gives and leaving to it whatever
they do not know:

- asyncua decodes each value's variant type with `VariantType(n)`, an Enum call, which costs
  more than the rest of decoding the value. `datatype_to_varianttype` is a table lookup giving
  the same members; types it does not know (custom ones, and invalid numbers) still go through
  asyncua's own function, errors included.
- asyncua decodes a PublishResponse field by field through its generic dataclass decoder:
  more than half of the agent's CPU under `mes bench edge --protocols opcua` (py-spy).
  `decode_publish_response` reads the per-response parts with asyncua's own functions, in the
  same order, but each DataChangeNotification whose items all carry scalar values of the common
  built-in types (no array, no picoseconds) with `struct` over the buffer, building the same
  objects. Anything else in a notification (arrays, other types, event notifications,
  diagnostic infos, picoseconds, another encoding, a length that does not add up) is decoded
  by asyncua from the same bytes, so its results and errors are asyncua's.

`install()` puts both where asyncua looks them up at each call.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from datetime import datetime
from typing import Any

from asyncua import ua
from asyncua.client import ua_session
from asyncua.common.utils import Buffer
from asyncua.ua import ua_binary, uatypes

_MEMBERS: dict[int, ua.VariantType] = {t.value: t for t in ua.VariantType}


def datatype_to_varianttype(int_type: int | ua.NodeId) -> ua.VariantType | ua.VariantTypeCustom:
    """`asyncua.ua.datatype_to_varianttype`, by table for the standard types."""
    if type(int_type) is int:
        member = _MEMBERS.get(int_type)
        if member is not None:
            return member
    return uatypes.datatype_to_varianttype(int_type)


# --------------------------------------------------------------------- publish responses

_V = ua.VariantType
# Variant types read with one fixed-size unpack: (member, format); the formats are asyncua's
# own (ua_binary.Primitives), so the Python values are the same.
_FIXED: dict[int, tuple[ua.VariantType, struct.Struct]] = {
    vt.value: (vt, struct.Struct(getattr(ua_binary.Primitives1, vt.name).format))
    for vt in (
        _V.Boolean,
        _V.SByte,
        _V.Byte,
        _V.Int16,
        _V.UInt16,
        _V.Int32,
        _V.UInt32,
        _V.Int64,
        _V.UInt64,
        _V.Float,
        _V.Double,
    )
}
_I32 = struct.Struct("<i")
_U32 = struct.Struct("<I")
_I64 = struct.Struct("<q")
_ITEM = struct.Struct("<IB")  # ClientHandle, DataValue encoding mask
# The ExtensionObject header of a DataChangeNotification as servers send it: four-byte node
# id (namespace 0) of its binary encoding, then "body is a byte string".
_DATA_CHANGE_ID = ua.FourByteNodeId(ua.ObjectIds.DataChangeNotification_Encoding_DefaultBinary)
_DATA_CHANGE = ua_binary.nodeid_to_binary(_DATA_CHANGE_ID) + b"\x01"
_HEADER = len(_DATA_CHANGE) + 4  # + the body's Int32 length

_hints = ua_binary.get_safe_type_hints(ua.PublishResult, {"ua": ua})
_AVAILABLE = _hints["AvailableSequenceNumbers"]
_RESULTS = _hints["Results"]
_DIAGNOSTICS = _hints["DiagnosticInfos"]


class _Fallback(Exception):
    """This notification is not one the fast path reads: asyncua decodes it."""


def decode_publish_response(data: Buffer) -> ua.PublishResponse:
    """`struct_from_binary(ua.PublishResponse, data)`, faster for data-change notifications."""
    p = ua_binary.Primitives
    type_id = ua_binary.nodeid_from_binary(data)
    header = ua_binary.struct_from_binary(ua.ResponseHeader, data)
    subscription_id = p.UInt32.unpack(data)
    available = ua_binary.from_binary(_AVAILABLE, data)
    more = p.Boolean.unpack(data)
    sequence = p.UInt32.unpack(data)
    published = p.DateTime.unpack(data)
    count = p.Int32.unpack(data)
    notifications = None if count == -1 else [_notification(data) for _ in range(count)]
    message = ua.NotificationMessage(sequence, published, notifications)
    results = ua_binary.from_binary(_RESULTS, data)
    diagnostics = ua_binary.from_binary(_DIAGNOSTICS, data)
    return ua.PublishResponse(
        type_id,
        header,
        ua.PublishResult(subscription_id, available, more, message, results, diagnostics),
    )


def _notification(data: Buffer) -> Any:
    """One ExtensionObject of NotificationData (asyncua's `extensionobject_from_binary`)."""
    raw, pos, left = data._data, data._cur_pos, data._size
    if (
        type(raw) is bytes
        and left >= _HEADER
        and raw.startswith(_DATA_CHANGE, pos)
        and ua.extension_objects_by_typeid.get(_DATA_CHANGE_ID) is ua.DataChangeNotification
    ):
        (length,) = _I32.unpack_from(raw, pos + _HEADER - 4)
        if 1 <= length <= left - _HEADER:
            start = pos + _HEADER
            try:
                decoded = _data_change(raw, start, start + length)
            except (_Fallback, struct.error, IndexError):  # asyncua's decoder says what is wrong
                pass
            else:
                data.skip(_HEADER + length)
                return decoded
    return ua_binary.extensionobject_from_binary(data)


def _data_change(raw: bytes, pos: int, end: int) -> ua.DataChangeNotification:
    """A DataChangeNotification body in raw[pos:end], or `_Fallback`."""
    (count,) = _I32.unpack_from(raw, pos)
    pos += 4
    if count < 0:
        raise _Fallback
    encoding = ua_binary.get_string_encoding()
    # Variants, status codes and data values are built without their constructors, whose
    # `__post_init__` checks cost more than the rest of decoding and change nothing for these
    # values: the objects get the same fields (the tests compare every one).
    new, good = object.__new__, ua.StatusCodes.Good
    variant, data_value, status_code = ua.Variant, ua.DataValue, ua.StatusCode
    item = ua.MonitoredItemNotification
    fixed = _FIXED
    # The items of one notification mostly share their timestamps (sampled together): one
    # datetime per distinct value, which is immutable, so sharing it is not observable.
    stamps: dict[int, datetime] = {}
    items = []
    for _ in range(count):
        handle, mask = _ITEM.unpack_from(raw, pos)
        pos += 5
        if mask & 0xF0:  # picoseconds (or bits asyncua ignores): asyncua's order, not ours
            raise _Fallback
        value = None
        if mask & 1:
            kind = raw[pos]
            pos += 1
            spec = fixed.get(kind)
            if spec is not None:
                vtype, fmt = spec
                (v,) = fmt.unpack_from(raw, pos)
                pos += fmt.size
            elif kind == 12 or kind == 15:  # String, ByteString
                vtype = _V.String if kind == 12 else _V.ByteString
                (n,) = _I32.unpack_from(raw, pos)
                pos += 4
                if n == -1:
                    v = None
                else:
                    if n < 0 or pos + n > end:
                        raise _Fallback
                    v = raw[pos : pos + n]
                    pos += n
                    if kind == 12:
                        v = v.decode(encoding, errors="surrogateescape")
            elif kind == 13:  # DateTime
                vtype = _V.DateTime
                v = _stamp(raw, pos, stamps)
                pos += 8
            elif kind == 19:  # StatusCode
                vtype = _V.StatusCode
                v = new(status_code)
                v.value = _U32.unpack_from(raw, pos)[0]
                pos += 4
            elif kind == 0:  # Null
                vtype, v = _V.Null, None
            else:  # arrays, other types
                raise _Fallback
            value = new(variant)
            value.Value, value.VariantType, value.Dimensions, value.is_array = v, vtype, None, False
        status = new(status_code)
        status.value = good
        if mask & 2:
            status.value = _U32.unpack_from(raw, pos)[0]
            pos += 4
        source: datetime | None = None
        server: datetime | None = None
        if mask & 4:
            source = _stamp(raw, pos, stamps)
            pos += 8
        if mask & 8:
            server = _stamp(raw, pos, stamps)
            pos += 8
        if pos > end:
            raise _Fallback
        if value is None:  # no variant: the constructor makes the null one asyncua makes
            dv = data_value(None, status, source, server)
        else:
            dv = new(data_value)
            dv.Encoding, dv.Value, dv.StatusCode = 0, value, status
            dv.SourceTimestamp, dv.ServerTimestamp = source, server
            dv.SourcePicoseconds = dv.ServerPicoseconds = None
        items.append(item(handle, dv))
    # DiagnosticInfos: only none (asyncua reads a null list as an empty one).
    if pos + 4 > end or _I32.unpack_from(raw, pos)[0] not in (0, -1):
        raise _Fallback
    return ua.DataChangeNotification(items, [])


def _stamp(raw: bytes, pos: int, stamps: dict[int, datetime]) -> datetime:
    """The DateTime at raw[pos], as asyncua converts it, once per distinct value in `stamps`."""
    (ticks,) = _I64.unpack_from(raw, pos)
    stamp = stamps.get(ticks)
    if stamp is None:
        stamp = stamps[ticks] = ua.win_epoch_to_datetime(ticks)
    return stamp


def _struct_from_binary(objtype: Any, data: Any) -> Any:
    """asyncua's `struct_from_binary` for the client session, publish responses faster."""
    if objtype is ua.PublishResponse and type(data) is Buffer:
        return decode_publish_response(data)
    return ua_binary.struct_from_binary(objtype, data)


_PATCHES: tuple[tuple[Any, str, Callable[..., Any]], ...] = (
    (ua, "datatype_to_varianttype", datatype_to_varianttype),
    (ua_session, "struct_from_binary", _struct_from_binary),
)


def install() -> None:
    """Use this module's functions in asyncua's client decoder (idempotent)."""
    for module, name, function in _PATCHES:
        setattr(module, name, function)
