"""Pipelined Modbus reads (`max_outstanding_requests` above 1) against real pymodbus servers.

The simulator's server answers requests sent back to back in order, as PLCs that accept several
outstanding transactions do; stock pymodbus loses all but one of the requests that arrive
together, which shows that the requests really were in flight at once and that a lost reply is
an error, never another request's value.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from edge_agent.drivers.modbus.driver import ModbusDriver
from edge_agent.drivers.registry import make_driver
from tests.edge.conftest import ModbusTestServer
from tests.edge.test_modbus_driver import EXPECTED, TAGS, bound, device

POLLS = 10


def _expected(tag: str) -> Any:
    value = EXPECTED[tag]
    return pytest.approx(value) if isinstance(value, float) else value


def _unit1_peak(driver: ModbusDriver) -> int:
    connection = driver._links[0]._connection  # unit 1: four requests per poll
    assert connection is not None
    return connection.peak_in_flight


@pytest.mark.parametrize("depth", [1, 4])
def test_pipelined_polls_read_every_value_with_its_own_reply_time(depth: int) -> None:
    server = ModbusTestServer(pipelined=True)
    server.start()
    tags = bound(TAGS)
    driver = make_driver(device(server.port, max_outstanding_requests=depth), tags)
    assert isinstance(driver, ModbusDriver)

    async def main() -> None:
        for _ in range(POLLS):
            sent = datetime.now(UTC)
            readings = await driver.read_once()
            done = datetime.now(UTC)
            assert [r for r in readings if r.error] == []
            for r in readings:
                assert r.value == _expected(r.tag), r.tag
                assert sent < r.ts < done, r.tag  # a reply time of this poll
            stamps = {r.tag: r.ts for r in readings}
            for req in driver.plan:  # the tags of one request share its reply's time
                assert len({stamps[tags[p.index].tag] for p in req.tags}) == 1
        assert _unit1_peak(driver) == depth  # one connection, `depth` requests on it at once
        await driver.close()

    try:
        asyncio.run(main())
    finally:
        server.stop()
    health = driver.health()
    assert health.requests == POLLS * len(driver.plan)
    assert health.reads == POLLS * len(TAGS) and health.read_errors == 0


def test_a_server_that_loses_pipelined_requests_costs_errors_never_wrong_values(
    modbus_server: ModbusTestServer,
) -> None:
    # Stock pymodbus answers one request of those that arrive together: the others time out.
    driver = make_driver(
        device(modbus_server.port, max_outstanding_requests=4, timeout_s=0.3, retries=0),
        bound(TAGS),
    )
    assert isinstance(driver, ModbusDriver)

    async def main() -> list[Any]:
        readings = []
        for _ in range(POLLS):
            readings += await driver.read_once()
        await driver.close()
        return readings

    readings = asyncio.run(main())
    assert len(readings) == POLLS * len(TAGS)
    for r in readings:
        assert r.error is not None or r.value == _expected(r.tag), r
    # each segment's last request is answered: unit 1 keeps delivering values
    assert any(r.error is None for r in readings if r.tag != "other_unit")


def test_a_pipelining_driver_serves_one_event_loop_after_another() -> None:
    # Read and closed in one loop (as `mes edge check` does), read again in another.
    server = ModbusTestServer(pipelined=True)
    server.start()
    driver = make_driver(device(server.port, max_outstanding_requests=4), bound(TAGS))

    async def poll() -> dict[str, Any]:
        readings = await driver.read_once()
        await driver.close()
        assert [r for r in readings if r.error] == []
        return {r.tag: r.value for r in readings}

    try:
        first = asyncio.run(poll())
        second = asyncio.run(poll())
    finally:
        server.stop()
    assert first == second and first["count"] == EXPECTED["count"]
