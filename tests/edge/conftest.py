"""Real PLC protocol servers for the driver tests: pymodbus and asyncua, on free loopback ports.

Each server runs on its own event loop in a background thread, so a test's own loop (the driver
under test) talks to it over real TCP, and a test can stop it and start it again on the same
port. `TcpProxy` sits between a driver and a server to cut the line without closing it (a
pulled cable: the driver's socket stays open and nothing comes back).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from asyncua import Server, ua
from asyncua.crypto import cert_gen
from asyncua.crypto.permission_rules import User, UserRole
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import ExtendedKeyUsageOID
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from mes.services.ports import LOOPBACK, free_port, wait_for_port
from mes.sim.modbus_pipelined import PipelinedModbusTcpServer

# pymodbus and asyncua log every refused request and lost client at ERROR: expected here.
for _name in ("pymodbus", "asyncua"):
    logging.getLogger(_name).setLevel(logging.CRITICAL)


class LoopThread:
    """An event loop running in a daemon thread; `call` runs a coroutine on it and waits."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coro: Coroutine[Any, Any, Any], timeout: float = 30) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        async def _cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.call(_cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


# ------------------------------------------------------------------------------------ Modbus

# The values every Modbus test reads: units 1 and 2 of one server. Unit 3 never answers (like a
# dead unit behind a gateway): its requests hang until the client gives up.
MODBUS_UNIT1_HOLDING = [
    1234,  # 0: uint16 1234
    0xFFFB,  # 1: int16 -5
    0x4148, 0x0000,  # 2-3: float32 12.5 (ABCD)
    0x7960, 0xFFFE,  # 4-5: int32 -100000 (CDAB)
    0x8001,  # 6: status word, bits 0 and 15
    0x4C49, 0x4E45, 0x2D31,  # 7-9: string "LINE-1"
    0, 0, 0, 0, 0,  # 10-14 unused
    0x0000, 0x0000, 0x0001, 0x0000,  # 15-18: uint64 65536 (ABCD)
]  # fmt: skip
MODBUS_UNIT1_INPUT = [777, 0, 0, 0xFFFF]
MODBUS_UNIT1_COILS = [True, False, True]
MODBUS_UNIT1_DISCRETE = [False, True]
MODBUS_UNIT2_HOLDING = [42, 43]


async def _never_answer(*_: Any) -> None:
    await asyncio.sleep(3600)


def _sim_device(
    unit: int, holding: list[int], inputs: list[int], coils: list[bool], discrete: list[bool],
    dead: bool = False,
) -> SimDevice:  # fmt: skip
    return SimDevice(
        unit,
        action=_never_answer if dead else None,
        simdata=(
            [SimData(0, values=coils, datatype=DataType.BITS)],
            [SimData(0, values=discrete, datatype=DataType.BITS)],
            [SimData(0, values=holding, datatype=DataType.REGISTERS)],
            [SimData(0, values=inputs, datatype=DataType.REGISTERS)],
        ),
    )


class ModbusTestServer:
    """A pymodbus TCP server: units 1 and 2 hold the MODBUS_* values, unit 3 is dead.
    `pipelined`: the simulator's server, which answers requests sent back to back (stock
    pymodbus loses all but one of the requests that arrive together)."""

    def __init__(self, port: int | None = None, *, pipelined: bool = False) -> None:
        self.host = LOOPBACK
        self.port = port or free_port()
        self._kind = PipelinedModbusTcpServer if pipelined else ModbusTcpServer
        self._loop: LoopThread | None = None
        self._server: ModbusTcpServer | None = None

    def start(self) -> None:
        self._loop = LoopThread(f"modbus-{self.port}")
        devices = [
            _sim_device(
                1, MODBUS_UNIT1_HOLDING, MODBUS_UNIT1_INPUT, MODBUS_UNIT1_COILS,
                MODBUS_UNIT1_DISCRETE,
            ),
            _sim_device(2, MODBUS_UNIT2_HOLDING, [0], [False], [False]),
            _sim_device(3, [0], [0], [False], [False], dead=True),
        ]  # fmt: skip

        async def serve() -> ModbusTcpServer:
            server = self._kind(devices, address=(self.host, self.port))
            await server.serve_forever(background=True)
            return server

        self._server = self._loop.call(serve())
        assert wait_for_port(self.port), "modbus server did not listen"

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._server is not None:
            self._loop.call(self._server.shutdown())
        self._loop.close()
        self._loop = self._server = None


@pytest.fixture
def modbus_server() -> Iterator[ModbusTestServer]:
    server = ModbusTestServer()
    server.start()
    yield server
    server.stop()


class TcpProxy:
    """Forwards loopback TCP to `target_port`; `cut()` silently stops forwarding both ways
    while keeping every socket open (a pulled cable), `restore()` forwards again."""

    def __init__(self, target_port: int) -> None:
        self.port = free_port()
        self._target = target_port
        self._cut = threading.Event()
        self._loop = LoopThread(f"proxy-{self.port}")
        self._server = self._loop.call(asyncio.start_server(self._handle, LOOPBACK, self.port))

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(LOOPBACK, self._target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                if not self._cut.is_set():
                    dst.write(data)
                    await dst.drain()
        except OSError:
            pass
        finally:
            dst.close()

    def cut(self) -> None:
        self._cut.set()

    def restore(self) -> None:
        self._cut.clear()

    def close(self) -> None:
        self._server.close()
        self._loop.close()


@pytest.fixture
def tcp_proxy_factory() -> Iterator[Any]:
    made: list[TcpProxy] = []

    def make(target_port: int) -> TcpProxy:
        made.append(TcpProxy(target_port))
        return made[-1]

    yield make
    for p in made:
        p.close()


# ------------------------------------------------------------------------------------ OPC UA

OPCUA_NS = "urn:mes:test"
OPCUA_VALUES: dict[str, Any] = {
    "Speed": 12.5,
    "Running": True,
    "StateCode": ua.Variant(6, ua.VariantType.Int32),
    "Name": "Line 1",
    "Count": ua.Variant(1000, ua.VariantType.UInt32),
}


@dataclass(frozen=True)
class CertFiles:
    """A certificate (DER) and its private key (PEM), and the application URI inside."""

    cert: Path
    key: Path
    uri: str


def make_certificate(folder: Path, name: str, uri: str, usage: Any) -> CertFiles:
    key = cert_gen.generate_private_key()
    cert = cert_gen.generate_self_signed_app_certificate(
        key, name, {}, [cert_gen.x509.UniformResourceIdentifier(uri),
                        cert_gen.x509.DNSName("localhost")], extended=[usage], days=2,
    )  # fmt: skip
    files = CertFiles(folder / f"{name}.der", folder / f"{name}.pem", uri)
    files.cert.write_bytes(cert.public_bytes(Encoding.DER))
    files.key.write_bytes(cert_gen.dump_private_key_as_pem(key))
    return files


class _Users:
    """Accepts exactly the given username/password pairs (and no anonymous session)."""

    def __init__(self, users: dict[str, str]) -> None:
        self._users = users

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:  # fmt: skip
        if username is not None and self._users.get(username) == password:
            return User(role=UserRole.User)
        return None


class OpcUaTestServer:
    """An asyncua server with object Line1 and the OPCUA_VALUES variables (ns=2;s=Line1.<name>).

    `secure` makes it accept only Basic256Sha256 SignAndEncrypt with that server certificate;
    `users` makes it require one of those username/password pairs.
    """

    def __init__(
        self, port: int | None = None, *, secure: CertFiles | None = None,
        users: dict[str, str] | None = None,
    ) -> None:  # fmt: skip
        self.port = port or free_port()
        self.endpoint = f"opc.tcp://{LOOPBACK}:{self.port}/mes/"
        self._secure = secure
        self._users = users
        self._loop: LoopThread | None = None
        self._server: Server | None = None
        self.values = dict(OPCUA_VALUES)

    def start(self) -> None:
        self._loop = LoopThread(f"opcua-{self.port}")
        self._server = self._loop.call(self._start())
        assert wait_for_port(self.port), "opcua server did not listen"

    async def _start(self) -> Server:
        server = Server(user_manager=_Users(self._users) if self._users else None)
        await server.init()
        server.set_endpoint(self.endpoint)
        if self._secure:
            await server.load_certificate(str(self._secure.cert))
            await server.load_private_key(str(self._secure.key))
            await server.set_application_uri(self._secure.uri)
            server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
        if self._users:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        idx = await server.register_namespace(OPCUA_NS)
        line = await server.nodes.objects.add_object(ua.NodeId("Line1", idx), "Line1")
        for name, value in self.values.items():
            await line.add_variable(ua.NodeId(f"Line1.{name}", idx), name, value)
        await server.start()
        return server

    def set(self, name: str, value: Any, *, source_ts: datetime | None = None) -> None:
        """Write a variable's value on the server (subscribers see a data change); with
        `source_ts`, the value carries that SourceTimestamp, as a PLC's own clock would."""
        assert self._loop is not None and self._server is not None
        self.values[name] = value
        node = self._server.get_node(f"ns=2;s=Line1.{name}")
        if source_ts is not None:
            variant = value if isinstance(value, ua.Variant) else ua.Variant(value)
            value = ua.DataValue(variant, SourceTimestamp=source_ts,
                                 ServerTimestamp=datetime.now(UTC))  # fmt: skip
        self._loop.call(node.write_value(value))

    def stop(self) -> None:
        if self._loop is None:
            return
        if self._server is not None:
            self._loop.call(self._server.stop())
        self._loop.close()
        self._loop = self._server = None


@pytest.fixture
def opcua_server() -> Iterator[OpcUaTestServer]:
    server = OpcUaTestServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, CertFiles]:
    """Self-signed certificates for a test server and the agent's client."""
    return {
        "server": make_certificate(tmp_path, "server", "urn:mes:test:server",
                                   ExtendedKeyUsageOID.SERVER_AUTH),
        "client": make_certificate(tmp_path, "client", "urn:mes:test:agent",
                                   ExtendedKeyUsageOID.CLIENT_AUTH),
    }  # fmt: skip
