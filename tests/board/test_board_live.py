"""A tile's colour through the whole running pipeline: `mes sim` (Modbus) -> edge agent ->
the suite's broker (mosquitto where installed) -> ingest -> database -> NOTIFY -> `mes api`'s
stream -> the board's script in Debian's chromium.

The simulator's truth log stamps each state change with the wall-clock instant its registers
started showing it; the page stamps each change of the tile's state with the same clock
(a MutationObserver, so no polling delay is added to what is measured). Every state lasts at
least MIN_DWELL_S, so the agent sees each one and the tile shows each one.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from ingest.service import IngestService
from mes.services.broker import BrokerServer
from mes.sim.config import Protocol, SimConfig
from mes.sim.handle import SimulatorHandle
from tests.board.conftest import Board
from tests.edge.e2e_helpers import AgentThread, first_run, sim_map, write_map
from tests.fixtures.tenants import Tenants
from tests.ingest.conftest import start_ingest  # noqa: F401  (a fixture, used here)
from tests.support.wait import wait_until

LIMIT_S = 2.0  # the acceptance criterion: colour within 2 s of the PLC's change
CHANGES = 3  # state changes measured after the page is live
MIN_DWELL_S = 3.0
MACHINE = "a1-press"  # the seeded machine of plant a1 (tests/fixtures/tenants.py)

# Records [epoch ms, state] for every change of the tile's data-state.
OBSERVE = """tile => {
  window.tileChanges = [];
  new MutationObserver(() => window.tileChanges.push([Date.now(), tile.dataset.state]))
    .observe(tile, {attributes: true, attributeFilter: ["data-state"]});
}"""


def changes_since(sim: SimulatorHandle, since: datetime) -> list[tuple[float, str]]:
    """The simulator's state changes after `since`: (epoch seconds, state)."""
    return [(datetime.fromisoformat(r["ts"]).timestamp(), r["state"])
            for r in first_run(sim.truth())
            if r["type"] == "state" and datetime.fromisoformat(r["ts"]) > since]


def test_a_tiles_colour_follows_the_simulators_state_change_within_2_s(
        board: Board, tenants: Tenants, broker_server: BrokerServer,
        start_ingest: Callable[..., IngestService],  # noqa: F811  (the imported fixture)
        tmp_path: Path) -> None:
    start_ingest(broker_server)
    config = SimConfig(machines=1, seed=11, speed=5.0, tick_s=0.1, min_dwell_s=MIN_DWELL_S,
                       protocols=(Protocol.MODBUS,), truth=tmp_path / "truth.jsonl")
    with SimulatorHandle(config, process=True) as sim:
        data = sim_map(sim, broker_server.port, tmp_path / "outbox.sqlite",
                       v5=broker_server.supports_mqtt5)
        data["gateway"] = {"org": tenants.a.code, "plant": "a1", "gateway": "gw-a1"}
        data["machines"][0]["code"] = MACHINE  # the sim's m001 is the plant's press
        runner = AgentThread(write_map(tmp_path / "map.yaml", data)).start()
        try:
            page = board.signed_in("a1_tech")
            tile = page.locator(f'.tile[data-machine="{tenants.a.machines["a1"]}"]')

            def tile_shows_the_sims_state() -> bool:
                page.reload()
                last = [r for r in first_run(sim.truth()) if r["type"] == "state"][-1]
                return tile.get_attribute("data-state") == last["state"]

            # Generous set-up: the agent connects, the first rows land, the page draws them.
            wait_until(tile_shows_the_sims_state, 60, "the tile to show the simulator's state",
                       interval=0.5)
            page.wait_for_function("() => document.body.dataset.live === 'yes'", timeout=10000)
            tile.evaluate(OBSERVE)
            watching = datetime.now().astimezone()
            wait_until(lambda: len(changes_since(sim, watching)) >= CHANGES, 120,
                       f"{CHANGES} state changes of the simulator", interval=0.25)
            want = changes_since(sim, watching)[:CHANGES]

            def seen() -> list[tuple[float, str]]:
                return [(ms / 1000, state) for ms, state in page.evaluate("window.tileChanges")]

            # The tile catches up (or the latencies below say by how much it did not).
            wait_until(lambda: len(seen()) >= CHANGES, 30, "the tile to show every change",
                       interval=0.1)
            board.shot(page, "plant-live")
        finally:
            runner.stop()
    latencies = []
    for at, state in want:
        shown = next((t for t, s in seen() if s == state and t >= at), None)
        assert shown is not None, (state, at, seen())
        latencies.append(shown - at)
    print(f"\nsimulator state change -> tile colour, s: {[round(x, 3) for x in latencies]}")
    assert max(latencies) < LIMIT_S, latencies
