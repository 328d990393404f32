"""Decode Modbus registers and bits into tag values: every type, byte and word order, scale.

Registers arrive as 16-bit integers as the wire carries them (big-endian bytes). `byte_order:
little` swaps the two bytes of each register; `word_order: little` puts the least significant
register first. For the 32-bit value 0xAABBCCDD the four combinations read:

    byte big,    word big:    [0xAABB, 0xCCDD]   ("ABCD", the Modbus convention)
    byte big,    word little: [0xCCDD, 0xAABB]   ("CDAB", common on PLCs)
    byte little, word big:    [0xBBAA, 0xDDCC]   ("BADC")
    byte little, word little: [0xDDCC, 0xBBAA]   ("DCBA")

Strings take two characters per register, first character in the high byte (byte_order big);
trailing NULs and spaces are removed.

`reply_decoder` is the driver's fast path: built once per request of the read plan, it takes
the reply's data bytes as they came off the wire and decodes every tag of the request with one
`struct` unpack for the numbers in Modbus order (big/big) that do not overlap, and
`decode_registers` for the rest, so both paths give the values of the golden cases.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence

from edge_agent.drivers.modbus.config import ByteOrder, ModbusTag, ModbusType, WordOrder

Value = bool | int | float | str

_STRUCT = {
    ModbusType.INT16: struct.Struct(">h"),
    ModbusType.UINT16: struct.Struct(">H"),
    ModbusType.INT32: struct.Struct(">i"),
    ModbusType.UINT32: struct.Struct(">I"),
    ModbusType.INT64: struct.Struct(">q"),
    ModbusType.UINT64: struct.Struct(">Q"),
    ModbusType.FLOAT32: struct.Struct(">f"),
    ModbusType.FLOAT64: struct.Struct(">d"),
}


def _swap(word: int) -> int:
    return ((word & 0xFF) << 8) | (word >> 8)


def decode_registers(words: Sequence[int], tag: ModbusTag) -> Value:
    """The value of `tag` from exactly its `tag.count` registers."""
    if len(words) != tag.count:
        raise ValueError(f"{tag.type.value} needs {tag.count} registers, got {len(words)}")
    if tag.byte_order is ByteOrder.LITTLE:
        words = [_swap(w) for w in words]
    if tag.type is ModbusType.BIT:
        assert tag.bit is not None
        return bool((words[0] >> tag.bit) & 1)
    if tag.word_order is WordOrder.LITTLE:
        words = list(reversed(words))
    raw = b"".join(w.to_bytes(2, "big") for w in words)
    if tag.type is ModbusType.STRING:
        return raw.decode("latin-1").rstrip("\x00 ")
    (value,) = _STRUCT[tag.type].unpack(raw)
    return scaled(value, tag)


def scaled(value: int | float, tag: ModbusTag) -> int | float:
    """`value * scale + offset`; an integer stays an integer when neither is set."""
    if tag.scale == 1.0 and tag.offset == 0.0:
        return value
    return value * tag.scale + tag.offset


def decode(reply: Sequence[int] | Sequence[bool], offset: int, tag: ModbusTag) -> Value:
    """The value of `tag` at `offset` in a read reply (registers, or bits of a bit table)."""
    if tag.table.is_bits:
        return bool(reply[offset])
    return decode_registers([int(w) for w in reply[offset : offset + tag.count]], tag)


ReplyDecoder = Callable[[bytes], list[Value]]
_CODE = {t: s.format[1:] for t, s in _STRUCT.items()}


def reply_decoder(placed: Sequence[tuple[int, ModbusTag]], count: int) -> ReplyDecoder:
    """Decode one reply's data bytes (`count` registers or bits) into the values of `placed`
    ((offset in the reply, tag) pairs), in their order."""
    if any(tag.table.is_bits for _, tag in placed):
        offsets = [offset for offset, _ in placed]
        return lambda data: [bool(data[o >> 3] >> (o & 7) & 1) for o in offsets]
    fast: list[int] = []  # indexes into `placed` decoded by the one struct, in address order
    end = 0
    fmt = ">"
    for i, (offset, tag) in sorted(enumerate(placed), key=lambda p: p[1][0]):
        plain = tag.type in _CODE and tag.byte_order is ByteOrder.BIG and (
            tag.word_order is WordOrder.BIG
        )
        if plain and offset >= end:
            fmt += "x" * (2 * (offset - end)) + _CODE[tag.type]
            end = offset + tag.count
            fast.append(i)
    layout = struct.Struct(fmt)
    words = struct.Struct(f">{count}H")
    fast_set = set(fast)
    slow = [(i, offset, tag) for i, (offset, tag) in enumerate(placed) if i not in fast_set]
    scale = [(i, placed[i][1]) for i in fast if placed[i][1].scale != 1 or placed[i][1].offset]
    size = len(placed)
    if not slow and not scale and fast == list(range(size)):
        return lambda data: list(layout.unpack_from(data))

    def decode_reply(data: bytes) -> list[Value]:
        values: list[Value] = [None] * size  # type: ignore[list-item]
        for i, value in zip(fast, layout.unpack_from(data), strict=True):
            values[i] = value
        for i, tag in scale:
            values[i] = scaled(values[i], tag)  # type: ignore[arg-type]
        if slow:
            registers = words.unpack(data)
            for i, offset, tag in slow:
                values[i] = decode_registers(registers[offset : offset + tag.count], tag)
        return values

    return decode_reply
