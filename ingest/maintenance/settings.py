"""Settings of the maintenance engine: `[maintenance]` in the ingest's settings (the engine
runs inside `mes ingest run`) and in `mes maintenance run`'s. Environment:
`MES_MAINTENANCE__ENABLED`, `MES_MAINTENANCE__MQTT__HOST`, ..."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field, model_validator

from core.config_model import StrictModel, ordered
from core.mqtt import MqttConnection
from core.settings import Settings
from ingest.maintenance.settling import Settling


class NotifyMqtt(MqttConnection):
    """The broker tasks are published to, as the `mes-maintenance` account
    (`mes/v1/{org}/{plant}/maintenance/task`, QoS 1)."""

    host: str = Field(default="127.0.0.1", min_length=1)
    port: int = Field(default=1883, ge=1, le=65535)


class MaintenanceOptions(StrictModel):
    """`enabled`: run the engine inside the ingest. `sweep_s`: how often every schedule of
    every plant is evaluated besides the batches and the calendar (runtime of machines that
    landed nothing new, webhook retries, schedule changes). `batch_interval_s`: the least
    time between two evaluations of committed machines (those of the commits in between are
    evaluated together). `settle_s`: how far behind now the stored meter checkpoints and
    condition cursors stay (a row landing later than that behind a later row of its machine
    is counted at the next rebuild); `recompute_s`: how often each of them is read from
    scratch again (docs/maintenance.md, "Cost"). `mqtt`: where tasks are published
    (unset: not published). Webhook POSTs time out after `webhook_timeout_s`, are retried with
    backoff from `webhook_retry_min_s` to `webhook_retry_max_s`, and given up (status
    `failed`) after `webhook_max_attempts`."""

    enabled: bool = True
    sweep_s: float = Field(default=60, gt=0)
    batch_interval_s: float = Field(default=5, ge=0)
    settle_s: float = Field(default=600, ge=0)
    recompute_s: float = Field(default=86400, gt=0)
    mqtt: NotifyMqtt | None = None
    webhook_timeout_s: float = Field(default=10, gt=0)
    webhook_retry_min_s: float = Field(default=1, gt=0)
    webhook_retry_max_s: float = Field(default=300, gt=0)
    webhook_max_attempts: int = Field(default=12, ge=1)

    @model_validator(mode="after")
    def _retry_range(self) -> MaintenanceOptions:
        ordered(self, "webhook_retry_min_s", "webhook_retry_max_s")
        ordered(self, "settle_s", "recompute_s")
        return self

    @property
    def settling(self) -> Settling:
        """Where stored checkpoints and cursors go (ingest/maintenance/settling.py)."""
        return Settling(timedelta(seconds=self.settle_s), timedelta(seconds=self.recompute_s))


class MaintenanceSettings(Settings):
    """What `mes maintenance run` reads: database and log (core.settings), maintenance."""

    maintenance: MaintenanceOptions = Field(default_factory=MaintenanceOptions)
