"""The simulated machines over Modbus TCP: one pymodbus server, one unit id per machine.

Each tick the runner hands the model's snapshots to `update`, which encodes them into one
register image per table and machine (the layout of `layout.py`). The pymodbus datastore is
filled from those images only when a request arrives, through the device's documented
`action` hook, so a tick costs one encode per machine and nothing per register.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

from pymodbus.constants import ExcCodes
from pymodbus.simulator import DataType, SimData, SimDevice

from mes.sim.layout import (
    BASE_TAGS,
    EXTRA_BASE_ADDRESS,
    HOLDING_COUNT,
    DType,
    Table,
    input_count,
    modbus_unit,
)
from mes.sim.modbus_pipelined import PipelinedModbusTcpServer
from mes.sim.model import Snapshot

# Function code -> table it reads or writes (Modbus application protocol, section 6).
_TABLE_OF_FUNCTION = {
    1: Table.COIL, 5: Table.COIL, 15: Table.COIL,
    2: Table.DISCRETE,
    3: Table.HOLDING, 6: Table.HOLDING, 16: Table.HOLDING, 22: Table.HOLDING, 23: Table.HOLDING,
    4: Table.INPUT,
}
_HOLDING_TAGS = [t for t in BASE_TAGS if Table.HOLDING in t.tables]
_INPUT_TAGS = [t for t in BASE_TAGS if Table.INPUT in t.tables]
_BIT_TAGS = [t for t in BASE_TAGS if Table.DISCRETE in t.tables]


def _holding_image(s: Snapshot) -> list[int]:
    regs = [0] * HOLDING_COUNT
    for tag in _HOLDING_TAGS:
        value = int(getattr(s, tag.field))
        if tag.dtype is DType.UINT32:
            regs[tag.address] = value >> 16
            regs[tag.address + 1] = value & 0xFFFF
        else:
            regs[tag.address] = value
    return regs


def _input_image(s: Snapshot, extra_tags: int) -> list[int]:
    floats = [0.0] * (EXTRA_BASE_ADDRESS // 2)
    for tag in _INPUT_TAGS:
        floats[tag.address // 2] = getattr(s, tag.field)
    floats.extend(s.extras[:extra_tags])
    n = len(floats)
    # float32 big-endian, high word first: pack as one byte string, reread as registers.
    return list(struct.unpack(f">{2 * n}H", struct.pack(f">{n}f", *floats)))


def _bit_image(s: Snapshot) -> list[int]:
    # pymodbus keeps bits packed 16 to a register, bit address n in bit n (LSB first).
    word = 0
    for tag in _BIT_TAGS:
        if getattr(s, tag.field):
            word |= 1 << tag.address
    return [word]


class ModbusSim:
    """A Modbus TCP server for the machines at `indexes`; `update` publishes a tick."""

    def __init__(self, indexes: Sequence[int], *, extra_tags: int, host: str, port: int) -> None:
        self.indexes = list(indexes)
        self.host = host
        self.port = port
        self._extra_tags = extra_tags
        self._images: dict[int, dict[Table, list[int]]] = {
            i: {
                Table.HOLDING: [0] * HOLDING_COUNT,
                Table.INPUT: [0] * input_count(extra_tags),
                Table.COIL: [0],
                Table.DISCRETE: [0],
            }
            for i in self.indexes
        }
        self._server: PipelinedModbusTcpServer | None = None

    def update(self, snapshots: Sequence[Snapshot]) -> None:
        """Show the machines' current snapshots (indexed by machine index)."""
        for i, images in self._images.items():
            s = snapshots[i]
            images[Table.HOLDING] = _holding_image(s)
            images[Table.INPUT] = _input_image(s, self._extra_tags)
            images[Table.COIL] = images[Table.DISCRETE] = _bit_image(s)

    def _device(self, index: int) -> SimDevice:
        images = self._images[index]

        async def fill(
            function_code: int,
            _start: int,
            _address: int,
            _count: int,
            registers: list[int],
            _set_values: list[int] | list[bool] | None,
        ) -> ExcCodes | None:
            image = images[_TABLE_OF_FUNCTION[function_code]]
            registers[: len(image)] = image
            return None

        def block(count: int) -> list[SimData]:
            return [SimData(0, count=count, values=0, datatype=DataType.REGISTERS, readonly=True)]

        def bits() -> list[SimData]:
            values = [False] * 16
            return [SimData(0, values=values, datatype=DataType.BITS, readonly=True)]

        return SimDevice(
            id=modbus_unit(index),
            simdata=(bits(), bits(), block(HOLDING_COUNT), block(input_count(self._extra_tags))),
            action=fill,
        )

    async def start(self) -> None:
        """Listen on host:port (the same port again after `stop`)."""
        devices = [self._device(i) for i in self.indexes]
        self._server = PipelinedModbusTcpServer(devices, address=(self.host, self.port))
        await self._server.serve_forever(background=True)

    async def stop(self) -> None:
        """Stop listening and drop every client connection."""
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
