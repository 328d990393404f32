"""The publisher against a real broker: envelopes and seq, status, a full in-flight window,
MQTT 5 ACL refusals, and SIGKILL of the publishing process."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core.mqtt import MqttProtocol
from core.wire import CounterRecord, Kind
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.publisher import ConnectionState, Publisher
from edge_agent.delivery.settings import BrokerConfig, OutboxConfig
from mes.services.broker import PROJECT_ROOT, BrokerServer
from tests.edge.mqtt_helpers import (
    GATEWAY,
    ORG,
    PLANT,
    AckHoldingProxy,
    Collector,
    counter,
    state,
    telemetry,
)
from tests.fixtures.services import require_mosquitto
from tests.fixtures.tls import make_tls_files
from tests.support.wait import wait_until


def broker_config(port: int, **overrides: object) -> BrokerConfig:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "flush_interval_s": 0.1,
        "reconnect_min_s": 0.2,
        "reconnect_max_s": 1,
    }
    return BrokerConfig.model_validate(values | overrides)


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    with Outbox.open(OutboxConfig(path=tmp_path / "outbox.sqlite"), GATEWAY) as ob:
        yield ob


@pytest.fixture
def run_publisher(outbox: Outbox) -> Iterator[Callable[..., Publisher]]:
    started: list[Publisher] = []

    def start(config: BrokerConfig) -> Publisher:
        publisher = Publisher(
            outbox,
            config,
            org=ORG,
            plant=PLANT,
            gateway=GATEWAY,
            agent_version="1.2.3",
            config_hash="cafe",
        )
        publisher.start()
        started.append(publisher)
        return publisher

    yield start
    for p in started:
        p.stop(drain_timeout=1)


def drained(outbox: Outbox, publisher: Publisher) -> Callable[[], bool]:
    def check() -> bool:
        depth = outbox.depth()
        return depth.records == 0 and depth.messages == 0 and publisher.stats().inflight == 0

    return check


def seqs(collector: Collector) -> list[int]:
    return [m.envelope.seq for m in collector.snapshot()]


@pytest.mark.parametrize("protocol", list(MqttProtocol))
def test_records_arrive_as_envelopes_with_consecutive_seq(
    broker_server: BrokerServer,
    outbox: Outbox,
    run_publisher: Callable[..., Publisher],
    protocol: MqttProtocol,
) -> None:
    if protocol is MqttProtocol.MQTT5:
        require_mosquitto(broker_server)
    collector = Collector(broker_server.host, broker_server.port, v5=broker_server.supports_mqtt5)
    try:
        records = {
            Kind.STATE: [state(f"m-{i % 2}", i) for i in range(30)],
            Kind.COUNTER: [counter("m-0", i) for i in range(25)],
            Kind.TELEMETRY: [telemetry("m-1", i) for i in range(12)],
        }
        for batch in records.values():
            outbox.add_many(batch)
        publisher = run_publisher(
            broker_config(broker_server.port, protocol=protocol, max_records_per_message=10)
        )
        wait_until(drained(outbox, publisher), 20, "the outbox to drain")
        wait_until(lambda: len(collector.snapshot()) == 3 + 3 + 2, 10, "every message")
        got = collector.snapshot()
        assert sorted(seqs(collector)) == list(range(1, 9))
        for kind, sent in records.items():
            mine = [m for m in got if m.topic.kind is kind]
            assert {(m.topic.org, m.topic.plant, m.topic.gateway) for m in mine} == {
                (ORG, PLANT, GATEWAY)
            }
            assert [r for m in mine for r in m.envelope.records] == sent
        stats = publisher.stats()
        assert (stats.acked, stats.acked_records, stats.refused) == (8, 67, 0)
        assert stats.state is ConnectionState.CONNECTED
        # (The session broker may first hand over an earlier test's retained `offline`.)
        wait_until(lambda: any(s.status == "online" for s in collector.statuses), 5, "birth")
        birth = next(s for s in collector.statuses if s.status == "online")
        assert (birth.status, birth.agent_version, birth.config_hash) == ("online", "1.2.3", "cafe")
        publisher.stop()
        wait_until(lambda: collector.statuses[-1].status == "offline", 5, "the offline status")
    finally:
        collector.close()


def test_a_full_inflight_window_loses_nothing(
    broker_server: BrokerServer, outbox: Outbox, run_publisher: Callable[..., Publisher]
) -> None:
    collector = Collector(broker_server.host, broker_server.port, v5=broker_server.supports_mqtt5)
    try:
        outbox.add_many(counter("m-0", i) for i in range(300))
        outbox.flush()
        publisher = run_publisher(
            broker_config(
                broker_server.port,
                max_inflight=2,
                max_records_per_message=1,
                protocol=MqttProtocol.MQTT5
                if broker_server.supports_mqtt5
                else MqttProtocol.MQTT311,
            )
        )
        wait_until(drained(outbox, publisher), 60, "the outbox to drain")
        wait_until(lambda: len(collector.snapshot()) >= 300, 10, "every message")
        # The birth shares paho's window: the burst meets MQTT_ERR_QUEUE_SIZE and retries.
        assert publisher.stats().window_full >= 1
        assert sorted(set(seqs(collector))) == list(range(1, 301))
        assert [r.value for r in collector.records()] == list(range(300))
    finally:
        collector.close()


def test_mqtt5_acl_refusal_keeps_the_message_and_is_loud(
    broker_factory: Callable[..., BrokerServer],
    readable_dir: Path,
    outbox: Outbox,
    run_publisher: Callable[..., Publisher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    prefix = f"mes/v1/{ORG}/{PLANT}/{GATEWAY}"
    acl = readable_dir / "acl"
    acl.write_text(
        f"topic write {prefix}/state\ntopic write {prefix}/status\ntopic read mes/v1/#\n"
    )
    broker = broker_factory(extra_conf=f"acl_file {acl}\n")
    require_mosquitto(broker)
    collector = Collector(broker.host, broker.port)
    try:
        outbox.add_many([state("m-0", 0), counter("m-0", 0)])
        publisher = run_publisher(broker_config(broker.port))
        wait_until(lambda: publisher.stats().refused >= 1, 10, "the broker's refusal")
        wait_until(lambda: len(collector.snapshot()) == 1, 10, "the state message")
        assert collector.snapshot()[0].topic.kind is Kind.STATE
        stats = publisher.stats()
        assert stats.acked == 1
        [kept] = outbox.stored(limit=10)
        assert kept.kind is Kind.COUNTER
        assert f"gateway ACL refuses topic {prefix}/counter: fix the broker ACL" in caplog.text
        assert any(r.levelno == logging.ERROR for r in caplog.records)
    finally:
        collector.close()


@pytest.fixture
def readable_dir() -> Iterator[Path]:
    """A folder mosquitto can read after it drops root for its own user (tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="mes-acl-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def _child(
    outbox: Path, start: int, count: int, port: int, protocol: MqttProtocol
) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "tests.edge.publisher_child",
            str(outbox),
            str(start),
            str(count),
            "--port",
            str(port),
            "--protocol",
            protocol.value,
        ],
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "publishing"
    return proc


def test_sigkill_replays_unacknowledged_messages_and_seq_continues(
    broker_factory: Callable[..., BrokerServer], tmp_path: Path
) -> None:
    broker = broker_factory()
    proxy = AckHoldingProxy(broker.port)
    protocol = MqttProtocol.MQTT5 if broker.supports_mqtt5 else MqttProtocol.MQTT311
    collector = Collector(broker.host, broker.port, v5=broker.supports_mqtt5)
    path = tmp_path / "outbox.sqlite"
    try:
        proxy.hold = True  # the first agent's messages reach the broker; no PUBACK comes back
        first = _child(path, 0, 100, proxy.port, protocol)
        wait_until(lambda: len(collector.snapshot()) >= 5, 20, "messages in flight")
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        assert first.stdout is not None
        first.stdout.close()
        before = collector.snapshot()
        wait_until(
            lambda: any(s.status == "offline" for s in collector.statuses), 10, "the last will"
        )

        proxy.hold = False
        second = _child(path, 100, 50, proxy.port, protocol)
        assert second.stdout is not None
        assert second.stdout.readline().strip() == "drained"
        assert second.wait(10) == 0
        second.stdout.close()

        wait_until(
            lambda: {r.value for r in collector.records()} == set(map(float, range(150))),
            10,
            "every record",
        )
        got = collector.snapshot()
        by_seq: dict[int, set[bytes]] = {}
        for m in got:
            by_seq.setdefault(m.envelope.seq, set()).add(m.payload)
        assert sorted(by_seq) == list(range(1, max(by_seq) + 1))  # no gap
        assert all(len(p) == 1 for p in by_seq.values())  # a replay is the same message
        replayed = {m.envelope.seq for m in before}
        assert sum(1 for m in got if m.envelope.seq in replayed) > len(before)
        once = {m.envelope.seq: m for m in got}  # one copy of each message, in seq order
        records = [r for seq in sorted(once) for r in once[seq].envelope.records]
        assert all(isinstance(r, CounterRecord) for r in records)
        for machine in ("m-0", "m-1", "m-2"):
            values = [r.value for r in records if r.machine == machine]
            assert values == sorted(values)
    finally:
        collector.close()
        proxy.close()


def test_tls_and_password(
    broker_factory: Callable[..., BrokerServer],
    readable_dir: Path,
    outbox: Outbox,
    run_publisher: Callable[..., Publisher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    passwd_tool = shutil.which("mosquitto_passwd")
    if passwd_tool is None:
        pytest.skip("needs mosquitto_passwd to make the broker's password file")
    ca, cert, key = make_tls_files(readable_dir)
    passwd = readable_dir / "passwd"
    subprocess.run([passwd_tool, "-c", "-b", str(passwd), GATEWAY, "s3cret"], check=True)
    passwd.chmod(0o644)
    broker = broker_factory(
        extra_conf=f"certfile {cert}\nkeyfile {key}\npassword_file {passwd}\n"
        "allow_anonymous false\n"
    )
    require_mosquitto(broker)
    collector = Collector(broker.host, broker.port, ca_file=ca, auth=(GATEWAY, "s3cret"))
    try:
        outbox.add_many(state("m-0", i) for i in range(3))
        secure = {"tls": {"enabled": True, "ca_file": ca}, "username": GATEWAY}
        wrong = run_publisher(
            broker_config(broker.port, **secure, password="nope", client_id="wrong-password")
        )
        wait_until(lambda: "refused the connection" in caplog.text, 10, "the refusal")
        assert wrong.stats().connects == 0
        wrong.stop(drain_timeout=0)
        publisher = run_publisher(broker_config(broker.port, **secure, password="s3cret"))
        wait_until(drained(outbox, publisher), 20, "the outbox to drain")
        wait_until(lambda: len(collector.records()) == 3, 10, "the records")
        assert collector.records() == [state("m-0", i) for i in range(3)]
    finally:
        collector.close()


def test_an_acl_refusing_everything_is_loud_from_the_birth_on(
    broker_factory: Callable[..., BrokerServer],
    readable_dir: Path,
    outbox: Outbox,
    run_publisher: Callable[..., Publisher],
    caplog: pytest.LogCaptureFixture,
) -> None:
    acl = readable_dir / "acl"
    acl.write_text("topic write mes/v1/some-other-org/#\n")
    broker = broker_factory(extra_conf=f"acl_file {acl}\n")
    require_mosquitto(broker)
    outbox.add_many([state("m-0", 0)])
    publisher = run_publisher(broker_config(broker.port))
    wait_until(lambda: publisher.stats().refused >= 1, 10, "the refused birth")
    status_topic = f"mes/v1/{ORG}/{PLANT}/{GATEWAY}/status"
    assert f"gateway ACL refuses topic {status_topic}: fix the broker ACL" in caplog.text
    assert publisher.stats().acked == 0
    assert len(outbox.stored(limit=10)) + outbox.depth().records >= 1  # nothing lost
