"""`mes registry broker-config` against a real mosquitto: each gateway's account may publish only
under its own topic prefix (MQTT 5 PUBACK "Not authorized" elsewhere, which the agent's
publisher counts and logs), the ingest account reads everything, and a rotated secret replaces
the old one. The hashes are mosquitto_passwd's own format."""

from __future__ import annotations

import base64
import logging
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.registry.apply import apply_registry
from core.registry.broker import mosquitto_hash
from core.registry.model import parse_registry
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.publisher import Publisher
from edge_agent.delivery.settings import BrokerConfig, OutboxConfig
from mes.services.broker import BrokerServer
from tests.edge.mqtt_helpers import Collector, state
from tests.fixtures.database import TestDatabase
from tests.fixtures.services import require_mosquitto
from tests.registry.helpers import app_sessions, registry_data, run_mes
from tests.support.wait import wait_until


def test_hash_is_what_mosquitto_passwd_writes(tmp_path: Path) -> None:
    tool = shutil.which("mosquitto_passwd")
    if tool is None:
        pytest.skip("needs mosquitto_passwd to compare with")
    passwd = tmp_path / "passwd"
    subprocess.run([tool, "-c", "-b", str(passwd), "gw-1", "s3cret"], check=True)
    user, theirs = passwd.read_text().strip().split(":", 1)
    _, seven, iterations, salt, _ = theirs.split("$")
    assert (user, seven) == ("gw-1", "7")
    assert mosquitto_hash("s3cret", base64.b64decode(salt), int(iterations)) == theirs


@pytest.fixture
def out_dir(tmp_path: Path) -> Path:
    """Where broker-config writes; the private broker reads it as the same user (BrokerServer
    keeps mosquitto from dropping root to an account that could not)."""
    return tmp_path / "broker"


@pytest.fixture
def publishers(tmp_path: Path) -> Iterator[Callable[..., Publisher]]:
    made: list[tuple[Publisher, Outbox]] = []

    def start(port: int, org: str, plant: str, gateway: str, password: str) -> Publisher:
        outbox = Outbox.open(OutboxConfig(path=tmp_path / f"outbox-{len(made)}.sqlite"), gateway)
        outbox.add_many(state("m-0", i) for i in range(3))
        config = BrokerConfig.model_validate({
            "host": "127.0.0.1", "port": port, "username": gateway, "password": password,
            "flush_interval_s": 0.1, "reconnect_min_s": 0.2, "reconnect_max_s": 1})
        publisher = Publisher(outbox, config, org=org, plant=plant, gateway=gateway,
                              agent_version="test", config_hash="registry")
        publisher.start()
        made.append((publisher, outbox))
        return publisher

    yield start
    for publisher, outbox in made:
        publisher.stop(drain_timeout=0)
        outbox.close()


def _secret(out: Path, account: str) -> str:
    return (out / "secrets" / f"{account}.secret").read_text().strip()


def test_each_gateway_publishes_only_under_its_own_prefix(
    db: TestDatabase, out_dir: Path, broker_factory: Callable[..., BrokerServer],
    publishers: Callable[..., Publisher], caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    data = registry_data()
    data["organizations"][1]["gateways"].append({"code": "gw-old", "name": "Retired",
                                                 "plant": "b1", "active": False})
    with app_sessions(db) as sessions:
        apply_registry(sessions, parse_registry(data, "registry.yaml"))
    out = run_mes(db, "registry", "broker-config", "--out", str(out_dir))
    assert out.returncode == 0, out.stderr
    assert f"wrote {out_dir / 'passwd'} (5 accounts)" in out.stdout
    assert (out_dir / "secrets" / "gw-a1.secret").stat().st_mode & 0o777 == 0o600
    acl = (out_dir / "acl").read_text()
    assert "user gw-a1\ntopic write mes/v1/org-a/a1/gw-a1/+\n" in acl
    assert "user gw-b1\ntopic write mes/v1/org-b/b1/gw-b1/+\n" in acl
    assert "gw-old" not in acl and "gw-old" not in (out_dir / "passwd").read_text()
    with db.superuser() as conn:  # hashes only, never the secrets
        stored = dict(conn.execute("SELECT username, password_hash FROM mes.broker_credentials"))
    assert _secret(out_dir, "gw-a1") not in stored["gw-a1"] and stored["gw-a1"].startswith("$7$")

    broker = broker_factory(extra_conf=f"password_file {out_dir / 'passwd'}\n"
                                       f"acl_file {out_dir / 'acl'}\nallow_anonymous false\n")
    require_mosquitto(broker)
    ingest = Collector(broker.host, broker.port, auth=("mes-ingest", _secret(out_dir,
                                                                             "mes-ingest")))
    try:
        own = publishers(broker.port, "org-a", "a1", "gw-a1", _secret(out_dir, "gw-a1"))
        # The same gateway claiming its organization's other plant: refused, kept, loud.
        other = publishers(broker.port, "org-a", "a2", "gw-a1", _secret(out_dir, "gw-a1"))
        wait_until(lambda: own.stats().acked >= 1, 10, "the own-prefix publish")
        wait_until(lambda: other.stats().refused >= 1, 10, "the broker's refusal")
        wait_until(lambda: len(ingest.records()) == 3, 10, "the records at the ingest")
        assert {m.topic.plant for m in ingest.snapshot()} == {"a1"}
        assert other.stats().acked == 0
        assert "gateway ACL refuses topic mes/v1/org-a/a2/gw-a1/" \
            in caplog.text
        # Another gateway's secret does not open gw-a1's account.
        wrong = publishers(broker.port, "org-a", "a2", "gw-a2", _secret(out_dir, "gw-a1"))
        wait_until(lambda: "refused the connection" in caplog.text, 10, "the login refusal")
        assert wrong.stats().connects == 0
    finally:
        ingest.close()


def test_rotation_replaces_the_secret(
    db: TestDatabase, out_dir: Path, broker_factory: Callable[..., BrokerServer],
    publishers: Callable[..., Publisher], caplog: pytest.LogCaptureFixture,
) -> None:
    with app_sessions(db) as sessions:
        apply_registry(sessions, parse_registry(registry_data(), "registry.yaml"))
    assert run_mes(db, "registry", "broker-config", "--out", str(out_dir)).returncode == 0
    old = _secret(out_dir, "gw-b1")
    again = run_mes(db, "registry", "broker-config", "--out", str(out_dir / "again"))
    assert "no new secrets" in again.stdout
    assert (out_dir / "again" / "passwd").read_text() == (out_dir / "passwd").read_text()

    rotated = run_mes(db, "registry", "broker-config", "--out", str(out_dir),
                      "--rotate", "gw-b1")
    assert rotated.returncode == 0, rotated.stderr
    assert f"new secret for gw-b1: {out_dir / 'secrets' / 'gw-b1.secret'}" in rotated.stdout
    assert "new secret for gw-a1" not in rotated.stdout
    new = _secret(out_dir, "gw-b1")
    assert new != old
    unknown = run_mes(db, "registry", "broker-config", "--out", str(out_dir), "--rotate", "gw-x")
    assert unknown.returncode == 1 and "--rotate gw-x: no such active gateway" in unknown.stderr

    broker = broker_factory(extra_conf=f"password_file {out_dir / 'passwd'}\n"
                                       f"acl_file {out_dir / 'acl'}\nallow_anonymous false\n")
    require_mosquitto(broker)
    stale = publishers(broker.port, "org-b", "b1", "gw-b1", old)
    wait_until(lambda: "refused the connection" in caplog.text, 10, "the old secret's refusal")
    assert stale.stats().connects == 0
    fresh = publishers(broker.port, "org-b", "b1", "gw-b1", new)
    wait_until(lambda: fresh.stats().acked >= 1, 10, "a publish with the new secret")


def _puback_reason(port: int, user: str, secret: str, topic: str) -> str:
    """Publish once at QoS 1 under MQTT 5 and return the broker's PUBACK reason."""
    reasons: list[str] = []
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    client.username_pw_set(user, secret)
    client.on_publish = lambda _c, _u, _mid, reason, _p: reasons.append(str(reason))
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        client.publish(topic, b"{}", qos=1)
        wait_until(lambda: bool(reasons), 10, f"the PUBACK for {topic}")
    finally:
        client.disconnect()
        client.loop_stop()
    return reasons[0]


def test_the_broker_holds_a_gateway_to_its_topics_depth(
    db: TestDatabase, out_dir: Path, broker_factory: Callable[..., BrokerServer],
) -> None:
    with app_sessions(db) as sessions:
        apply_registry(sessions, parse_registry(registry_data(), "registry.yaml"))
    assert run_mes(db, "registry", "broker-config", "--out", str(out_dir)).returncode == 0
    broker = broker_factory(extra_conf=f"password_file {out_dir / 'passwd'}\n"
                                       f"acl_file {out_dir / 'acl'}\nallow_anonymous false\n")
    require_mosquitto(broker)
    secret = _secret(out_dir, "gw-a1")
    prefix = "mes/v1/org-a/a1/gw-a1"
    # Allowed: accepted (nobody subscribes here, which MQTT 5 says but is no refusal).
    assert _puback_reason(broker.port, "gw-a1", secret, f"{prefix}/state") in (
        "Success", "No matching subscribers")
    for topic in (f"{prefix}/state/extra", prefix, "mes/v1/org-a/a1/state"):
        assert _puback_reason(broker.port, "gw-a1", secret, topic) == "Not authorized", topic
