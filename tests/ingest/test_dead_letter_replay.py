"""`mes ingest dead-letters list|replay`: after the cause is fixed, a dead letter lands."""

from __future__ import annotations

import hashlib
import os
import re
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
    assert again.returncode == 1
    assert "no dead letter with reason unknown_machine is waiting: 1 already replayed" \
        in again.stdout


ISO_WITH_OFFSET = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d"


def _record(db: TestDatabase, topic: str, payload: bytes, reason: str) -> int:
    """Record a dead letter as the ingest does (application role, the definer function)."""
    with db.app() as conn:
        seen = conn.execute(
            "SELECT mes.record_dead_letter(%s, NULL, %s, 'by the test', %s, %s, %s)",
            (topic, reason, payload, len(payload), hashlib.sha256(payload).digest())).fetchone()
    assert seen is not None and seen[0] >= 1
    with db.superuser() as conn:
        found = conn.execute("SELECT id FROM mes.dead_letters WHERE topic = %s AND payload = %s",
                             (topic, payload)).fetchone()
    assert found
    return int(found[0])


def test_replay_names_why_nothing_matched(database: TestDatabase) -> None:
    topic = "mes/v1/org-a/a1/gw-a1/state/extra"
    waiting = _record(database, topic, b"waiting", "bad_topic")
    done = _record(database, topic, b"done", "bad_topic")
    with database.superuser() as conn:
        conn.execute("UPDATE mes.dead_letters SET replayed_at = now() WHERE id = %s", (done,))
        unknown = conn.execute("SELECT max(id) + 1000 FROM mes.dead_letters").fetchone()[0]

    by_id = _mes(database, "replay", "--id", str(unknown), str(done))
    assert by_id.returncode == 1, by_id.stdout + by_id.stderr
    assert f"#{unknown}: no such dead letter" in by_id.stdout
    assert re.search(rf"#{done}: already replayed at {ISO_WITH_OFFSET}", by_id.stdout)
    assert "0 of 0 replayed" in by_id.stdout

    not_a_reason = _mes(database, "replay", "--reason", "no_such_reason")
    assert not_a_reason.returncode == 1
    assert "'no_such_reason' is not a dead-letter reason; the reasons are: bad_topic" \
        in not_a_reason.stdout
    none_of_it = _mes(database, "replay", "--reason", "inactive_gateway")
    assert none_of_it.returncode == 1
    assert "no dead letter has reason inactive_gateway" in none_of_it.stdout

    mixed = _mes(database, "replay", "--id", str(waiting), str(unknown))
    assert mixed.returncode == 1
    assert f"#{waiting}: still refused: bad_topic" in mixed.stdout
    assert f"#{unknown}: no such dead letter" in mixed.stdout


def test_list_shows_waiting_replayed_or_all_with_zoned_times(database: TestDatabase) -> None:
    topic = "mes/v1/org-a/a1/state"
    waiting = _record(database, topic, b"list waiting", "bad_topic")
    _record(database, topic, b"list waiting", "bad_topic")  # the same message again
    done = _record(database, topic, b"list done", "bad_topic")
    with database.superuser() as conn:
        conn.execute("UPDATE mes.dead_letters SET replayed_at = now() WHERE id = %s", (done,))

    default = _mes(database, "list", "--reason", "bad_topic")
    assert default.returncode == 0, default.stderr
    assert f"#{waiting} bad_topic {topic}" in default.stdout and f"#{done} " not in default.stdout
    assert re.search(rf"first {ISO_WITH_OFFSET}, seen 2 time\(s\), last {ISO_WITH_OFFSET}\n",
                     default.stdout)
    replayed = _mes(database, "list", "--replayed")
    assert f"#{done} " in replayed.stdout and f"#{waiting} " not in replayed.stdout
    assert re.search(rf"seen 1 time\(s\), last {ISO_WITH_OFFSET}, replayed {ISO_WITH_OFFSET}",
                     replayed.stdout)
    both = _mes(database, "list", "--all")
    assert f"#{done} " in both.stdout and f"#{waiting} " in both.stdout
    assert _mes(database, "list", "--all", "--replayed").returncode == 2
