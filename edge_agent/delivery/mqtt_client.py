"""Build the paho-mqtt client for the publisher from `BrokerConfig`: the shared connection
settings (core.mqtt.build_client), then the publisher's in-flight window and its last will.

Only construction lives here; the publisher owns the connection's lifetime.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt

from core.mqtt import build_client as build_mqtt_client
from core.wire import GatewayStatus, Kind, Topic, encode
from edge_agent.delivery.settings import BrokerConfig


def build_client(config: BrokerConfig, status_topic: Topic, gateway: str) -> mqtt.Client:
    """A paho client, not yet connected, with the retained `offline` last will set."""
    if status_topic.kind is not Kind.STATUS:
        raise ValueError("the last will goes on the status topic")
    client = build_mqtt_client(
        config,
        client_id=config.client_id_for(gateway),
        section="broker",
        # The outbox is the session: nothing is kept on the broker for a publisher.
        persistent_session=False,
        # The publisher reconnects itself, with jitter; paho's own loop has none.
        reconnect_on_failure=False,
    )
    # Paho's in-flight window, and no queue behind it: a publish beyond the window is refused
    # (MQTT_ERR_QUEUE_SIZE) and stays in the outbox, the one queue there is.
    client.max_inflight_messages_set(config.max_inflight)
    client.max_queued_messages_set(config.max_inflight)
    will = GatewayStatus(v=1, gateway=gateway, status="offline")
    client.will_set(str(status_topic), encode(will), qos=config.qos, retain=True)
    return client
