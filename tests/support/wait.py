"""Waiting for what a test can observe, never for a fixed time.

Each wait tries its condition once more at the deadline before it gives up, so a slow poll
cannot time out a condition that holds; the timeout only keeps a broken test from hanging.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


def wait_until(
    predicate: Callable[[], bool],
    timeout: float = 60,
    what: str = "condition",
    interval: float = 0.05,
) -> None:
    """Return as soon as `predicate()` is true; raise TimeoutError naming `what` after `timeout`
    seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


async def wait_until_async(
    predicate: Callable[[], bool],
    timeout: float = 20,
    what: str = "condition",
    interval: float = 0.02,
) -> None:
    """`wait_until` for a test running on an event loop: sleeps without blocking the loop."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(interval)
