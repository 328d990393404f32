"""Run dead letters through validation and the writer again (after, say, a machine was
registered). A letter is replayed when it now validates and commits; a letter whose stored
payload was cut at the bound cannot be replayed."""

from __future__ import annotations

import threading
from collections.abc import Sequence

from psycopg_pool import ConnectionPool

from ingest.batcher import InFlight, TenantBatch
from ingest.registry import Registry
from ingest.settings import IngestSettings
from ingest.validator import Accepted, Rejected, Validator
from ingest.writer import BatchRefused, Retrier, Writer


def replay(settings: IngestSettings, letters: Sequence[tuple[int, str, bytes, int]]
           ) -> list[tuple[int, bool, str]]:
    """[(id, replayed?, what happened)] for (id, topic, payload, payload_size) letters."""
    stop = threading.Event()
    # A replay is run by hand: it waits out a short hiccup, not an outage.
    retry = Retrier(min(settings.ingest.retry_min_s, 2.0), 2.0, stop)
    with ConnectionPool(settings.database.application_url(), min_size=1, max_size=2,
                        kwargs={"autocommit": True}, name="replay") as pool:
        validator = Validator(Registry(pool, ttl_s=0.001, negative_ttl_s=0), settings.ingest)
        writer = Writer(pool, retry)
        out = []
        for id_, topic, payload, size in letters:
            if len(payload) < size:
                out.append((id_, False, f"payload was cut at {len(payload)} of {size} bytes"))
                continue
            result = validator.check(topic, bytes(payload))
            if isinstance(result, Rejected):
                out.append((id_, False, f"{result.reason}: {result.detail}"))
                continue
            if not isinstance(result, Accepted):
                out.append((id_, True, "status message, nothing to write"))
                continue
            batch = TenantBatch(result.tenant)
            batch.rows[result.staging_kind] = result.rows
            batch.messages.append(InFlight(0, 0, len(payload), 0.0, accepted=result))
            try:
                written = writer.write(batch)
            except BatchRefused as e:
                out.append((id_, False, str(e)))
                continue
            out.append((id_, True, f"{sum(written.values())} new row(s) of "
                                   f"{len(result.rows)}"))
        return out
