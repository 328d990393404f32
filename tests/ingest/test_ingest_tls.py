"""The ingest over TLS with username/password against a real mosquitto, and its refusals:
a wrong password is retried and logged, wrong TLS settings stop `mes ingest run` at once."""

from __future__ import annotations

import logging
import shutil
import subprocess
import sys
import tempfile
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from core.config_errors import ConfigError
from core.settings import load_settings
from core.wire import encode
from ingest.service import IngestService
from ingest.settings import IngestSettings
from mes.services.broker import BrokerServer
from mes.services.ports import free_port
from tests.fixtures.database import TestDatabase
from tests.fixtures.services import require_mosquitto
from tests.fixtures.tenants import Tenants
from tests.fixtures.tls import make_tls_files, write_password_file
from tests.ingest.helpers import (
    BASE,
    IngestProcess,
    count_rows,
    gateway_topic,
    healthy,
    ingest_env,
    state_message,
)
from tests.support.wait import wait_until

INGEST_USER, INGEST_PASSWORD = "ingest", "ingest-s3cret"
GATEWAY_USER, GATEWAY_PASSWORD = "gw-a1", "gw-s3cret"
MESSAGES, RECORDS = 20, 10  # per test: 200 state records of a1-press


@dataclass
class SecureBroker:
    """A mosquitto accepting only TLS connections from the users of `passwd`."""

    broker: BrokerServer
    ca: Path
    passwd: Path


@pytest.fixture
def secure_broker(broker_factory) -> Iterator[SecureBroker]:
    # Not tmp_path (0700): mosquitto may read its files as its own user.
    folder = Path(tempfile.mkdtemp(prefix="mes-tls-"))
    folder.chmod(0o755)
    try:
        ca, cert, key = make_tls_files(folder)
        passwd = folder / "passwd"
        users = {INGEST_USER: INGEST_PASSWORD, GATEWAY_USER: GATEWAY_PASSWORD}
        if not write_password_file(passwd, users):
            pytest.skip("needs mosquitto_passwd to make the broker's password file")
        # The shipped config has one listener: these lines make it TLS-only and password-only.
        broker = broker_factory(extra_conf=f"certfile {cert}\nkeyfile {key}\n"
                                f"password_file {passwd}\nallow_anonymous false\n")
        require_mosquitto(broker)
        yield SecureBroker(broker, ca, passwd)
    finally:
        shutil.rmtree(folder)


def tls_env(secure: SecureBroker, password: str = INGEST_PASSWORD) -> dict[str, str]:
    return {
        "MES_MQTT__TLS__ENABLED": "true",
        "MES_MQTT__TLS__CA_FILE": str(secure.ca),
        "MES_MQTT__USERNAME": INGEST_USER,
        "MES_MQTT__PASSWORD": password,
        "MES_MQTT__SHARE_GROUP": f"t{uuid.uuid4().hex[:8]}",
    }


def messages(tenants: Tenants, start: datetime) -> list[tuple[str, bytes]]:
    topic = gateway_topic(tenants, "a1")
    return [(topic, encode(state_message("gw-a1", seq, "a1-press", n=RECORDS, start=start)))
            for seq in range(MESSAGES)]


def landed(db: TestDatabase, tenants: Tenants, start: datetime) -> int:
    return count_rows(db, "machine_status_history", "machine_id = %s AND ts >= %s AND ts < %s",
                      (tenants.a.machines["a1"], start,
                       start + timedelta(seconds=MESSAGES * RECORDS)))


def publish_over_tls(secure: SecureBroker, items: Sequence[tuple[str, bytes]]) -> None:
    """Publish QoS 1 as the gateway's user over TLS, each message acknowledged."""
    connected = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"tls-pub-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    client.tls_set(ca_certs=str(secure.ca))
    client.username_pw_set(GATEWAY_USER, GATEWAY_PASSWORD)

    def on_connect(_c: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if not getattr(reason, "is_failure", True):
            connected.set()

    client.on_connect = on_connect
    client.connect(secure.broker.host, secure.broker.port)
    client.loop_start()
    try:
        assert connected.wait(10), "the publisher was not accepted over TLS"
        for topic, payload in items:
            client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        client.disconnect()
        client.loop_stop()


def test_mes_ingest_run_writes_what_arrives_over_tls_with_a_password(
        database: TestDatabase, tenants: Tenants, secure_broker: SecureBroker,
        tmp_path: Path) -> None:
    start = BASE - timedelta(days=2)
    status_port = free_port()
    env = ingest_env(database, secure_broker.broker, f"ingest-tls-{uuid.uuid4().hex[:6]}",
                     status_port=status_port, **tls_env(secure_broker))
    ingest = IngestProcess(env, tmp_path / "ingest.log").start()
    try:
        wait_until(lambda: healthy(status_port), timeout=20, what="the ingest subscribed")
        publish_over_tls(secure_broker, messages(tenants, start))
        wait_until(lambda: landed(database, tenants, start) == MESSAGES * RECORDS,
                   timeout=20, what="every record in the database")
    finally:
        status = ingest.terminate()
        print(ingest.log())  # shown only when the test fails
    assert status == 0
    assert "connected to broker" in ingest.log()


def test_a_refused_password_is_retried_and_logged_until_the_broker_takes_it(
        database: TestDatabase, tenants: Tenants, secure_broker: SecureBroker,
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The ingest was given a rotated password before the broker's password file was."""
    caplog.set_level(logging.INFO, logger="ingest")
    rotated = "rotated-s3cret"
    env = ingest_env(database, secure_broker.broker, f"ingest-tls-{uuid.uuid4().hex[:6]}",
                     **tls_env(secure_broker, password=rotated), MES_MQTT__RECONNECT_MAX_S="2")
    for key, value in env.items():
        if key.startswith("MES_"):
            monkeypatch.setenv(key, value)
    service = IngestService(load_settings(None, IngestSettings))
    service.start()
    start = BASE - timedelta(days=3)

    def refusals() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == "broker refused the connection"]

    try:
        # Two refusals: it tried again (with backoff) instead of giving up or crashing.
        wait_until(lambda: len(refusals()) >= 2, timeout=15, what="the refusal, twice")
        # mosquitto answers a wrong password with "Not authorized" (MQTT 5 reason code 135).
        reason = getattr(refusals()[0], "reason", None)
        assert reason in ("Not authorized", "Bad user name or password")
        ok, details = service.health()
        assert not ok and not details["mqtt_subscribed"] and details["pipeline_alive"]
        assert service.failure is None

        write_password_file(secure_broker.passwd, {INGEST_USER: rotated,
                                                   GATEWAY_USER: GATEWAY_PASSWORD})
        secure_broker.broker.restart()
        assert service.consumer.subscribed.wait(15), "no subscription after the fix"
        assert service.health()[0]
        publish_over_tls(secure_broker, messages(tenants, start))
        wait_until(lambda: landed(database, tenants, start) == MESSAGES * RECORDS,
                   timeout=20, what="every record in the database")
    finally:
        service.stop(timeout=10)


def test_a_missing_ca_file_stops_mes_ingest_run_with_exit_status_2(
        database: TestDatabase, broker_server: BrokerServer, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-ca.pem"
    env = ingest_env(database, broker_server, "ingest-no-ca", MES_MQTT__TLS__ENABLED="true",
                     MES_MQTT__TLS__CA_FILE=str(missing))
    done = subprocess.run([sys.executable, "-m", "mes.cli", "ingest", "run"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stderr
    assert f"mqtt.tls.ca_file: no such file: {missing}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("settings", "expected"), [
    ({"CA_FILE": "{garbage}"}, "mqtt.tls: cannot load the certificates (ca_file {garbage}): "),
    ({"CERT_FILE": "{ca}", "KEY_FILE": "{missing}"}, "mqtt.tls.key_file: no such file: {missing}"),
    ({"CERT_FILE": "{ca}"}, "mqtt.tls: cert_file and key_file go together"),
], ids=["ca-file-not-a-certificate", "missing-key-file", "cert-without-key"])
def test_wrong_tls_settings_are_a_config_error_naming_the_setting(
        database: TestDatabase, secure_broker: SecureBroker, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, settings: dict[str, str], expected: str) -> None:
    """What `mes ingest run` does before it starts anything (the CLI prints it, exits 2)."""
    garbage = tmp_path / "not-a-certificate.pem"
    garbage.write_text("not a certificate\n")
    paths = {"missing": tmp_path / "no-such.pem", "garbage": garbage, "ca": secure_broker.ca}
    wrong = {f"MES_MQTT__TLS__{k}": v.format(**paths) for k, v in settings.items()}
    env = ingest_env(database, secure_broker.broker, "ingest-bad-tls",
                     **{**tls_env(secure_broker), **wrong})
    for key, value in env.items():
        if key.startswith("MES_"):
            monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError) as refused:
        IngestService(load_settings(None, IngestSettings))
    assert expected.format(**paths) in str(refused.value)


def test_a_password_without_a_username_is_a_config_error(
        database: TestDatabase, broker_server: BrokerServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in ingest_env(database, broker_server, "ingest-no-user",
                                 MES_MQTT__PASSWORD="s3cret").items():
        if key.startswith("MES_"):
            monkeypatch.setenv(key, value)
    with pytest.raises(ConfigError, match="mqtt: password given without username"):
        load_settings(None, IngestSettings)
