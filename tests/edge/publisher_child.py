"""A separate process over an outbox file, for the SIGKILL tests.

    python -m tests.edge.publisher_child OUTBOX START COUNT [--flush] [--port PORT [--protocol P]]

Hands counter records START..START+COUNT-1 (machines m-0..m-2) to the outbox. Without --port
it prints `added` (after `flush()` with --flush) and waits to be killed. With --port it then
publishes to 127.0.0.1:PORT, prints `publishing`, and `drained` once the outbox is empty and
nothing is in flight, then stops cleanly.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from core.mqtt import MqttProtocol
from edge_agent.delivery.outbox import Outbox
from edge_agent.delivery.publisher import Publisher
from edge_agent.delivery.settings import BrokerConfig, OutboxConfig
from mes.services.ports import LOOPBACK
from tests.edge.mqtt_helpers import GATEWAY, ORG, PLANT, counter


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("outbox", type=Path)
    p.add_argument("start", type=int)
    p.add_argument("count", type=int)
    p.add_argument("--flush", action="store_true")
    p.add_argument("--port", type=int)
    p.add_argument("--protocol", type=MqttProtocol, default=MqttProtocol.MQTT5)
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    outbox = Outbox.open(OutboxConfig(path=args.outbox), GATEWAY)
    outbox.add_many(counter(f"m-{i % 3}", i) for i in range(args.start, args.start + args.count))
    outbox.put_state("last_added", args.start + args.count - 1)
    if args.flush:
        outbox.flush()
    if args.port is None:
        print("added", flush=True)
        time.sleep(3600)
        return
    broker = BrokerConfig(
        host=LOOPBACK,
        port=args.port,
        protocol=args.protocol,
        flush_interval_s=0.1,
        max_records_per_message=5,
        max_inflight=10,
        reconnect_min_s=0.2,
        reconnect_max_s=1,
    )
    publisher = Publisher(
        outbox,
        broker,
        org=ORG,
        plant=PLANT,
        gateway=GATEWAY,
        agent_version="test",
        config_hash="child",
    )
    publisher.start()
    print("publishing", flush=True)
    while outbox.depth().records or outbox.depth().messages or publisher.stats().inflight:
        time.sleep(0.05)
    publisher.stop()
    outbox.close()
    print("drained", flush=True)


if __name__ == "__main__":
    main()
