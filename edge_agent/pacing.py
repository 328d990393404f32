"""Overload, gracefully: when the agent cannot keep its configured poll rate, every poll slows
by one shared factor, so that the process leaves room for its own threads.

The publisher (paho's keepalive and PUBACKs) and the status endpoint run on threads of their own,
but Python runs one thread at a time: a loop that polls flat out starves them, the broker drops
the agent for a missed keepalive and /metrics stops answering exactly when it matters. So the
agent's tick measures, over windows of at least `WINDOW_S`, the process's CPU time over wall
time: Python code is held to about one core by the interpreter lock, so a share near 1 is the
agent at its capacity. Above `BUSY_HIGH` the slow-down factor grows so that the share would
fall to `BUSY_TARGET`; below `BUSY_LOW` it shrinks back towards 1 by at most a fifth per window.
Every polling driver waits `poll_interval_s x factor` between polls (drivers.runtime.Pace), so
all devices slow evenly and none is dropped. A PLC that answers slowly is not the agent's
overload: it shows in its own read latency and slows only its own polls. The factor is the
metric `mes_edge_poll_slowdown_ratio`; a warning says by how much when polling first slows and
again whenever the factor moves by more than a quarter, and when the configured rate is kept
again. Subscriptions (OPC UA) are paced by their server, not here. The outbox meanwhile drains
at the broker's pace: the publisher's window, not the poll rate, decides how fast.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from edge_agent.drivers.runtime import Pace

log = logging.getLogger(__name__)

WINDOW_S = 1.0
BUSY_HIGH = 0.75
BUSY_TARGET = 0.6
BUSY_LOW = 0.45
MAX_FACTOR = 50.0


class PaceController:
    """Sets `pace.factor` from the process's CPU share; call `update()` now and then."""

    def __init__(
        self,
        pace: Pace,
        *,
        clock: Callable[[], float] = time.monotonic,
        cpu: Callable[[], float] = time.process_time,
    ) -> None:
        self.pace = pace
        self.busy: float | None = None  # the process's CPU share over the last window
        self._clock = clock
        self._cpu = cpu
        self._since = clock()
        self._cpu_since = cpu()
        self._warned = 1.0

    def update(self) -> None:
        """Close the window if it is long enough, and adjust the factor."""
        now, cpu = self._clock(), self._cpu()
        if now - self._since < WINDOW_S:
            return
        self.busy = busy = (cpu - self._cpu_since) / (now - self._since)
        self._since, self._cpu_since = now, cpu
        factor = self.pace.factor
        if busy > BUSY_HIGH:
            factor = min(MAX_FACTOR, factor * busy / BUSY_TARGET)
        elif busy < BUSY_LOW and factor > 1.0:
            factor = max(1.0, factor * max(0.8, busy / BUSY_TARGET))
        self.pace.factor = factor
        self._report(busy)

    def _report(self, busy: float) -> None:
        factor = self.pace.factor
        if factor == 1.0 and self._warned > 1.0:
            log.warning("polling back at the configured rate", extra={"cpu_share": round(busy, 2)})
            self._warned = 1.0
        elif factor > 1.0 and not 0.75 < factor / self._warned < 1.25:
            log.warning(
                "the agent cannot keep the configured poll rate: every poll slowed %.1fx "
                "(%.0f %% of the configured rate)",
                factor, 100 / factor,
                extra={"poll_slowdown": round(factor, 2), "cpu_share": round(busy, 2)},
            )  # fmt: skip
            self._warned = factor
