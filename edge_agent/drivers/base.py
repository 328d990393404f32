"""The one interface every PLC driver honours, and the readings and health it reports.

A driver owns one device's connection. `read_once` reads every tag once (for `mes edge check`
and polling); `run` acquires values until `stop` is set, handling connection loss itself and
reporting tags it cannot read as readings with `error` set, so the state layer can declare the
machine `offline`. Drivers never raise out of `run` except on cancellation.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

import msgspec

from core.config_model import StrictModel

if TYPE_CHECKING:
    from edge_agent.drivers.runtime import Pace

Value = bool | int | float | str | None


class TagReading(msgspec.Struct, gc=False):
    """A tag's value at `ts` (UTC: when the PLC showed it, never earlier; see the drivers); on
    failure `value` is None, `error` set. Read-only by convention: one is made per value read,
    so it is the cheapest object to make with attributes: a msgspec struct, built in C and left
    out of the garbage collector (it holds no container, so it can be in no reference cycle),
    several times cheaper than a slots dataclass (a frozen one is four times dearer still)."""

    machine: str
    tag: str
    value: Value
    ts: datetime
    error: str | None = None


@dataclass(frozen=True, slots=True)
class BoundTag:
    """A tag of a machine bound to its address on the machine's device.

    `address` is the tag's settings in the tag model of the device's protocol
    (drivers.registry); each driver refuses addresses of another protocol.
    """

    machine: str
    tag: str
    address: StrictModel


@dataclass(frozen=True, slots=True)
class DriverHealth:
    """A snapshot of a driver's connection and counters (for metrics and `mes edge check`).

    `reads` and `read_errors` count tag values; `requests` counts protocol requests issued.
    `clock_skew_s` is how far the device's last stamp was behind the agent's clock (negative:
    ahead), `clock_skew_exceeded` how many stamps were off by more than the device allows
    (devices that stamp values themselves: OPC UA).
    """

    connected: bool
    last_ok: datetime | None
    consecutive_errors: int
    reads: int
    read_errors: int
    last_error: str | None
    requests: int
    last_latency_s: float | None
    clock_skew_s: float | None = None
    clock_skew_exceeded: int = 0


class Driver(Protocol):
    """What the agent needs from a PLC driver; one instance per device."""

    name: str
    pace: Pace  # polling drivers stretch their interval by it (drivers.runtime.Pace)

    async def read_once(self) -> list[TagReading]:
        """Connect if needed and read every configured tag once."""
        ...

    async def run(self, sink: Callable[[list[TagReading]], None], stop: asyncio.Event) -> None:
        """Acquire values into `sink` until `stop` is set; recovers from connection loss."""
        ...

    def health(self) -> DriverHealth:
        """Current connection state and counters."""
        ...

    def watches(self, machine: str, tags: Collection[str]) -> bool:
        """True when a live subscription watches every one of `tags` of `machine` right now, so
        that silence from them means their values did not change (not that the PLC is gone)."""
        ...

    async def close(self) -> None:
        """Release the connection; the driver may connect again later."""
        ...

