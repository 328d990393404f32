"""Both protocols show the model: real pymodbus and asyncua clients against a running `mes sim`."""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from asyncua import Client
from pymodbus.client import AsyncModbusTcpClient

from mes.sim.config import SimConfig
from mes.sim.handle import SimulatorHandle
from mes.sim.layout import (
    BASE_TAGS,
    HOLDING_COUNT,
    DType,
    Table,
    extra_address,
    extra_name,
    input_count,
    machine_code,
    modbus_unit,
    opcua_node_id,
)

MACHINES = 3
EXTRA = 4


def decode(regs: list[int], address: int, dtype: DType) -> float | int:
    """A tag from registers, per the layout: 32-bit values high word first, big-endian bytes."""
    if dtype is DType.UINT16:
        return regs[address]
    raw = struct.pack(">HH", regs[address], regs[address + 1])
    return struct.unpack(">f" if dtype is DType.FLOAT32 else ">I", raw)[0]


def expected(snap: dict[str, Any]) -> dict[str, Any]:
    """Tag name -> value the machine should show, from a handle snapshot."""
    out = {t.name: snap[t.field] for t in BASE_TAGS}
    out.update({extra_name(k): v for k, v in enumerate(snap["extras"])})
    return out


def check(read: dict[str, Any], want: dict[str, Any]) -> None:
    assert read.keys() == want.keys()
    for name, value in want.items():
        if isinstance(value, float):
            assert read[name] == pytest.approx(value, rel=1e-6, abs=1e-6), name
        else:
            assert read[name] == value, name


async def read_modbus(port: int, index: int) -> dict[str, Any]:
    client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=3, retries=0)
    await client.connect()
    try:
        unit = modbus_unit(index)
        hr = (await client.read_holding_registers(0, count=HOLDING_COUNT, device_id=unit)).registers
        ir = await client.read_input_registers(0, count=input_count(EXTRA), device_id=unit)
        di = (await client.read_discrete_inputs(0, count=2, device_id=unit)).bits
        co = (await client.read_coils(0, count=2, device_id=unit)).bits
        assert di[:2] == co[:2], "coils mirror the discrete inputs"
        out: dict[str, Any] = {}
        for t in BASE_TAGS:
            if t.dtype is DType.BOOL:
                out[t.name] = di[t.address]
            else:
                out[t.name] = decode(hr if Table.HOLDING in t.tables else ir.registers, t.address,
                                     t.dtype)
        for k in range(EXTRA):
            out[extra_name(k)] = decode(ir.registers, extra_address(k), DType.FLOAT32)
        refused = await client.write_register(0, 1, device_id=unit)
        assert refused.isError(), "PLC values are read-only"
        return out
    finally:
        client.close()


async def read_opcua(endpoint: str, index: int) -> dict[str, Any]:
    names = [t.name for t in BASE_TAGS] + [extra_name(k) for k in range(EXTRA)]
    async with Client(endpoint, timeout=5) as client:
        assert await client.get_namespace_index("urn:mes:sim") == 2
        nodes = [client.get_node(opcua_node_id(index, n)) for n in names]
        values = await client.read_values(nodes)
        browsed = await client.nodes.objects.get_child(f"2:{machine_code(index)}")
        assert len(await browsed.get_children()) == len(names)
    return dict(zip(names, values, strict=True))


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatorHandle]:
    config = SimConfig(machines=MACHINES, seed=7, speed=20, extra_tags=EXTRA,
                       truth=tmp_path / "truth.jsonl")
    with SimulatorHandle(config) as handle:
        yield handle


def test_both_protocols_show_the_model_at_the_same_instant(sim: SimulatorHandle) -> None:
    assert sim.modbus_port and sim.opcua_endpoint
    for _ in range(2):  # two instants, a second of machine time apart
        asyncio.run(asyncio.sleep(0.5))
        snap = sim.pause()
        snap = sim.snapshot()["machines"]
        for i in range(MACHINES):
            want = expected(snap[machine_code(i)])
            check(asyncio.run(read_modbus(sim.modbus_port, i)), want)
            check(asyncio.run(read_opcua(sim.opcua_endpoint, i)), want)
        sim.resume()


def test_servers_go_down_and_come_back_on_the_same_ports(sim: SimulatorHandle) -> None:
    assert sim.modbus_port and sim.opcua_endpoint
    port, endpoint = sim.modbus_port, sim.opcua_endpoint

    async def modbus_answers() -> bool:
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1, retries=0)
        try:
            return await client.connect()
        finally:
            client.close()

    async def opcua_answers() -> bool:
        try:
            async with Client(endpoint, timeout=2):
                return True
        except (OSError, TimeoutError):
            return False

    before = sim.snapshot()["sim_t"]
    sim.servers_down()
    assert not asyncio.run(modbus_answers())
    assert not asyncio.run(opcua_answers())
    asyncio.run(asyncio.sleep(0.5))
    sim.servers_up()
    assert sim.snapshot()["sim_t"] > before, "the model kept running while the servers were down"
    assert asyncio.run(modbus_answers())
    assert asyncio.run(opcua_answers())
    sim.pause()
    snap = sim.snapshot()["machines"]
    check(asyncio.run(read_modbus(port, 0)), expected(snap[machine_code(0)]))
    check(asyncio.run(read_opcua(endpoint, 0)), expected(snap[machine_code(0)]))
    sim.stop()
    marks = [r for r in sim.truth() if r["type"] in ("servers", "start", "stop")]
    assert [(r["type"], r.get("up")) for r in marks] == [
        ("start", None), ("servers", False), ("servers", True), ("stop", None)
    ]


def test_separate_process_restarts_on_the_same_ports(tmp_path: Path) -> None:
    truth = tmp_path / "truth.jsonl"
    config = SimConfig(machines=2, seed=7, speed=20, extra_tags=EXTRA, truth=truth)
    handle = SimulatorHandle(config, process=True)
    with handle:
        ports = (handle.modbus_port, handle.opcua_port)
        assert handle.modbus_port and handle.opcua_endpoint
        assert asyncio.run(read_modbus(handle.modbus_port, 1))["State"] > 0
        handle.restart()
        assert (handle.modbus_port, handle.opcua_port) == ports
        handle.pause()
        snap = handle.snapshot()["machines"]
        check(asyncio.run(read_opcua(handle.opcua_endpoint, 1)), expected(snap["m002"]))
    runs = [r for r in handle.truth() if r["type"] in ("start", "stop")]
    assert [r["type"] for r in runs] == ["start", "stop", "start", "stop"]


def test_opcua_data_change_subscriptions_see_the_ticks(sim: SimulatorHandle) -> None:
    assert sim.opcua_endpoint
    endpoint = sim.opcua_endpoint

    class Collect:
        def __init__(self) -> None:
            self.values: list[tuple[str, Any]] = []

        def datachange_notification(self, node: Any, val: Any, data: Any) -> None:
            self.values.append((node.nodeid.Identifier, val))

    async def watch() -> list[tuple[str, Any]]:
        handler = Collect()
        async with Client(endpoint, timeout=5) as client:
            sub = await client.create_subscription(50, handler)
            names = ("Temperature", "CycleCounter")
            await sub.subscribe_data_change([client.get_node(opcua_node_id(0, n)) for n in names])
            await asyncio.sleep(2.0)
            await sub.delete()
        return handler.values

    values = asyncio.run(watch())
    temps = [v for n, v in values if n == "m001.Temperature"]
    counters = [v for n, v in values if n == "m001.CycleCounter"]
    assert len(set(temps)) > 5, "the temperature drifts every tick"
    assert len(set(counters)) > 1, "cycles complete at 20x speed within two seconds"
