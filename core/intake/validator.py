"""Decode and check one MQTT message; turn its records into staging rows or say why not.

The ingest subscribes to all of `mes/v1/#`. Topics of another service under that root are not
ours and are left alone (`NotOurs`): today `mes/v1/{org}/{plant}/maintenance/#`, where the
maintenance engine publishes its tasks. Everything else is checked, in order, each check with
its dead-letter reason: payload size (`payload_too_large`), topic (`bad_topic`: another depth,
bad codes, unknown kind), JSON and schema (`malformed`, `invalid`: types, finite numbers, string
lengths, unknown fields), the envelope's gateway against the topic's (`gateway_mismatch`), the
gateway registry (`unknown_gateway`, `inactive_gateway`), the tenant the topic claims against
the one registered for the gateway (`wrong_tenant`), timestamps within the accepted window
(`timestamp_out_of_range`), and machine codes of the gateway's tenant (`unknown_machine`). A
message is taken or refused whole: its replay, once the cause is fixed, is then simple.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import Field

from core.config_model import StrictModel
from core.intake.registry import MachineRef, Registry
from core.staging import STAGING_OF
from core.tenancy import Tenant
from core.wire import (
    TOPIC_ROOT,
    DeadLetterReason,
    DowntimeRecord,
    Envelope,
    Kind,
    Topic,
    WireError,
    decode,
    decode_status,
)


class Limits(StrictModel):
    """What a message may be: its size, and how far its timestamps may lie from now. The
    ingest's settings (`ingest.max_payload_bytes`, ...) and the API's replay read the same keys."""

    # Set together with the broker's max_packet_size (config/mosquitto/mosquitto.conf).
    max_payload_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_future_s: float = Field(default=300, ge=0)
    max_past_s: float = Field(default=30 * 24 * 3600, gt=0)


@dataclass(frozen=True, slots=True)
class Accepted:
    """A message whose rows can be written under `tenant`.

    `rows` are in the column order of `core.staging.STAGING[staging_kind]`; `oldest` is its
    earliest record time (for the lag metric), None for an empty envelope.
    """

    tenant: Tenant
    staging_kind: str
    rows: list[tuple[Any, ...]]
    gateway: str
    seq: int
    oldest: datetime | None


@dataclass(frozen=True, slots=True)
class StatusSeen:
    """A gateway's retained birth or last will: nothing to write."""

    gateway: str
    status: str


@dataclass(frozen=True, slots=True)
class NotOurs:
    """A topic under `mes/v1/` that another service publishes on: acknowledged, not stored."""

    owner: str


# Levels 0-1 are TOPIC_ROOT, 2-3 org and plant; level 4 names the publisher. A gateway cannot
# be registered under such a name (it would never be heard).
_OTHER_SERVICES = {"maintenance": "maintenance engine"}


def not_ours(topic: str) -> NotOurs | None:
    """Whether `topic` lies in another service's part of `mes/v1/` (`mes/v1/+/+/<service>/#`,
    the service's level itself included, as the MQTT filter would match it)."""
    parts = topic.split("/", 5)
    if len(parts) < 5 or "/".join(parts[:2]) != TOPIC_ROOT:
        return None
    owner = _OTHER_SERVICES.get(parts[4])
    return NotOurs(owner) if owner else None


@dataclass(frozen=True, slots=True)
class Rejected(Exception):
    """Why a message goes to the dead letters."""

    reason: DeadLetterReason
    detail: str
    gateway_code: str | None = None


class Validator:
    """Runs the checks of the module docstring on one message at a time.

    Looks gateways and machines up in `registry` (cached; a database error there propagates,
    for the caller's retry) and takes its limits from `options`.
    """

    def __init__(self, registry: Registry, options: Limits) -> None:
        self._registry = registry
        self._options = options

    def check(self, topic: str, payload: bytes, now: datetime | None = None
              ) -> Accepted | StatusSeen | NotOurs | Rejected:
        """The verdict on one message; `now` (default: the clock) bounds its timestamps."""
        if other := not_ours(topic):
            return other
        try:
            return self._check(topic, payload, now or datetime.now(UTC))
        except Rejected as r:
            return r

    def _check(self, topic_text: str, payload: bytes, now: datetime) -> Accepted | StatusSeen:
        if len(payload) > self._options.max_payload_bytes:
            raise Rejected(DeadLetterReason.PAYLOAD_TOO_LARGE,
                           f"{len(payload)} bytes > {self._options.max_payload_bytes}")
        try:
            topic = Topic.parse(topic_text)
        except WireError as e:
            raise Rejected(e.reason, e.detail) from None
        if topic.kind is Kind.STATUS:
            return self._status(topic, payload)
        try:
            envelope = decode(topic.kind, payload)
        except WireError as e:
            raise Rejected(e.reason, e.detail, topic.gateway) from None
        if envelope.gateway != topic.gateway:
            raise Rejected(DeadLetterReason.GATEWAY_MISMATCH,
                           f"envelope says gateway {envelope.gateway!r}, "
                           f"topic says {topic.gateway!r}", topic.gateway)
        identity = self._registry.gateway(topic.gateway)
        if identity is None:
            raise Rejected(DeadLetterReason.UNKNOWN_GATEWAY,
                           f"gateway {topic.gateway!r} is not registered", topic.gateway)
        if not identity.is_active:
            raise Rejected(DeadLetterReason.INACTIVE_GATEWAY,
                           f"gateway {topic.gateway!r} is disabled", topic.gateway)
        if (topic.org, topic.plant) != (identity.organization_code, identity.plant_code):
            raise Rejected(DeadLetterReason.WRONG_TENANT,
                           f"topic claims {topic.org}/{topic.plant}, gateway "
                           f"{topic.gateway!r} is registered for {identity.organization_code}/"
                           f"{identity.plant_code}", topic.gateway)
        oldest = self._check_times(envelope, now, topic.gateway)
        tenant = identity.tenant
        codes = {r.machine for r in envelope.records}  # type: ignore[attr-defined]
        machines = self._registry.machines(tenant, codes)
        if unknown := codes - machines.keys():
            raise Rejected(DeadLetterReason.UNKNOWN_MACHINE,
                           f"machine(s) {sorted(unknown)} not registered for "
                           f"{topic.org}/{topic.plant}", topic.gateway)
        staging = STAGING_OF[topic.kind]
        return Accepted(tenant, staging.name, _rows(staging.row, envelope, tenant, machines),
                        topic.gateway, envelope.seq, oldest)

    def _status(self, topic: Topic, payload: bytes) -> StatusSeen:
        try:
            status = decode_status(payload)
        except WireError as e:
            raise Rejected(e.reason, f"status: {e.detail}", topic.gateway) from None
        return StatusSeen(topic.gateway, status.status)

    def _check_times(self, envelope: Envelope, now: datetime, gateway: str) -> datetime | None:
        earliest = now - timedelta(seconds=self._options.max_past_s)
        latest = now + timedelta(seconds=self._options.max_future_s)
        oldest = None
        for ts in _timestamps(envelope):
            if not earliest <= ts <= latest:
                raise Rejected(DeadLetterReason.TIMESTAMP_OUT_OF_RANGE,
                               f"{ts.isoformat()} is outside "
                               f"[{earliest.isoformat()}, {latest.isoformat()}]", gateway)
            if oldest is None or ts < oldest:
                oldest = ts
        return oldest


def _timestamps(envelope: Envelope) -> Iterator[datetime]:
    for r in envelope.records:  # type: ignore[attr-defined]
        if isinstance(r, DowntimeRecord):
            yield r.started_at
            if r.ended_at is not None:
                yield r.ended_at
        else:
            yield r.ts


def _rows(row: Callable[..., tuple[Any, ...]], envelope: Envelope, tenant: Tenant,
          machines: dict[str, MachineRef]) -> list[tuple[Any, ...]]:
    org = tenant.organization_id
    return [row(r, org, (m := machines[r.machine]).plant_id, m.machine_id)
            for r in envelope.records]  # type: ignore[attr-defined]
