"""Capped exponential backoff with jitter: the one retry schedule every reconnect loop uses.

Drivers reconnecting to a PLC, the publisher reconnecting to the broker and the ingest writer
retrying the database all wait the same way, so that a plant's gateways (or a data centre's
ingest processes) coming back after an outage spread out instead of arriving at once.
"""

from __future__ import annotations

import random


class Backoff:
    """The n-th delay after a success is uniform in [d/2, d], with d = min(first * 2^n, max).

    `delay()` returns the next wait and advances; `reset()` after a success starts again from
    `first_s`. Not thread-safe: one per retry loop.
    """

    def __init__(self, first_s: float, max_s: float) -> None:
        if first_s <= 0 or max_s < first_s:
            raise ValueError(f"backoff needs 0 < first_s <= max_s, got {first_s}, {max_s}")
        self.first_s = first_s
        self.max_s = max_s
        self._attempt = 0

    @property
    def ceiling(self) -> float:
        """The upper bound of the next delay (without jitter), for logs and status."""
        return min(self.max_s, self.first_s * 2**self._attempt)

    def delay(self) -> float:
        """The next wait in seconds, jittered; each call doubles the ceiling up to `max_s`."""
        ceiling = self.ceiling
        # Capped so that 2**n cannot grow without bound in a loop that fails for days.
        self._attempt = min(self._attempt + 1, 64)
        return random.uniform(ceiling / 2, ceiling)

    def reset(self) -> None:
        """A success: the next failure waits `first_s` again."""
        self._attempt = 0
