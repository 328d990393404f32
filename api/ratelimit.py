"""Requests per token: a token bucket per API token, in this process's memory.

Each token may send `burst` requests at once and `per_s` a second on average; one more is
`429 Too Many Requests` (a problem document with `Retry-After`), before its token is even
looked up, so a flood costs the database nothing. Keyed by the token's id (the part before its
secret), or by a digest of the whole string for what is not shaped like a token: the secret
itself is never kept. Each API process counts for itself.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable

from api.problems import ApiError

# Buckets beyond this many are pruned of the idle ones (full again: forgetting them is exact).
_PRUNE_AT = 10_000


class TooManyRequests(ApiError):
    status = 429
    title = "Too many requests"

    def __init__(self, retry_after_s: int):
        super().__init__(f"this token sent more than its rate allows: retry in {retry_after_s} s")
        self.headers = {"Retry-After": str(retry_after_s)}


class RateLimiter:
    """`check(token)` spends one request of the token's bucket or raises TooManyRequests.
    `per_s` 0 turns the limit off."""

    def __init__(self, per_s: float, burst: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.per_s, self.burst, self._clock = per_s, burst, clock
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, at monotonic)
        self._lock = threading.Lock()  # routes and dependencies run on a thread pool

    def check(self, token: str) -> None:
        if self.per_s <= 0:
            return
        key = _key(token)
        now = self._clock()
        with self._lock:
            tokens, at = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - at) * self.per_s)
            if tokens < 1:
                self._buckets[key] = (tokens, now)
                raise TooManyRequests(max(1, math.ceil((1 - tokens) / self.per_s)))
            self._buckets[key] = (tokens - 1, now)
            if len(self._buckets) > _PRUNE_AT:
                self._prune(now)

    def _prune(self, now: float) -> None:
        full = self.burst / self.per_s
        for key in [k for k, (_, at) in self._buckets.items() if now - at >= full]:
            del self._buckets[key]


def _key(token: str) -> str:
    parts = token.split("_", 2)
    if len(parts) == 3 and parts[0] == "mes":
        return parts[1]
    return hashlib.sha256(token.encode()).hexdigest()
