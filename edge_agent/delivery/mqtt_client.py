"""Build the paho-mqtt client for the publisher from `BrokerConfig`: protocol, auth, TLS, will.

Only construction lives here; the publisher owns the connection's lifetime.
"""

from __future__ import annotations

import logging

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from core.mqtt import apply_tls
from core.wire import GatewayStatus, Kind, Topic, encode
from edge_agent.delivery.settings import BrokerConfig, MqttProtocol

log = logging.getLogger(__name__)


def build_client(config: BrokerConfig, status_topic: Topic, gateway: str) -> mqtt.Client:
    """A paho client, not yet connected, with the retained `offline` last will set."""
    if status_topic.kind is not Kind.STATUS:
        raise ValueError("the last will goes on the status topic")
    v5 = config.protocol is MqttProtocol.MQTT5
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2,
        client_id=config.client_id_for(gateway),
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        # The outbox is the session: nothing is kept on the broker for a publisher.
        clean_session=None if v5 else True,
        # The publisher reconnects itself, with jitter; paho's own loop has none.
        reconnect_on_failure=False,
    )
    # Paho's in-flight window, and no queue behind it: a publish beyond the window is refused
    # (MQTT_ERR_QUEUE_SIZE) and stays in the outbox, the one queue there is.
    client.max_inflight_messages_set(config.max_inflight)
    client.max_queued_messages_set(config.max_inflight)
    if config.username is not None:
        password = config.password.get_secret_value() if config.password else None
        client.username_pw_set(config.username, password)
    apply_tls(client, config.tls, section="broker", host=config.host)
    will = GatewayStatus(v=1, gateway=gateway, status="offline")
    client.will_set(str(status_topic), encode(will), qos=config.qos, retain=True)
    return client

