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
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

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
