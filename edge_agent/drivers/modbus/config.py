"""Configuration of a Modbus TCP device and of one Modbus tag address (the tag map's shape).

These models own every default and enum of the Modbus part of a tag map; the planner, the codec
and the driver read them and never re-declare a default.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field, model_validator

from core.config_model import StrictModel

MAX_REGISTERS_PER_READ = 125  # Modbus application protocol spec: read holding/input registers
MAX_BITS_PER_READ = 2000  # ... and read coils / discrete inputs


class ModbusTable(StrEnum):
    """The four Modbus data tables, each read by its own function code."""

    HOLDING = "holding"
    INPUT = "input"
    COIL = "coil"
    DISCRETE = "discrete"

    @property
    def is_bits(self) -> bool:
        return self in (ModbusTable.COIL, ModbusTable.DISCRETE)


class ModbusType(StrEnum):
    """How a tag's registers or bit decode into a value."""

    BOOL = "bool"  # a coil or discrete input
    BIT = "bit"  # one bit (0 = least significant) of a register
    INT16 = "int16"
    UINT16 = "uint16"
    INT32 = "int32"
    UINT32 = "uint32"
    INT64 = "int64"
    UINT64 = "uint64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    STRING = "string"  # `length` registers, two characters each

    @property
    def registers(self) -> int:
        """Registers the type spans (strings: see ModbusTag.count)."""
        return _REGISTERS.get(self, 1)

    @property
    def is_numeric(self) -> bool:
        return self not in (ModbusType.BOOL, ModbusType.BIT, ModbusType.STRING)


_REGISTERS = {
    ModbusType.INT32: 2,
    ModbusType.UINT32: 2,
    ModbusType.FLOAT32: 2,
    ModbusType.INT64: 4,
    ModbusType.UINT64: 4,
    ModbusType.FLOAT64: 4,
}


class ByteOrder(StrEnum):
    """Order of the two bytes inside each register (`big`: the Modbus standard)."""

    BIG = "big"
    LITTLE = "little"


class WordOrder(StrEnum):
    """Order of the registers of a 32/64-bit value (`big`: most significant register first)."""

    BIG = "big"
    LITTLE = "little"



class ModbusTag(StrictModel):
    """Where a tag lives on a Modbus device and how to decode it.

    `address` is 0-based (the address on the wire: a manual's "40001" is holding 0).
    `type` defaults to `bool` on coils and discrete inputs and must be given on registers.
    The value is `raw * scale + offset` for numeric types.
    """

    table: ModbusTable = ModbusTable.HOLDING
    address: int = Field(ge=0, le=65535)
    type: ModbusType
    bit: int | None = Field(default=None, ge=0, le=15)
    length: int | None = Field(default=None, ge=1, le=MAX_REGISTERS_PER_READ)
    byte_order: ByteOrder = ByteOrder.BIG
    word_order: WordOrder = WordOrder.BIG
    scale: float = 1.0
    offset: float = 0.0
    unit_id: int | None = Field(default=None, ge=0, le=255)

    @model_validator(mode="before")
    @classmethod
    def _default_type(cls, data: Any) -> Any:
        if (
            isinstance(data, dict)
            and "type" not in data
            and data.get("table") in ("coil", "discrete")
        ):
            return {**data, "type": ModbusType.BOOL.value}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> ModbusTag:
        t = self.type
        if self.table.is_bits != (t is ModbusType.BOOL):
            raise ValueError(
                f"type {t.value!r} does not fit table {self.table.value!r}: coils and discrete "
                "inputs are type 'bool'; registers take any other type ('bit' for one bit)"
            )
        if (self.bit is None) == (t is ModbusType.BIT):
            raise ValueError("'bit' (0-15) is required with type 'bit' and allowed only with it")
        if (self.length is None) == (t is ModbusType.STRING):
            raise ValueError(
                "'length' (registers) is required with type 'string' and allowed only with it"
            )
        if self.word_order is WordOrder.LITTLE and self.count < 2:
            raise ValueError("word_order applies only to 32- and 64-bit types")
        if self.byte_order is ByteOrder.LITTLE and self.table.is_bits:
            raise ValueError("byte_order applies only to registers")
        if (self.scale != 1.0 or self.offset != 0.0) and not t.is_numeric:
            raise ValueError(f"scale and offset apply only to numeric types, not {t.value!r}")
        if self.address + self.count > 65536:
            raise ValueError(f"address {self.address} + {self.count} runs past the table's end")
        return self

    @property
    def count(self) -> int:
        """Registers (or, on a bit table, bits) the tag occupies."""
        if self.type is ModbusType.STRING:
            assert self.length is not None
            return self.length
        return self.type.registers


class ModbusWorkarounds(StrictModel):
    """Device quirks, in one named place: limits below the protocol's for devices that need it."""

    max_registers_per_request: int = Field(default=MAX_REGISTERS_PER_READ, ge=1, le=125)
    max_bits_per_request: int = Field(default=MAX_BITS_PER_READ, ge=1, le=2000)


class ModbusDevice(StrictModel):
    """A Modbus TCP server (a PLC or a gateway in front of several units).

    Each unit id gets its own TCP connection, so a unit that does not answer never delays
    another. `max_gap` is the largest run of unused registers (bits, on coil and discrete
    tables) that the planner reads across to save a request.
    """

    protocol: Literal["modbus"]
    name: str = Field(min_length=1, max_length=64)
    host: str = Field(min_length=1)
    port: int = Field(default=502, ge=1, le=65535)
    unit_id: int = Field(default=1, ge=0, le=255)
    timeout_s: float = Field(default=1.0, gt=0, le=60)
    poll_interval_s: float = Field(default=1.0, gt=0, le=3600)
    max_gap: int = Field(default=10, ge=0, le=MAX_BITS_PER_READ)
    retries: int = Field(default=1, ge=0, le=10)
    reconnect_after_errors: int = Field(default=2, ge=1, le=100)
    backoff_max_s: float = Field(default=30.0, gt=0, le=3600)
    max_outstanding_requests: int = Field(default=1, ge=1, le=16)
    workarounds: ModbusWorkarounds = ModbusWorkarounds()
