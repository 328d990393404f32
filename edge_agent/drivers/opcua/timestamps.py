"""Which clock an OPC UA value is stamped with, and how far the server's clock is from ours.

A value the server sends because it CHANGED (a data-change notification after the first one of
a monitored item) carries the instant the PLC showed it: with `timestamps: source` its
SourceTimestamp, else its ServerTimestamp, else the time it was received; `server` skips the
SourceTimestamp, `agent` uses the receive time (for PLCs whose clocks are wrong). A value sent
because it was ASKED for (a read, or the first notification of a monitored item, which reports
the current value) carries the receive time: its SourceTimestamp is when it last changed, maybe
hours ago, and the value is only known to hold now. No value is stamped before the server
could have shown it.

Each stamp taken from the server is compared with the receive time: one more than
`max_clock_skew_s` ahead of it, or behind it by more than that plus the subscription's
publishing and sampling delay, is counted (the device's `clock_skew_exceeded`) and logged as a
warning at most once a minute per device.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from asyncua import ua

from edge_agent.drivers.opcua.config import OpcUaDevice, TimestampSource
from edge_agent.drivers.runtime import HealthTracker

log = logging.getLogger(__name__)

_WARN_EVERY_S = 60.0


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts  # asyncua: UTC, maybe naive


class SourceClock:
    """Stamps a device's changed values per its `timestamps` setting and watches the skew."""

    def __init__(self, device: OpcUaDevice, health: HealthTracker) -> None:
        self._device = device
        self._health = health
        # Notifications lag the change by up to a publishing interval (plus sampling).
        lag_s = (device.publishing_interval_ms + device.sampling_interval_ms) / 1000
        self._behind_s = device.max_clock_skew_s + lag_s
        self._ahead_s = device.max_clock_skew_s
        self._warned_at: float | None = None

    def stamp(self, dv: ua.DataValue, received: datetime) -> datetime:
        """The time of a changed value received at `received` (module docstring)."""
        mode = self._device.timestamps
        if mode is TimestampSource.AGENT:
            return received
        ts = _utc(dv.SourceTimestamp) if mode is TimestampSource.SOURCE else None
        ts = ts or _utc(dv.ServerTimestamp)
        if ts is None:
            return received
        self._check(ts, received)
        return ts

    def _check(self, ts: datetime, received: datetime) -> None:
        behind_s = (received - ts).total_seconds()
        self._health.clock_skew_s = behind_s
        if -self._ahead_s <= behind_s <= self._behind_s:
            return
        self._health.clock_skew_exceeded += 1
        at = time.monotonic()
        if self._warned_at is None or at - self._warned_at >= _WARN_EVERY_S:
            self._warned_at = at
            log.warning(
                "opcua server clock differs from the agent's by more than max_clock_skew_s; "
                "fix the clock or set timestamps: agent",
                extra={
                    "device": self._device.name,
                    "skew_s": round(-behind_s, 3),
                    "max_clock_skew_s": self._device.max_clock_skew_s,
                    "timestamps": self._device.timestamps.value,
                },
            )
