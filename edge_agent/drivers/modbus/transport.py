"""Modbus TCP reads on one connection: several requests in flight, replies matched by id.

Our own, for reads only, because pymodbus 3.16's async client holds a lock around every
transaction (one request in flight per connection, whatever the device accepts) and builds a
Python object per register; here a reply is one `bytes` that the codec unpacks at once.

The frame (Modbus Messaging on TCP/IP Implementation Guide v1.0b, 3.1.3): an MBAP header of
transaction id (2 bytes), protocol id (2, always 0), length (2: the bytes that follow) and unit
id (1), then the PDU. A read request's PDU is the function code (1 coils, 2 discrete inputs, 3
holding registers, 4 input registers), the start address and the count (2 bytes each); its
reply is the function code, a byte count and the data. A refusal answers the function code
with its high bit set and one exception code.

Every request gets the next transaction id and a future; one reader task takes frames off the
socket and completes the future of the id the frame carries, stamping it with the moment its
bytes arrived (the reply time a value is stamped with: docs/tag-map.md, "Timestamps"). A reply
whose id has no request waiting (the late answer to a request that timed out) is counted and
dropped. A frame that breaks the protocol (another protocol id, an impossible length, a reply
that does not fit its request) means the stream is out of step: the connection fails every
request in flight and closes, and the driver opens a new one.
"""

from __future__ import annotations

import asyncio
import struct
from datetime import UTC, datetime

from edge_agent.drivers.modbus.config import ModbusTable

FUNCTION_CODE = {
    ModbusTable.COIL: 1,
    ModbusTable.DISCRETE: 2,
    ModbusTable.HOLDING: 3,
    ModbusTable.INPUT: 4,
}
_REQUEST = struct.Struct(">HHHBBHH")  # MBAP (tid, protocol, length=6, unit) + fc, start, count
_MBAP = struct.Struct(">HHHB")
_MAX_LENGTH = 254  # unit id + the largest PDU (253 bytes)


class LinkError(OSError):
    """The connection is unusable (closed, or its stream out of step); open a new one."""


class ModbusRefused(Exception):
    """The unit answered the request with a Modbus exception code."""

    def __init__(self, code: int) -> None:
        super().__init__(f"Modbus exception {code}")
        self.code = code


class ModbusConnection:
    """One TCP connection to a Modbus server; `read` may be awaited by several tasks at once."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._next_tid = 0
        self._pending: dict[int, asyncio.Future[tuple[int, bytes, datetime]]] = {}
        self._closed: Exception | None = None
        self.unmatched_replies = 0
        self.peak_in_flight = 0  # the most requests that waited for a reply at once
        self._task = asyncio.create_task(self._receive(), name="modbus-receive")

    @classmethod
    async def open(cls, host: str, port: int, timeout_s: float) -> ModbusConnection:
        """Connect; raises OSError (or TimeoutError) when the server cannot be reached."""
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout_s)
        return cls(reader, writer)

    @property
    def connected(self) -> bool:
        return self._closed is None

    async def read(
        self, unit: int, table: ModbusTable, start: int, count: int, timeout_s: float
    ) -> tuple[bytes, datetime]:
        """The data bytes of one read reply and the time they arrived.

        Raises ModbusRefused for an exception reply, TimeoutError when no reply came within
        `timeout_s`, LinkError when the connection is (or goes) unusable.
        """
        if self._closed is not None:
            raise LinkError(str(self._closed))
        self._next_tid = tid = self._next_tid % 0xFFFF + 1
        fc = FUNCTION_CODE[table]
        future: asyncio.Future[tuple[int, bytes, datetime]] = (
            asyncio.get_running_loop().create_future()
        )
        self._pending[tid] = future
        self.peak_in_flight = max(self.peak_in_flight, len(self._pending))
        self._writer.write(_REQUEST.pack(tid, 0, 6, unit, fc, start, count))
        try:
            reply_unit, pdu, at = await asyncio.wait_for(future, timeout_s)
        finally:
            self._pending.pop(tid, None)
        if reply_unit != unit or not pdu:
            self._fail(LinkError(f"reply to unit {unit} came from unit {reply_unit}"))
            raise LinkError(str(self._closed))
        if pdu[0] == fc | 0x80 and len(pdu) == 2:
            raise ModbusRefused(pdu[1])
        size = (count + 7) // 8 if table.is_bits else 2 * count
        if pdu[0] != fc or len(pdu) != size + 2 or pdu[1] != size:
            self._fail(LinkError(f"reply does not fit the request (function {pdu[0]})"))
            raise LinkError(str(self._closed))
        return pdu[2:], at

    async def _receive(self) -> None:
        try:
            while True:
                header = await self._reader.readexactly(_MBAP.size)
                tid, protocol, length, unit = _MBAP.unpack(header)
                if protocol != 0 or not 2 <= length <= _MAX_LENGTH:
                    raise LinkError(f"stream out of step (protocol {protocol}, length {length})")
                pdu = await self._reader.readexactly(length - 1)
                future = self._pending.get(tid)
                if future is None or future.done():
                    self.unmatched_replies += 1
                    continue
                future.set_result((unit, pdu, datetime.now(UTC)))
        except asyncio.CancelledError:
            raise
        except (OSError, asyncio.IncompleteReadError) as e:
            self._fail(e if isinstance(e, LinkError) else LinkError(f"connection lost: {e}"))

    def _fail(self, error: Exception) -> None:
        if self._closed is None:
            self._closed = error
        for future in self._pending.values():
            if not future.done():
                future.set_exception(LinkError(str(error)))
        self._writer.close()
        if self._task is not asyncio.current_task():
            self._task.cancel()

    def close(self) -> None:
        """Close the socket; requests still waiting fail with LinkError."""
        self._fail(LinkError("connection closed"))
