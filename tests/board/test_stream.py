"""GET /v1/stream: a committed state change reaches the subscribers whose tenant admits it,
within a couple of seconds, and nobody else's."""

from __future__ import annotations

import json
import queue
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx

from tests.api.conftest import Api
from tests.board.conftest import write_state
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants


def listen(api: Api, user: str, into: queue.Queue, ready: threading.Event,
           stop: threading.Event, path: str = "/v1/stream") -> None:
    """Read `user`'s stream into `into` as (user, event, data) until `stop`; the stream's
    end when the API stops after the test is no error."""
    headers = {"Authorization": f"Bearer {api.users.tokens[user]}"}
    try:
        with httpx.stream("GET", api.base_url + path, headers=headers, timeout=30) as r:
            assert r.status_code == 200
            event = None
            for line in r.iter_lines():
                ready.set()
                if stop.is_set():
                    return
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    into.put((user, event, json.loads(line[6:])))
    except httpx.HTTPError:
        if not stop.is_set():
            raise


def test_stream_delivers_each_tenants_events_only_to_it(api: Api, database: TestDatabase,
                                                        tenants: Tenants) -> None:
    got: queue.Queue = queue.Queue()
    stop = threading.Event()
    users = ["a1_tech", "a_admin", "b_admin"]
    threads = []
    for user in users:
        ready = threading.Event()
        t = threading.Thread(target=listen, args=(api, user, got, ready, stop), daemon=True)
        t.start()
        assert ready.wait(10), f"{user}: the stream did not open"
        threads.append(t)
    ts = datetime.now(UTC) + timedelta(seconds=1)
    written = time.monotonic()
    for org, plant in ((tenants.a, "a1"), (tenants.a, "a2"), (tenants.b, "b1")):
        write_state(database, org, plant, ts, "blocked")
    seen: dict[str, set[str]] = {u: set() for u in users}
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        try:
            user, event, data = got.get(timeout=max(0.01, deadline - time.monotonic()))
        except queue.Empty:
            break
        if event == "state" and data["ts"].startswith(ts.isoformat()[:19]):
            seen[user].add(data["machine_id"])
    stop.set()
    machine = {code: str(org.machines[code]) for org, code in
               ((tenants.a, "a1"), (tenants.a, "a2"), (tenants.b, "b1"))}
    assert seen["a1_tech"] == {machine["a1"]}, "a plant-scoped user sees its plant only"
    assert seen["a_admin"] == {machine["a1"], machine["a2"]}
    assert seen["b_admin"] == {machine["b1"]}
    assert time.monotonic() - written < 3


def test_stream_refuses_a_plant_outside_the_scope_and_no_token(api: Api,
                                                               tenants: Tenants) -> None:
    assert api.call("a1_tech", "GET", f"/v1/stream?plant_id={tenants.a2}").status_code == 404
    assert api.call("b_admin", "GET", f"/v1/stream?plant_id={tenants.a1}").status_code == 404
    assert api.call(None, "GET", "/v1/stream").status_code == 401
