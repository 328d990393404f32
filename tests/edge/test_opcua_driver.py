"""The OPC UA driver against real asyncua servers: subscribe, poll, restart, security, users."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from asyncua import ua

from edge_agent.drivers.base import BoundTag
from edge_agent.drivers.opcua.config import OpcUaDevice, OpcUaTag
from edge_agent.drivers.opcua.driver import OpcUaDriver
from edge_agent.drivers.registry import make_driver
from tests.edge.conftest import OPCUA_NS, CertFiles, OpcUaTestServer
from tests.edge.drivers_util import Running

TAGS = {
    "speed": {"node_id": "ns=2;s=Line1.Speed", "expected_type": "float"},
    "running": {"node_id": "ns=2;s=Line1.Running", "expected_type": "bool"},
    "state": {"node_id": "ns=2;s=Line1.StateCode", "expected_type": "int"},
    "name": {"node_id": f"nsu={OPCUA_NS};s=Line1.Name"},
    "count": {"node_id": "ns=2;s=Line1.Count"},
}
EXPECTED = {"speed": 12.5, "running": True, "state": 6, "name": "Line 1", "count": 1000}


def device(endpoint: str, **kw: Any) -> OpcUaDevice:
    return OpcUaDevice.model_validate(
        {"protocol": "opcua", "name": "ua", "endpoint": endpoint, "timeout_s": 2, **kw}
    )


def bound(tags: dict[str, dict[str, Any]]) -> list[BoundTag]:
    return [BoundTag("m1", name, OpcUaTag.model_validate(a)) for name, a in tags.items()]


def test_read_once_reads_every_tag_in_one_batch(opcua_server: OpcUaTestServer) -> None:
    driver = make_driver(device(opcua_server.endpoint), bound(TAGS))

    async def main() -> None:
        readings = await driver.read_once()
        await driver.close()
        assert {r.tag: (r.value, r.error) for r in readings} == {
            k: (v, None) for k, v in EXPECTED.items()
        }

    asyncio.run(main())
    assert driver.health().requests == 1


def test_unknown_nodes_and_wrong_types_are_errors_of_their_tags_only(
    opcua_server: OpcUaTestServer,
) -> None:
    tags = {
        "speed": TAGS["speed"],
        "missing": {"node_id": "ns=2;s=Line1.Nope"},
        "wrong": {"node_id": "ns=2;s=Line1.Name", "expected_type": "float"},
    }
    driver = make_driver(device(opcua_server.endpoint), bound(tags))

    async def main() -> None:
        got = {r.tag: r for r in await driver.read_once()}
        await driver.close()
        assert got["speed"].value == 12.5 and got["speed"].error is None
        assert "BadNodeIdUnknown" in (got["missing"].error or "")
        assert "expected float" in (got["wrong"].error or "")

    asyncio.run(main())


def test_subscription_delivers_changes_and_polls_refused_nodes(
    opcua_server: OpcUaTestServer,
) -> None:
    tags = {**TAGS, "missing": {"node_id": "ns=2;s=Line1.Nope"}}
    driver = make_driver(
        device(opcua_server.endpoint, sampling_interval_ms=20, publishing_interval_ms=50,
               poll_interval_s=0.1),
        bound(tags),
    )  # fmt: skip
    assert isinstance(driver, OpcUaDriver)

    async def main() -> None:
        async with Running(driver) as got:
            await got.wait(lambda: all(got.good(t) for t in TAGS), "initial values of every tag")
            assert driver.subscribed == {a["node_id"] for a in TAGS.values()}
            await asyncio.to_thread(opcua_server.set, "Speed", 99.0)
            await got.wait(lambda: got.good("speed")[-1].value == 99.0, "the change")
            # the node the server refused to monitor is read, and fails, every poll
            await got.wait(lambda: len(got.bad("missing")) >= 2, "polled refused node")

    asyncio.run(main())


@pytest.mark.parametrize("timestamps", ["source", "server", "agent"])
def test_changes_carry_the_sources_timestamp_unless_told_otherwise(
    opcua_server: OpcUaTestServer, timestamps: str
) -> None:
    driver = make_driver(
        device(opcua_server.endpoint, sampling_interval_ms=20, publishing_interval_ms=50,
               timestamps=timestamps, max_clock_skew_s=2),
        bound({"speed": TAGS["speed"]}),
    )  # fmt: skip
    plc = datetime.now(UTC) - timedelta(seconds=30)  # a PLC clock 30 s behind ours

    async def main() -> None:
        async with Running(driver) as got:
            await got.wait(lambda: bool(got.good("speed")), "the initial value")
            first = got.good("speed")[0]
            await asyncio.to_thread(opcua_server.set, "Speed", 77.0, source_ts=plc)
            await got.wait(lambda: got.good("speed")[-1].value == 77.0, "the change")
            received = datetime.now(UTC)
            change = got.good("speed")[-1]
        # The initial value is the current one, known to hold now: received time, whatever the
        # SourceTimestamp (when it last changed) says.
        assert first.ts > plc + timedelta(seconds=25)
        if timestamps == "source":
            assert change.ts == plc
        else:  # the server's clock (ours here) or the agent's: the time of the change
            assert received - timedelta(seconds=5) < change.ts <= received
        return None

    asyncio.run(main())
    skew = driver.health()
    assert skew.clock_skew_exceeded == (1 if timestamps == "source" else 0)
    if timestamps == "source":
        assert skew.clock_skew_s is not None and skew.clock_skew_s > 25


def test_poll_mode_reads_in_batches(opcua_server: OpcUaTestServer) -> None:
    driver = make_driver(
        device(opcua_server.endpoint, mode="poll", poll_interval_s=0.05,
               workarounds={"max_nodes_per_read": 2}),
        bound(TAGS),
    )  # fmt: skip

    async def main() -> None:
        async with Running(driver) as got:
            await got.wait(lambda: len(got.good("count")) >= 3, "three polls")
            await asyncio.to_thread(
                opcua_server.set, "StateCode", ua.Variant(4, ua.VariantType.Int32)
            )
            await got.wait(lambda: got.good("state")[-1].value == 4, "the new value")
        assert got.good("name")[0].value == "Line 1"

    asyncio.run(main())
    # five nodes, at most two per read: three requests per poll
    assert driver.health().requests % 3 == 0


@pytest.mark.parametrize("mode", ["subscribe", "poll"])
def test_server_restart_resumes_without_a_new_driver(mode: str) -> None:
    server = OpcUaTestServer()
    server.start()
    driver = make_driver(
        device(server.endpoint, mode=mode, sampling_interval_ms=20, publishing_interval_ms=50,
               poll_interval_s=0.1, timeout_s=1, backoff_max_s=0.5),
        bound({"speed": TAGS["speed"]}),
    )  # fmt: skip

    async def main() -> None:
        async with Running(driver) as got:
            await got.wait(lambda: bool(got.good("speed")), "first value")
            await asyncio.to_thread(server.stop)
            await got.wait(lambda: bool(got.bad("speed")), "errors while the server is down")
            await asyncio.to_thread(server.start)
            await asyncio.to_thread(server.set, "Speed", 55.5)
            await got.wait(
                lambda: any(r.value == 55.5 for r in got.good("speed")), "values after restart"
            )
            if mode == "subscribe":
                assert driver.subscribed == {TAGS["speed"]["node_id"]}

    try:
        asyncio.run(main())
    finally:
        server.stop()


def test_secured_endpoint_with_certificates_and_user(pki: dict[str, CertFiles]) -> None:
    server = OpcUaTestServer(secure=pki["server"], users={"operator": "s3cret"})
    server.start()
    secure = {
        "security_policy": "Basic256Sha256",
        "security_mode": "SignAndEncrypt",
        "certificate": str(pki["client"].cert),
        "private_key": str(pki["client"].key),
        "server_certificate": str(pki["server"].cert),
    }

    async def main() -> None:
        good = make_driver(
            device(server.endpoint, username="operator", password="s3cret", **secure),
            bound(TAGS),
        )
        readings = await good.read_once()
        await good.close()
        assert {r.tag: r.value for r in readings} == EXPECTED

        wrong_password = make_driver(
            device(server.endpoint, username="operator", password="nope", **secure),
            bound(TAGS),
        )
        readings = await wrong_password.read_once()
        assert {r.value for r in readings} == {None}
        assert all(r.error for r in readings)

        unsecured = make_driver(device(server.endpoint), bound(TAGS))
        readings = await unsecured.read_once()
        assert all(r.error for r in readings)

    try:
        asyncio.run(main())
    finally:
        server.stop()


def test_server_down_is_counted_and_logged_once_without_asyncua_tracebacks(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = OpcUaTestServer()
    server.start()
    driver = make_driver(
        device(server.endpoint, sampling_interval_ms=20, publishing_interval_ms=50,
               timeout_s=1, backoff_max_s=0.2),
        bound({"speed": TAGS["speed"], "state": TAGS["state"]}),
    )  # fmt: skip
    publish_log = logging.getLogger("asyncua.client.ua_session.UaSession")
    publish_log.setLevel(logging.DEBUG)  # conftest quiets asyncua: listen to this one here
    caplog.set_level(logging.INFO)

    async def main() -> None:
        async with Running(driver) as got:
            await got.wait(lambda: bool(got.good("speed")), "first value")
            await asyncio.to_thread(server.stop)
            await got.wait(lambda: driver.health().consecutive_errors >= 3, "failed attempts")
            await asyncio.to_thread(server.start)
            await got.wait(lambda: len(got.good("speed")) >= 2, "values after restart")
        bad = got.bad("speed")
        # One failed read per tag per failed attempt, counted as Modbus counts a failed poll.
        assert driver.health().read_errors == len(bad) + len(got.bad("state")) >= 6
        assert "cannot connect to" in (bad[-1].error or "")

    try:
        asyncio.run(main())
    finally:
        publish_log.setLevel(logging.NOTSET)
        server.stop()
    lost = [r for r in caplog.records if "unreachable" in r.getMessage()]
    assert len(lost) == 1 and lost[0].levelno == logging.WARNING
    assert any("reachable again" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.getMessage().startswith("Publish iteration")]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
