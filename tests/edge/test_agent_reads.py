"""How the agent cuts a driver's batch into reads, and the time each read carries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from edge_agent.agent import _reads
from edge_agent.drivers.base import TagReading

T0 = datetime(2024, 5, 1, 8, 0, 0, tzinfo=UTC)


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def test_a_poll_of_several_requests_is_one_read_at_its_last_reply() -> None:
    # Request 1 (state) replied at 0 ms, request 2 (counter) at 26 ms: the counter value did
    # not exist at 0 ms, so the read may not claim that time.
    batch = [TagReading("m1", "st", 1, at(0)), TagReading("m1", "cycles", 7, at(26)),
             TagReading("m1", "speed", 1.5, at(26), None)]  # fmt: skip
    assert list(_reads(batch)) == [(at(26), {"st": 1, "cycles": 7, "speed": 1.5}, {})]


def test_a_tag_seen_again_starts_the_next_read_each_at_its_own_latest_time() -> None:
    batch = [TagReading("m1", "st", 1, at(0)), TagReading("m1", "fc", None, at(5), "timeout"),
             TagReading("m1", "st", 2, at(50)), TagReading("m1", "fc", 3, at(40))]  # fmt: skip
    assert list(_reads(batch)) == [
        (at(5), {"st": 1}, {"fc": "timeout"}),
        (at(50), {"st": 2, "fc": 3}, {}),
    ]
