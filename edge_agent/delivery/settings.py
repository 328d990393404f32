"""Configuration of the agent's way to the centre: the MQTT broker and the durable outbox.

These two models are sections of the agent's tag map (`broker:` and `outbox:`); they own every
default of the publisher and the outbox. Wire facts that are not choices (QoS 1, the topic
layout, the envelope) live in `core.wire` and are not configurable here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, model_validator

from core.config_model import StrictModel
from core.mqtt import MqttConnection, TlsConfig
from core.wire import Kind, WireForm


class BrokerConfig(MqttConnection):
    """Where and how the agent publishes: the connection (core.mqtt) and the publishing.

    `port` defaults to 8883 with TLS and 1883 without. `client_id` defaults to
    `mes-edge-{gateway}` (see `client_id_for`): one stable id per gateway, so that a second agent
    started by mistake for the same gateway takes the session over visibly instead of both
    publishing.
    """

    # Records of one kind collected during this interval go out as one envelope (per topic).
    flush_interval_s: float = Field(default=1.0, gt=0, le=60)
    max_records_per_message: int = Field(default=500, ge=1, le=100_000)
    # Kept below the broker's max_packet_size and the ingest's payload limit (config/).
    max_message_bytes: int = Field(default=256 * 1024, ge=1024)
    # paho's in-flight window (max_inflight_messages_set): QoS 1 messages sent, not yet PUBACKed.
    max_inflight: int = Field(default=20, ge=1, le=65535)
    qos: Literal[1] = 1
    # Counters and telemetry as columns (envelope v 2, about a third of the bytes) or as one
    # object per record (v 1, for an ingest older than the columns form).
    wire_form: WireForm = WireForm.COLUMNS

    @model_validator(mode="before")
    @classmethod
    def _default_port(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("port") is None:
            tls = data.get("tls")
            if isinstance(tls, TlsConfig):
                enabled = tls.enabled
            else:
                enabled = isinstance(tls, dict) and tls.get("enabled") is True
            data = {**data, "port": 8883 if enabled else 1883}
        return data

    def client_id_for(self, gateway: str) -> str:
        """The MQTT client id: the configured one, else derived from the gateway code."""
        return self.client_id or f"mes-edge-{gateway}"


# At the outbox's bound, pending records are dropped in this order: telemetry first (an analog
# trace tolerates holes), then counters (totals, so a later record carries what a dropped one
# said), then state, and downtime last (a lost stop is lost availability). Messages already
# assembled are dropped by the same order of their kind, oldest first.
DROP_ORDER: tuple[Kind, ...] = (Kind.TELEMETRY, Kind.COUNTER, Kind.STATE, Kind.DOWNTIME)


class OutboxConfig(StrictModel):
    """The durable store-and-forward outbox (SQLite, WAL).

    Bounded by `max_bytes` (payload bytes of pending records and stored messages) and by
    `max_age_s` (age of the oldest data); at either bound data is dropped in `DROP_ORDER`, every
    dropped record counted by kind and logged. Records handed over are committed in groups every
    `commit_interval_ms`, so durability does not cost one disk flush per record; a record is
    safe once the group holding it has committed (or after `Outbox.flush()`).

    Sizing: a counter or telemetry record is about 30 bytes in the columns form (80 to 120
    bytes as one JSON object: the records form, and every state and downtime record), so the
    default 1 GiB holds some 30 million of them, over three hours of 3,000 records per second;
    the SQLite file takes up to twice the payload (page slack, free pages). Only changes are
    records (telemetry after its deadband), so that is far more for most gateways.
    """

    path: Path
    max_bytes: int = Field(default=1024 * 1024 * 1024, ge=64 * 1024)
    max_age_s: float = Field(default=7 * 24 * 3600, gt=0)
    commit_interval_ms: int = Field(default=50, ge=1, le=5000)
