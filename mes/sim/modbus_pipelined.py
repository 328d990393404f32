"""A pymodbus TCP server that answers requests sent back to back (pipelined), in order.

pymodbus 3.16's server handles one frame per `data_received` and keeps the request in one slot
that the next frame overwrites before it is answered: requests that arrive in one TCP segment
are lost (the client times out on them). PLCs and gateways that accept several outstanding
transactions answer each, in order; this server does the same, so the simulator and the tests
can serve an agent that pipelines (`max_outstanding_requests` above 1). The workaround lives
here alone: every frame of a segment is queued and answered by one task per connection.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pymodbus.exceptions import ModbusIOException
from pymodbus.server import ModbusTcpServer
from pymodbus.server.requesthandler import ServerRequestHandler
from pymodbus.transaction import TransactionManager


class _InOrderHandler(ServerRequestHandler):
    """A connection's handler that queues every request of a segment and answers them in order."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self._queue: asyncio.Queue[tuple[Any, Any]] = asyncio.Queue()
        self._worker: asyncio.Task[None] | None = None

    def callback_data(self, data: bytes, addr: tuple | None = None) -> int:
        used = 0
        while used < len(data):
            try:
                n = TransactionManager.callback_data(self, data[used:], addr)
            except ModbusIOException:  # pymodbus answers an undecodable request itself
                return used + super().callback_data(data[used:], addr)
            used += n
            if not self.last_pdu:
                break
            self._queue.put_nowait((self.last_pdu, self.last_addr))
            if self._worker is None:
                self._worker = asyncio.get_running_loop().create_task(self._answer())
        self.last_pdu = None
        return used

    async def _answer(self) -> None:
        while True:
            self.last_pdu, self.last_addr = await self._queue.get()
            await self.handle_request()

    def callback_disconnected(self, exc: Exception | None) -> None:
        if self._worker is not None:
            self._worker.cancel()
        super().callback_disconnected(exc)


class PipelinedModbusTcpServer(ModbusTcpServer):
    """`ModbusTcpServer` whose connections answer pipelined requests (module docstring)."""

    def callback_new_connection(self) -> ServerRequestHandler:
        return _InOrderHandler(self, self.trace_packet, self.trace_pdu, self.trace_connect)
