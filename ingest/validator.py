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

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from core.tenancy import Tenant
from core.wire import (
    CounterRecord,
    DowntimeRecord,
    Envelope,
    Kind,
    StateRecord,
    TelemetryRecord,
    Topic,
    WireError,
    decode,
    decode_status,
)
from ingest.registry import MachineRef, Registry
from ingest.settings import IngestOptions

# Which staging kind (core.staging.STAGING) each wire kind is written through.
STAGING_KIND = {
    Kind.STATE: "machine_status",
    Kind.DOWNTIME: "downtime_event",
    Kind.COUNTER: "machine_counter",
    Kind.TELEMETRY: "machine_telemetry",
}


@dataclass(frozen=True, slots=True)
class Accepted:
    """A message whose rows can be written under `tenant` (rows in STAGING column order)."""

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

    reason: str
    detail: str
    gateway_code: str | None = None


class Validator:
    def __init__(self, registry: Registry, options: IngestOptions) -> None:
        self._registry = registry
        self._options = options

    def check(self, topic: str, payload: bytes, now: datetime | None = None
              ) -> Accepted | StatusSeen | Rejected:
        try:
            return self._check(topic, payload, now or datetime.now(UTC))
        except Rejected as r:
            return r

    def _check(self, topic_text: str, payload: bytes, now: datetime) -> Accepted | StatusSeen:
        if len(payload) > self._options.max_payload_bytes:
            raise Rejected("payload_too_large",
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
            raise Rejected("gateway_mismatch", f"envelope says gateway {envelope.gateway!r}, "
                           f"topic says {topic.gateway!r}", topic.gateway)
        identity = self._registry.gateway(topic.gateway)
        if identity is None:
            raise Rejected("unknown_gateway", f"gateway {topic.gateway!r} is not registered",
                           topic.gateway)
        if not identity.is_active:
            raise Rejected("inactive_gateway", f"gateway {topic.gateway!r} is disabled",
                           topic.gateway)
        if (topic.org, topic.plant) != (identity.organization_code, identity.plant_code):
            raise Rejected("wrong_tenant", f"topic claims {topic.org}/{topic.plant}, gateway "
                           f"{topic.gateway!r} is registered for {identity.organization_code}/"
                           f"{identity.plant_code}", topic.gateway)
        oldest = self._check_times(envelope, now, topic.gateway)
        tenant = identity.tenant
        codes = {r.machine for r in envelope.records}  # type: ignore[attr-defined]
        machines = self._registry.machines(tenant, codes)
        if unknown := codes - machines.keys():
            raise Rejected("unknown_machine", f"machine(s) {sorted(unknown)} not registered for "
                           f"{topic.org}/{topic.plant}", topic.gateway)
        rows = list(_rows(envelope, tenant, machines))
        return Accepted(tenant, STAGING_KIND[topic.kind], rows, topic.gateway, envelope.seq,
                        oldest)

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
                raise Rejected("timestamp_out_of_range", f"{ts.isoformat()} is outside "
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


def _rows(envelope: Envelope, tenant: Tenant, machines: dict[str, MachineRef]
          ) -> Iterator[tuple[Any, ...]]:
    org = tenant.organization_id
    for r in envelope.records:  # type: ignore[attr-defined]
        m = machines[r.machine]
        if isinstance(r, StateRecord):
            yield (org, m.plant_id, m.machine_id, r.ts, r.state.value, r.reason_code)
        elif isinstance(r, DowntimeRecord):
            yield (org, m.plant_id, m.machine_id, r.event_id, r.started_at, r.ended_at,
                   r.state.value, r.reason_code, r.category.value, r.micro_stop)
        elif isinstance(r, CounterRecord | TelemetryRecord):
            yield (org, m.plant_id, m.machine_id, r.tag, r.ts, r.value)

