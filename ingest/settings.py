"""Settings of `mes ingest run`: the common sections plus `mqtt` and `ingest`.

Environment: `MES_MQTT__HOST`, `MES_INGEST__BATCH_ROWS`, ...; file: `[mqtt]`, `[ingest]`.
"""

from __future__ import annotations

import socket

from pydantic import Field, model_validator

from core.config_model import ordered
from core.intake.validator import Limits
from core.mqtt import MqttConnection
from core.settings import Settings
from ingest.maintenance.settings import MaintenanceOptions


class MqttSubscriberSettings(MqttConnection):
    """How the ingest subscribes: the connection (core.mqtt) and the subscription.

    A persistent session (clean start off, `session_expiry_s`) makes the broker keep QoS 1
    messages while the ingest is down; `client_id` must therefore be stable per process and
    unique among ingest processes. `receive_maximum` bounds the messages the broker sends
    before they are acknowledged, and so the memory in flight (with `ingest.max_payload_bytes`).
    MQTT 5 (the default) is needed for receive maximum, session expiry and retain handling;
    with 3.1.1 set share_group to "" too.
    """

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str = Field(default_factory=lambda: f"mes-ingest-{socket.gethostname()}",
                           min_length=1, max_length=128)
    reconnect_min_s: float = Field(default=0.5, gt=0)
    reconnect_max_s: float = Field(default=30.0, gt=0)
    session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    # Empty (the default): a plain subscription, for one ingest process. Set a group to split
    # the load over several processes, knowing mosquitto 2.0's limit (measured here): after a
    # broker restart, a shared subscription of an offline session is not restored, so messages
    # published before that ingest reconnects reach no one (docs/operations.md).
    share_group: str = Field(default="", pattern=r"^[A-Za-z0-9_-]*$")
    # Everything under mes/v1/: a topic of the wrong depth must reach the ingest to be
    # dead-lettered (bad_topic), never be dropped unseen by a narrower filter.
    topic_filter: str = "mes/v1/#"
    receive_maximum: int = Field(default=1000, ge=1, le=65535)

    @property
    def subscription(self) -> str:
        """The shared subscription several ingest processes split the load on."""
        if self.share_group:
            return f"$share/{self.share_group}/{self.topic_filter}"
        return self.topic_filter


class IngestOptions(Limits):
    """Validation limits (core.intake.validator.Limits), batching, database retries and the
    status endpoint."""

    batch_rows: int = Field(default=20_000, ge=1)
    # Record to commit within 0.5 s at p99 under half load, on a loaded 2-core machine
    # (`mes bench ingest`); a backlog fills batches by size, not age.
    batch_age_ms: int = Field(default=100, ge=1)
    # Writer threads, each with its own batches and database connection; a gateway's
    # messages always take the same one (ingest/service.py). Two use two database cores.
    writers: int = Field(default=2, ge=1, le=16)
    registry_ttl_s: float = Field(default=60, gt=0)
    unknown_retry_s: float = Field(default=5, ge=0)
    dead_letter_payload_max: int = Field(default=64 * 1024, ge=256)
    retry_min_s: float = Field(default=0.2, gt=0)
    retry_max_s: float = Field(default=30, gt=0)
    status_port: int | None = Field(default=None, ge=0, le=65535)
    status_host: str = "127.0.0.1"

    @model_validator(mode="after")
    def _retry_range(self) -> IngestOptions:
        ordered(self, "retry_min_s", "retry_max_s")
        return self


class IngestSettings(Settings):
    """Everything `mes ingest run` reads: database and log (core.settings), mqtt, ingest,
    maintenance (ingest/maintenance/settings.py)."""

    mqtt: MqttSubscriberSettings = Field(default_factory=MqttSubscriberSettings)
    ingest: IngestOptions = Field(default_factory=IngestOptions)
    # The maintenance engine runs inside the ingest unless `maintenance.enabled` is false.
    maintenance: MaintenanceOptions = Field(default_factory=MaintenanceOptions)
