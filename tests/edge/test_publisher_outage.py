"""The slow one: the broker stops for 30 s while records keep coming, then comes back."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from core.wire import StateRecord
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.publisher import Publisher
from edge_agent.delivery.settings import BrokerConfig, OutboxConfig
from mes.services.broker import BrokerServer
from tests.edge.mqtt_helpers import GATEWAY, ORG, PLANT, Collector, counter, state
from tests.fixtures.services import require_mosquitto
from tests.support.wait import wait_until

OUTAGE_S = 30
MACHINES = ("m-0", "m-1", "m-2")


def test_broker_outage_loses_nothing_and_keeps_order(
    broker_factory: Callable[..., BrokerServer], tmp_path: Path
) -> None:
    broker = broker_factory()
    require_mosquitto(broker)  # the collector's session must survive the broker's restart
    collector = Collector(broker.host, broker.port, persistent=True)
    config = BrokerConfig(
        host=broker.host,
        port=broker.port,
        flush_interval_s=0.2,
        max_records_per_message=50,
        max_inflight=5,
        reconnect_min_s=0.5,
        reconnect_max_s=2,
    )
    stop = threading.Event()
    sent: list[StateRecord] = []

    def states() -> list[StateRecord]:
        return [r for r in collector.records() if isinstance(r, StateRecord)]

    def produce(outbox: Outbox) -> None:
        i = 0
        while not stop.is_set():
            for machine in MACHINES:
                record = state(machine, i)
                outbox.add_many([record, counter(machine, i)])
                sent.append(record)
            i += 1
            time.sleep(0.02)  # the scenario's load: records keep coming at a steady pace

    with Outbox.open(OutboxConfig(path=tmp_path / "outbox.sqlite"), GATEWAY) as outbox:
        publisher = Publisher(
            outbox,
            config,
            org=ORG,
            plant=PLANT,
            gateway=GATEWAY,
            agent_version="test",
            config_hash="outage",
        )
        producer = threading.Thread(target=produce, args=(outbox,), daemon=True)
        publisher.start()
        producer.start()
        try:
            wait_until(lambda: publisher.stats().acked >= 10, 10, "publishing to start")
            broker.stop()
            wait_until(lambda: not publisher.connected, 10, "the publisher to notice")
            time.sleep(OUTAGE_S)  # the scenario: the broker stays away this long
            held = outbox.depth()
            assert held.records > 0 and held.oldest_age_s is not None
            broker.start()
            wait_until(lambda: publisher.connected, 15, "the reconnect")
            made_before_reconnect = sent[-1].ts
            wait_until(lambda: any(r.ts > made_before_reconnect for r in states()), 30,
                       "records made after the reconnect")  # fmt: skip
            stop.set()
            producer.join()

            def drained() -> bool:
                depth = outbox.depth()
                return not (depth.records or depth.messages or publisher.stats().inflight)

            wait_until(drained, 60, "the backlog to drain")
            wait_until(
                lambda: len({(r.machine, r.ts) for r in states()}) == len(sent),
                30,
                "every state record",
            )
        finally:
            stop.set()
            publisher.stop(drain_timeout=1)
            collector.close()

    got = collector.snapshot()
    assert publisher.stats().disconnects >= 1
    by_seq: dict[int, set[bytes]] = {}
    for m in got:
        by_seq.setdefault(m.envelope.seq, set()).add(m.payload)
    assert sorted(by_seq) == list(range(1, max(by_seq) + 1))  # no seq gap
    assert all(len(p) == 1 for p in by_seq.values())  # a replay carries the same records
    received = states()
    for machine in MACHINES:
        first_seen: list = []
        for r in received:
            if r.machine == machine and r.ts not in first_seen:
                first_seen.append(r.ts)
        assert first_seen == sorted(first_seen), f"{machine} out of order"
        assert first_seen == [r.ts for r in sent if r.machine == machine]
