"""The ingest's Prometheus metrics, on a registry of its own (several ingests in one test).

docs/operations.md lists them as scraped from `/metrics`; `sample()` reads one by that name.
"""

from __future__ import annotations

from enum import StrEnum

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Outcome(StrEnum):
    """What became of a message: the `outcome` label of `ingest_messages_total`."""

    WRITTEN = "written"  # its rows committed (or were already there), then acknowledged
    DEAD_LETTER = "dead_letter"  # recorded in mes.dead_letters, then acknowledged
    STATUS = "status"  # a gateway's birth or last will: nothing to write
    STALE = "stale"  # received before a reconnect: the broker sends it again
    NOT_OURS = "not_ours"  # under mes/v1/ but another service's (maintenance tasks)


class IngestMetrics:
    """The ingest's counters, gauges and histograms, and the registry that exports them."""

    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.messages = Counter("ingest_messages", "MQTT messages handled, by outcome",
                                ["outcome"], registry=r)
        self.rows = Counter("ingest_rows_written", "rows committed (new, not duplicates)",
                            ["kind"], registry=r)
        self.rows_offered = Counter("ingest_rows_offered", "rows sent to the database",
                                    ["kind"], registry=r)
        self.dead_letters = Counter("ingest_dead_letters", "messages dead-lettered, by reason",
                                    ["reason"], registry=r)
        self.batch_rows = Histogram("ingest_batch_rows",
                                    "rows per tenant batch (a transaction holds one or more)",
                                    buckets=(1, 10, 100, 500, 1000, 5000, 20000, 100000),
                                    registry=r)
        self.commit_seconds = Histogram("ingest_commit_seconds",
                                        "transaction time (one or more tenant batches)",
                                        registry=r)
        self.lag_seconds = Histogram(
            "ingest_lag_seconds", "oldest record time of a message to its commit",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 3600), registry=r)
        self.inflight_messages = Gauge("ingest_inflight_messages",
                                       "messages received, not yet acknowledged", registry=r)
        self.inflight_bytes = Gauge("ingest_inflight_bytes",
                                    "payload bytes received, not yet acknowledged", registry=r)
        self.db_errors = Counter("ingest_db_errors", "transient database errors (retried)",
                                 registry=r)
        self.mqtt_connected = Gauge("ingest_mqtt_connected", "1 while connected to the broker",
                                    registry=r)

    def sample(self, name: str, **labels: str) -> float:
        """The current value of sample `name` as exported (counters end in `_total`), e.g.
        `sample("ingest_rows_written_total", kind="machine_status")`; 0 before the first."""
        value = self.registry.get_sample_value(name, labels)
        return 0.0 if value is None else value
