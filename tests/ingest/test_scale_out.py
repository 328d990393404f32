"""Scale-out (docs/scaling.md): three ingest processes on one shared subscription, one of them
killed with SIGKILL mid-run and restarted under its client id; every record lands once."""

from __future__ import annotations

import threading
import uuid
from datetime import timedelta
from pathlib import Path

import pytest

from core.wire import encode
from mes.services.ports import free_port
from tests.fixtures.database import TestDatabase
from tests.fixtures.services import require_mosquitto
from tests.fixtures.tenants import Tenants
from tests.ingest.helpers import (
    BASE,
    IngestProcess,
    Publisher,
    count_rows,
    gateway_topic,
    healthy,
    ingest_env,
    messages_written,
    state_message,
    wait_subscribed,
)
from tests.support.wait import wait_until

MESSAGES = 3000
RECORDS = 10
DAYS_BACK = 11  # a window of its own: no other ingest test writes these rows


@pytest.mark.mosquitto
def test_three_ingests_one_killed_and_restarted_every_record_once(
        database: TestDatabase, tenants: Tenants, broker_server, tmp_path: Path) -> None:
    require_mosquitto(broker_server)
    group = f"x{uuid.uuid4().hex[:6]}"
    ports = [free_port() for _ in range(3)]
    envs = [ingest_env(database, broker_server, f"ingest-{i + 1}-{group}", status_port=ports[i],
                       MES_MQTT__SHARE_GROUP=group) for i in range(3)]
    procs = [IngestProcess(env, tmp_path / f"ingest-{i + 1}.log").start()
             for i, env in enumerate(envs)]
    start = BASE - timedelta(days=DAYS_BACK)
    machine = tenants.a.machines["a2"]
    where, params = ("machine_id = %s AND ts >= %s AND ts < %s",
                     (machine, start, start + timedelta(days=1)))
    msgs = [(gateway_topic(tenants, "a2"),
             encode(state_message("gw-a2", seq, "a2-press", n=RECORDS, start=start)))
            for seq in range(1, MESSAGES + 1)]
    pub = Publisher(broker_server)
    publishing = threading.Thread(target=pub.publish, args=(msgs,), kwargs={"timeout": 180})
    try:
        for port in ports:
            wait_until(lambda p=port: healthy(p), what="ingest health")
        for _ in range(6):  # probes land through any member
            wait_subscribed(database, broker_server, tenants)
        publishing.start()
        wait_until(lambda: count_rows(database, "machine_status_history", where, params)
                   > MESSAGES * RECORDS // 4, timeout=120, what="the ingests to be writing")
        procs[1].kill()
        at_kill = count_rows(database, "machine_status_history", where, params)
        # While it is down the broker keeps giving its session its share of the group's
        # messages; they wait there for the same client id (docs/operations.md, "Ingest").
        wait_until(lambda: count_rows(database, "machine_status_history", where, params)
                   > at_kill + 2 * RECORDS, timeout=60, what="the others to go on writing")
        procs[1] = IngestProcess(envs[1], tmp_path / "ingest-2.log").start()
        publishing.join(180)
        assert not publishing.is_alive(), "the publisher did not get every PUBACK"
        wait_until(lambda: count_rows(database, "machine_status_history", where, params)
                   == MESSAGES * RECORDS, timeout=180, interval=0.5, what="every record")
        wait_until(lambda: healthy(ports[1]), what="the restarted ingest's health")
        shares = [messages_written(p) for p in ports]
    finally:
        pub.close()
        for p in procs:
            if p.alive:
                p.terminate()
    assert at_kill < MESSAGES * RECORDS, "the kill came too late to test anything"
    assert count_rows(database, "machine_status_history", where, params) == MESSAGES * RECORDS
    assert count_rows(database, "dead_letters", "topic LIKE %s", ("%gw-a2%",)) == 0
    # The survivors took their shares; the restarted one drained what queued for it meanwhile.
    assert all(s > 0 for s in shares), shares
