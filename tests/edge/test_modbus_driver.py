"""The Modbus driver against a real pymodbus server: values, plan, dead units, lost links."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from edge_agent.drivers.base import BoundTag
from edge_agent.drivers.modbus.config import ModbusDevice, ModbusTag
from edge_agent.drivers.modbus.driver import ModbusDriver
from edge_agent.drivers.registry import make_driver
from mes.services.ports import free_port
from tests.edge.conftest import ModbusTestServer, TcpProxy
from tests.edge.drivers_util import Running

TAGS: dict[str, dict[str, Any]] = {
    "count": {"address": 0, "type": "uint16"},
    "delta": {"address": 1, "type": "int16"},
    "speed": {"address": 2, "type": "float32"},
    "position": {"address": 4, "type": "int32", "word_order": "little"},
    "run_bit": {"address": 6, "type": "bit", "bit": 0},
    "fault_bit": {"address": 6, "type": "bit", "bit": 1},
    "name": {"address": 7, "type": "string", "length": 3},
    "total": {"address": 15, "type": "uint64"},
    "temp": {"table": "input", "address": 0, "type": "uint16", "scale": 0.1},
    "minus_one": {"table": "input", "address": 3, "type": "int16"},
    "motor_on": {"table": "coil", "address": 2},
    "door_open": {"table": "discrete", "address": 1},
    "other_unit": {"address": 1, "type": "uint16", "unit_id": 2},
}
EXPECTED = {
    "count": 1234,
    "delta": -5,
    "speed": 12.5,
    "position": -100000,
    "run_bit": True,
    "fault_bit": False,
    "name": "LINE-1",
    "total": 65536,
    "temp": 77.7,
    "minus_one": -1,
    "motor_on": True,
    "door_open": True,
    "other_unit": 43,
}


def device(port: int, **kw: Any) -> ModbusDevice:
    return ModbusDevice.model_validate(
        {"protocol": "modbus", "name": "plc", "host": "127.0.0.1", "port": port, **kw}
    )


def bound(tags: dict[str, dict[str, Any]], machine: str = "m1") -> list[BoundTag]:
    return [BoundTag(machine, name, ModbusTag.model_validate(a)) for name, a in tags.items()]


def test_reads_known_values_of_every_table_and_type(modbus_server: ModbusTestServer) -> None:
    driver = make_driver(device(modbus_server.port), bound(TAGS))

    async def main() -> None:
        readings = await driver.read_once()
        await driver.close()
        got = {r.tag: r.value for r in readings}
        assert all(r.error is None for r in readings), [r for r in readings if r.error]
        assert got.keys() == EXPECTED.keys()
        for name, value in EXPECTED.items():
            assert got[name] == (pytest.approx(value) if isinstance(value, float) else value), name
        assert {r.ts.tzinfo is not None for r in readings} == {True}

    asyncio.run(main())


def test_requests_issued_equal_the_plan(modbus_server: ModbusTestServer) -> None:
    driver = make_driver(device(modbus_server.port, max_gap=10), bound(TAGS))
    assert isinstance(driver, ModbusDriver)
    # holding 0-18 on unit 1, input 0-3, coil 2, discrete 1, holding 1 on unit 2
    assert len(driver.plan) == 5

    async def main() -> None:
        for _ in range(3):
            await driver.read_once()
        await driver.close()

    asyncio.run(main())
    health = driver.health()
    assert health.requests == 3 * len(driver.plan)
    assert health.reads == 3 * len(TAGS) and health.read_errors == 0


def test_a_refused_request_fails_only_its_tags(modbus_server: ModbusTestServer) -> None:
    tags = {"count": TAGS["count"], "beyond": {"address": 500, "type": "uint16"}}
    driver = make_driver(device(modbus_server.port), bound(tags))

    async def main() -> None:
        readings = {r.tag: r for r in await driver.read_once()}
        await driver.close()
        assert readings["count"].value == 1234
        assert readings["beyond"].value is None
        assert "Modbus exception 2" in (readings["beyond"].error or "")

    asyncio.run(main())


def test_a_dead_unit_does_not_delay_another(modbus_server: ModbusTestServer) -> None:
    tags = {"count": TAGS["count"], "ghost": {"address": 0, "type": "uint16", "unit_id": 3}}
    # unit 3 never answers: each of its requests waits out the 5 s timeout
    driver = make_driver(device(modbus_server.port, poll_interval_s=0.05, timeout_s=5), bound(tags))

    async def main() -> None:
        async with Running(driver) as got:
            await got.wait(lambda: len(got.good("count")) >= 5, "unit 1 polled 5 times")
            # all that happened while unit 3's first request was still waiting for its answer
            assert got.readings("ghost") == []
            assert driver.health().consecutive_errors == 0
        # stopping does not wait for the pending request either
        assert [r.value for r in got.good("count")][:5] == [1234] * 5

    asyncio.run(main())


def test_a_dead_device_reports_errors_and_keeps_trying() -> None:
    driver = make_driver(device(free_port(), poll_interval_s=0.05, timeout_s=0.5), bound(TAGS))

    async def main() -> None:
        readings = await driver.read_once()
        assert {r.value for r in readings} == {None}
        assert all("cannot connect" in (r.error or "") for r in readings)
        async with Running(driver) as got:
            await got.wait(lambda: len(got.bad("count")) >= 2, "two failed attempts")
        assert driver.health().connected is False

    asyncio.run(main())


def test_server_restart_is_recovered_without_a_new_driver() -> None:
    server = ModbusTestServer()
    server.start()
    driver = make_driver(
        device(server.port, poll_interval_s=0.05, timeout_s=0.5, backoff_max_s=0.5),
        bound({"count": TAGS["count"]}),
    )

    async def main() -> None:
        async with Running(driver) as got:
            await got.wait(lambda: len(got.good("count")) >= 1, "first value")
            await asyncio.to_thread(server.stop)
            await got.wait(lambda: len(got.bad("count")) >= 1, "errors while the server is down")
            before = len(got.good("count"))
            await asyncio.to_thread(server.start)
            await got.wait(lambda: len(got.good("count")) > before, "values after the restart")
        assert got.good("count")[-1].value == 1234

    try:
        asyncio.run(main())
    finally:
        server.stop()


def test_pulled_cable_is_detected_and_recovered(
    modbus_server: ModbusTestServer, tcp_proxy_factory: Any
) -> None:
    proxy: TcpProxy = tcp_proxy_factory(modbus_server.port)
    driver = make_driver(
        device(proxy.port, poll_interval_s=0.05, timeout_s=0.3, backoff_max_s=0.5,
               reconnect_after_errors=1, retries=0),
        bound({"count": TAGS["count"]}),
    )  # fmt: skip

    async def main() -> None:
        async with Running(driver) as got:
            await got.wait(lambda: len(got.good("count")) >= 1, "first value")
            proxy.cut()  # the socket stays open; nothing comes back
            await got.wait(lambda: len(got.bad("count")) >= 2, "timeouts reported as errors")
            assert "ModbusIOException" in (got.bad("count")[-1].error or "")
            before = len(got.good("count"))
            proxy.restore()
            await got.wait(lambda: len(got.good("count")) > before, "values after reconnecting")

    asyncio.run(main())


def test_each_request_is_stamped_with_its_own_reply(modbus_server: ModbusTestServer) -> None:
    # Four tables on unit 1: four requests in sequence, each reply after the one before.
    tags = bound({k: TAGS[k] for k in ("count", "temp", "motor_on", "door_open")})
    driver = make_driver(device(modbus_server.port), tags)
    assert isinstance(driver, ModbusDriver)

    async def main() -> list[Any]:
        sent = datetime.now(UTC)
        readings = await driver.read_once()
        await driver.close()
        assert all(r.error is None and r.ts > sent for r in readings)
        return readings

    stamps = {r.tag: r.ts for r in asyncio.run(main())}
    times = [stamps[tags[req.tags[0].index].tag] for req in driver.plan]
    assert len(times) == 4
    assert times == sorted(times) and len(set(times)) == 4, times  # not the earliest reply
