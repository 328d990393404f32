"""Where the engine's stored checkpoints and cursors may be placed (sql/0015).

A stored checkpoint (meters.py) or cursor (conditions.py) says "every row up to `at` is
counted". A row that lands later with a timestamp at or before `at` would be missed, so `at`
is kept `lag` behind now (rows still in flight: an ingest transaction not committed yet, a
replica's batch) and at or before the machine's latest landed row (a gateway that was cut off
drains its outbox in order: its rows land after that one). What breaks both, a row landing
more than `lag` late behind a later row of the same machine, is counted once the chain is read
from scratch again, which happens every `recompute` (and at once when the row is gone).

Replicas: a stored row is a function of the landed rows up to its `at`, so two engines that
write the same one write the same thing (or one from rows the other had not seen yet, which
only a read from scratch can tell): the newer rebuild wins, then the later `at`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

_MIN_STEP = timedelta(microseconds=1)  # with no lag: any step forward


@dataclass(frozen=True)
class Settling:
    """`lag`: how far behind now a stored checkpoint or cursor stays; `recompute`: how old a
    chain (from its last read from scratch) may get before it is read from scratch again."""

    lag: timedelta = timedelta(minutes=10)
    recompute: timedelta = timedelta(days=1)

    def cut(self, now: datetime) -> datetime:
        """The latest time a stored checkpoint may be placed at, evaluating at `now`."""
        return now - self.lag

    def fresh(self, rebuilt_at: datetime, now: datetime) -> bool:
        """Whether a chain last read from scratch at `rebuilt_at` may still be resumed."""
        return rebuilt_at > now - self.recompute

    def advances(self, stored: datetime | None, at: datetime) -> bool:
        """Whether a new checkpoint or cursor at `at` is worth a write over the one stored at
        `stored` (None: none yet): a lag past it, so that each is written at most once a lag
        and an evaluation reads about two lags of rows at most."""
        return stored is None or at >= stored + max(self.lag, _MIN_STEP)
