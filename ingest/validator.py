"""Decode and check one MQTT message; turn its records into staging rows or say why not.

Checks, in order, each with its dead-letter reason: payload size (`payload_too_large`), topic
(`bad_topic`), JSON and schema (`malformed`, `invalid`: types, finite numbers, string lengths,
unknown fields), the envelope's gateway against the topic's (`gateway_mismatch`), the gateway
registry (`unknown_gateway`, `inactive_gateway`), the tenant the topic claims against the one
registered for the gateway (`wrong_tenant`), timestamps within the accepted window
(`timestamp_out_of_range`), and machine codes of the gateway's tenant (`unknown_machine`). A
message is taken or refused whole: its replay, once the cause is fixed, is then simple.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.staging import STAGING_OF
from core.tenancy import Tenant
from core.wire import (
    DeadLetterReason,
    DowntimeRecord,
    Envelope,
    Kind,
    Topic,
    WireError,
    decode,
    decode_status,
)
from ingest.registry import MachineRef, Registry
from ingest.settings import IngestOptions


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

    def __init__(self, registry: Registry, options: IngestOptions) -> None:
        self._registry = registry
        self._options = options

    def check(self, topic: str, payload: bytes, now: datetime | None = None
              ) -> Accepted | StatusSeen | Rejected:
        """The verdict on one message; `now` (default: the clock) bounds its timestamps."""
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
