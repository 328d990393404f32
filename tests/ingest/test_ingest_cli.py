"""`mes ingest run` takes its status endpoint and log options on the command line the way
`mes edge run` does; given there, they win over the settings file and environment."""

from __future__ import annotations

import uuid
from pathlib import Path

from mes.services.broker import BrokerServer
from mes.services.ports import free_port
from tests.fixtures.database import TestDatabase
from tests.ingest.helpers import IngestProcess, healthy, ingest_env
from tests.support.wait import wait_until


def test_status_and_log_options_override_the_settings(database: TestDatabase,
                                                      broker_server: BrokerServer,
                                                      tmp_path: Path) -> None:
    port, settings_port = free_port(), free_port()
    env = ingest_env(database, broker_server, f"ingest-cli-{uuid.uuid4().hex[:6]}",
                     status_port=settings_port, MES_LOG__FORMAT="json",
                     MES_LOG__LEVEL="warning", MES_MQTT__SHARE_GROUP="")
    ingest = IngestProcess(env, tmp_path / "ingest.log",
                           args=("--status-port", str(port), "--status-host", "127.0.0.1",
                                 "--log-format", "text", "--log-level", "info")).start()
    try:
        wait_until(lambda: healthy(port), timeout=20, what="the status endpoint on --status-port")
        assert not healthy(settings_port)
    finally:
        status = ingest.terminate()
        print(ingest.log())  # shown only when the test fails
    assert status == 0
    lines = [line for line in ingest.log().splitlines() if "connected to broker" in line]
    assert lines, "no info line: --log-level info did not win over log.level = warning"
    assert not any(line.startswith("{") for line in lines), "JSON lines: log.format won"
