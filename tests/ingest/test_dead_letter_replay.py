"""`mes ingest dead-letters list|replay`: after the cause is fixed, a dead letter lands."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta

import psycopg

from core.wire import encode
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants
from tests.ingest.helpers import (
    BASE,
    Publisher,
    count_rows,
    gateway_topic,
    state_message,
)
from tests.support.wait import wait_until


def _mes(db: TestDatabase, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MES_")}
    env.update({"MES_DATABASE__URL": db.superuser_url, "MES_DATABASE__APP_URL": db.app_url})
    return subprocess.run([sys.executable, "-m", "mes.cli", "ingest", "dead-letters", *args],
                          capture_output=True, text=True, env=env, timeout=120, check=False)


def test_unknown_machine_replayed_after_registration(database: TestDatabase, tenants: Tenants,
                                                     broker_server, start_ingest) -> None:
    start_ingest(broker_server)
    start = BASE - timedelta(days=12)
    payload = encode(state_message("gw-a1", 1, "a1-lathe", n=4, start=start))
    pub = Publisher(broker_server)
    try:
        pub.publish([(gateway_topic(tenants, "a1"), payload)])
    finally:
        pub.close()
    wait_until(lambda: count_rows(database, "dead_letters", "reason = 'unknown_machine' AND "
                                  "replayed_at IS NULL") == 1, what="the dead letter")

    listed = _mes(database, "list", "--reason", "unknown_machine")
    assert listed.returncode == 0, listed.stderr
    assert "unknown_machine" in listed.stdout and "a1-lathe" in listed.stdout

    still = _mes(database, "replay", "--reason", "unknown_machine")
    assert still.returncode == 1 and "still refused: unknown_machine" in still.stdout

    with psycopg.connect(database.superuser_url) as conn:  # the machine gets registered
        conn.execute("INSERT INTO mes.machines (organization_id, plant_id, code, name) "
                     "VALUES (%s, %s, 'a1-lathe', 'Lathe')", (tenants.a.id, tenants.a1))
    replayed = _mes(database, "replay", "--reason", "unknown_machine")
    assert replayed.returncode == 0, replayed.stdout + replayed.stderr
    assert "replayed: 4 new row(s) of 4" in replayed.stdout
    assert count_rows(database, "machine_status_history", "ts >= %s AND ts < %s",
                      (start, start + timedelta(days=1))) == 4
    assert count_rows(database, "dead_letters", "reason = 'unknown_machine' AND "
                      "replayed_at IS NULL") == 0
    again = _mes(database, "replay", "--reason", "unknown_machine")
    assert "0 of 0 replayed" in again.stdout
