"""Where the engine runs: inside `mes ingest run` (after each commit, by default) and on its
own as `mes maintenance run` (calendar jobs by apscheduler, MQTT delivery); each as a real
process."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants
from tests.ingest.helpers import IngestProcess, Publisher, ingest_env, wait_subscribed
from tests.maintenance.helpers import add_machine, add_schedule, counters, hours_ago, tasks_of
from tests.support.wait import wait_until


def test_the_ingest_runs_the_engine_after_each_commit(database: TestDatabase, tenants: Tenants,
                                                      broker_server, tmp_path: Path) -> None:
    code, machine = add_machine(database, tenants)
    t0 = hours_ago(2)
    schedule = add_schedule(database, tenants, machine_id=machine, trigger_kind="cycles",
                            interval_value=50, counter_tag="strokes", anchor_at=t0)
    env = ingest_env(database, broker_server, f"ingest-{uuid.uuid4().hex[:6]}")
    ingest = IngestProcess(env, tmp_path / "ingest.log").start()
    pub = Publisher(broker_server)
    try:
        wait_subscribed(database, broker_server, tenants)
        pub.publish([counters(code, "strokes", [(t0 + timedelta(minutes=i), 10.0 * i)
                                                for i in range(8)])])
        wait_until(lambda: tasks_of(database, "schedule_id", schedule) != [], 60,
                   "the task raised inside the ingest")
        [task] = tasks_of(database, "schedule_id", schedule)
        assert task["meter_at_raise"] == 70
        assert ingest.terminate() == 0
    finally:
        pub.close()
        if ingest.alive:
            ingest.kill()
    assert "maintenance tasks raised" in ingest.log()


def test_the_standalone_engine_raises_calendar_tasks_when_due_and_publishes_them(
        database: TestDatabase, tenants: Tenants, broker_server, tmp_path: Path) -> None:
    _, machine = add_machine(database, tenants, "a2")
    # Due five seconds after the engine starts: the calendar job, not a sweep, raises it.
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=5)
    schedule = add_schedule(database, tenants, "a2", machine_id=machine,
                            trigger_kind="calendar", calendar_every=1, calendar_unit="days",
                            anchor_at=due - timedelta(days=1), name="Daily check")
    got: list[dict] = []
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sub-{uuid.uuid4().hex[:6]}")
    sub.on_message = lambda _c, _u, m: got.append(json.loads(m.payload))
    sub.on_connect = lambda c, *_a: c.subscribe("mes/v1/org-a/a2/maintenance/task", qos=1)
    sub.connect(broker_server.host, broker_server.port)
    sub.loop_start()
    env = ingest_env(database, broker_server, "unused")
    env.update({"MES_MAINTENANCE__SWEEP_S": "3600",
                "MES_MAINTENANCE__MQTT__HOST": broker_server.host,
                "MES_MAINTENANCE__MQTT__PORT": str(broker_server.port)})
    if not broker_server.supports_mqtt5:
        env["MES_MAINTENANCE__MQTT__PROTOCOL"] = "mqtt311"
    log = (tmp_path / "engine.log").open("wb")
    engine = subprocess.Popen([sys.executable, "-m", "mes.cli", "maintenance", "run"],
                              env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: sub.is_connected(), 20, "the subscriber")
        wait_until(lambda: tasks_of(database, "schedule_id", schedule) != [], 60,
                   "the calendar task")
        [task] = tasks_of(database, "schedule_id", schedule)
        assert datetime.fromisoformat(task["due_at"]) == due
        assert datetime.fromisoformat(task["created_at"]) >= due
        wait_until(lambda: any(d["task"]["id"] == task["id"] for d in got), 30,
                   "the task on MQTT")
        engine.terminate()
        assert engine.wait(30) == 0
    finally:
        if engine.poll() is None:
            engine.kill()
            engine.wait()
        log.close()
        sub.disconnect()
        sub.loop_stop()
