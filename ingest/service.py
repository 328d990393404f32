"""The ingest pipeline: consume -> validate -> batch -> write -> acknowledge.

paho's network thread only queues messages; the pipeline thread validates and batches; writer
threads commit batches and acknowledge their messages. They overlap (Python work on one core
while the database works on others), with at most one batch waiting for each writer, so a
slow database holds the pipeline back instead of piling batches up.

There are `ingest.writers` writers (lanes), each with its own batches and its own database
connection at a time: the write functions are what costs (profiled: the database backend, not
Python, is the bottleneck of one writer), and two backends use two cores. A gateway's messages
always take the same lane, so they commit in the order they arrived, as with one writer: the
latest state announced for a machine (sql/0013) is never overtaken by an older one, and a
downtime's end never races its start. Gateways are spread over the lanes as they first appear.
Memory in flight is bounded by the broker: it sends at most `mqtt.receive_maximum`
unacknowledged messages, and nothing is acknowledged before its commit, so when the database
falls behind the broker stops sending (and keeps the rest in the persistent session).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from psycopg_pool import ConnectionPool

from core.intake.registry import Registry
from core.intake.validator import Accepted, NotOurs, Rejected, StatusSeen, Validator
from core.intake.writer import BatchRefused, Retrier, Stopping, Writer
from core.staging import TENANT_COLUMNS
from core.tenancy import Tenant
from core.wire import DeadLetterReason
from ingest.batcher import Batcher, InFlight, TenantBatch
from ingest.consumer import Consumer, Received
from ingest.dead_letters import DeadLetters
from ingest.metrics import IngestMetrics, Outcome
from ingest.settings import IngestSettings

log = logging.getLogger(__name__)
# Where a staging row holds its machine's id (core.staging puts the tenant columns first).
MACHINE_COLUMN = [name for name, _ in TENANT_COLUMNS].index("machine_id")


@dataclass
class _Lane:
    """One writer: the batches filling for it, the one waiting for it, its thread."""

    batcher: Batcher
    thread: threading.Thread | None = None
    waiting: queue.Queue[list[TenantBatch] | None] = field(
        default_factory=lambda: queue.Queue(maxsize=1))


class IngestService:
    """Build with settings, `start()`, later `stop()`; `health()` and `metrics` meanwhile."""

    def __init__(self, settings: IngestSettings) -> None:
        opts = settings.ingest
        self.settings = settings
        self.metrics = IngestMetrics()
        self.stop_event = threading.Event()
        self._queue: queue.Queue[Received] = queue.Queue()
        self._pool = ConnectionPool(  # the writers', the registry's and the dead letters'
            settings.database.application_url(), min_size=settings.database.pool_min_size,
            max_size=max(opts.writers + 2, settings.database.pool_max_size), open=False,
            kwargs={"autocommit": True, "connect_timeout": settings.database.connect_timeout_s},
            name="ingest",
        )
        retry = Retrier(opts.retry_min_s, opts.retry_max_s, self.stop_event,
                        on_error=lambda _e: self.metrics.db_errors.inc())
        self._retry = retry
        self.registry = Registry(self._pool, opts.registry_ttl_s, opts.unknown_retry_s)
        self._validator = Validator(self.registry, opts)
        self._writer = Writer(self._pool, retry)
        self._dead_letters = DeadLetters(self._pool, retry, opts.dead_letter_payload_max)
        # Per lane, the batch being committed, one waiting and one filling stay below what the
        # broker sends unacknowledged, so it keeps sending while the database writes (with
        # small messages, `batch_rows` alone would hold every message the broker may send,
        # and each batch would wait for the previous commit).
        per_batch = max(1, settings.mqtt.receive_maximum // (3 * opts.writers + 1))
        self._lanes = [_Lane(Batcher(opts.batch_rows, opts.batch_age_ms / 1000, per_batch))
                       for _ in range(opts.writers)]
        for i, lane in enumerate(self._lanes):
            lane.thread = threading.Thread(target=self._write_loop, args=(lane,),
                                           name=f"ingest-writer-{i}", daemon=True)
        self._lane_of: dict[str, _Lane] = {}  # gateway code -> its lane
        self.consumer = Consumer(settings.mqtt, self._queue)
        self.consumer.on_connection_change.append(self.metrics.mqtt_connected.set)
        self._inflight: dict[int, int] = {}  # id(InFlight) -> size, for the gauges
        self._inflight_bytes = 0  # their sum, kept as they come and go (not summed each time)
        self._inflight_lock = threading.Lock()
        self._seen_epoch = 0
        self.last_commit: float | None = None
        self._thread = threading.Thread(target=self._run, name="ingest-pipeline", daemon=True)
        self.failure: BaseException | None = None
        # Called with (seconds from a message's oldest record to its commit, its row count):
        # the benchmark's exact latency figures; the metrics keep only a histogram.
        self.lag_observers: list[Callable[[float, int], None]] = []
        # Called on a writer thread after each commit, once per tenant batch it held, with the
        # batch's tenant and the machines it wrote rows of (the maintenance engine's cue); must
        # not block. Writers call at the same time: an observer must be thread-safe.
        self.commit_observers: list[Callable[[Tenant, frozenset[uuid.UUID]], None]] = []

    # lifetime -----------------------------------------------------------------------------

    def start(self) -> None:
        """Start the pool, the writer and pipeline threads, then the MQTT consumer."""
        self._pool.open(wait=False)
        for thread in self._writer_threads():
            thread.start()
        self._thread.start()
        self.consumer.start()
        log.info("ingest started", extra={
            "subscription": self.settings.mqtt.subscription,
            "broker": f"{self.settings.mqtt.host}:{self.settings.mqtt.port}"})

    def stop(self, timeout: float = 30) -> None:
        """Stop: the pipeline commits and acknowledges what it holds (if the database lets it
        within `timeout`), then the MQTT session is closed; the broker keeps the rest."""
        self.stop_event.set()
        deadline = time.monotonic() + timeout
        self._thread.join(timeout)
        for thread in self._writer_threads():
            thread.join(max(0.1, deadline - time.monotonic()))
        self.consumer.stop()
        self._pool.close()
        log.info("ingest stopped")

    def health(self) -> tuple[bool, dict[str, Any]]:
        """(healthy, details) for /health: healthy while subscribed and every thread runs."""
        connected = self.consumer.subscribed.is_set()
        alive = self._thread.is_alive() and all(t.is_alive() for t in self._writer_threads())
        details = {
            "mqtt_subscribed": connected,
            "pipeline_alive": alive,
            "inflight_messages": self.metrics.sample("ingest_inflight_messages"),
            "last_commit_age_s": (round(time.monotonic() - self.last_commit, 3)
                                  if self.last_commit else None),
        }
        return connected and alive, details

    # pipeline -----------------------------------------------------------------------------

    def _writer_threads(self) -> list[threading.Thread]:
        return [lane.thread for lane in self._lanes if lane.thread is not None]

    def _run(self) -> None:
        try:
            while not self.stop_event.is_set():
                waits = [w for lane in self._lanes
                         if (w := lane.batcher.seconds_until_due()) is not None]
                try:
                    item = self._queue.get(timeout=min([0.2, *waits]))
                except queue.Empty:
                    item = None
                self._check_epoch()
                # Take everything already waiting (until a batch is full) before deciding to
                # flush: behind a backlog every message is "old", and flushing each alone would
                # keep the pipeline behind for good.
                while item is not None:
                    if self._handle(item).full:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        item = None
                for lane in self._lanes:
                    if lane.batcher.seconds_until_due() == 0:
                        self._hand_over(lane, lane.batcher.take())
            for lane in self._lanes:
                self._hand_over(lane, lane.batcher.take())
        except Stopping:
            log.info("stopped while the database was unavailable; unacknowledged messages "
                     "stay with the broker")
        except BaseException as e:  # a bug: make it loud, health goes red
            self.failure = e
            log.exception("ingest pipeline failed")
            raise
        finally:
            for lane in self._lanes:
                self._hand_over(lane, None)

    def _hand_over(self, lane: _Lane, batches: list[TenantBatch] | None) -> None:
        """Give batches (None: the end) to the lane's writer; waits while it still has one
        waiting, unless the writer is gone (failed, or stopped while the database was away)."""
        if batches == []:
            return
        while self.failure is None and lane.thread is not None and lane.thread.is_alive():
            try:
                lane.waiting.put(batches, timeout=0.5)
                return
            except queue.Full:
                continue

    def _write_loop(self, lane: _Lane) -> None:
        try:
            while (batches := lane.waiting.get()) is not None:
                try:
                    self._commit(batches)
                except BatchRefused as e:
                    log.warning("batch refused, isolating the message at fault", extra={
                        "error": str(e), "messages": sum(len(b.messages) for b in batches)})
                    self._isolate(batches)
        except Stopping:
            log.info("stopped while the database was unavailable; unacknowledged messages "
                     "stay with the broker")
        except BaseException as e:
            self.failure = e
            log.exception("ingest writer failed")
            raise

    def _check_epoch(self) -> None:
        epoch = self.consumer.epoch
        if epoch != self._seen_epoch:
            dropped = [b for lane in self._lanes for b in lane.batcher.take()]
            if dropped:
                log.info("connection changed: dropping unacknowledged work, the broker "
                         "redelivers it", extra={"messages": sum(len(b.messages)
                                                                  for b in dropped)})
            with self._inflight_lock:
                self._inflight.clear()
                self._inflight_bytes = 0
            self._update_gauges()
            self._seen_epoch = epoch

    def _handle(self, item: Received) -> Batcher:
        """Validate and batch (or acknowledge) one message; returns the batcher it went to,
        or the first lane's when it went to none."""
        if item.epoch != self.consumer.epoch:
            self.metrics.messages.labels(Outcome.STALE).inc()
            return self._lanes[0].batcher
        message = InFlight(item.mid, item.epoch, len(item.payload), item.received,
                           topic=item.topic, payload=item.payload, qos=item.qos)
        with self._inflight_lock:
            self._inflight[id(message)] = message.size
            self._inflight_bytes += message.size
        result = self._retry(lambda: self._validator.check(item.topic, item.payload),
                             "validate message")
        batcher = self._lanes[0].batcher
        if isinstance(result, Accepted):
            message.accepted = result
            lane = self._lane_of.get(result.gateway)
            if lane is None:
                lane = self._lane_of[result.gateway] = self._lanes[
                    len(self._lane_of) % len(self._lanes)]
            batcher = lane.batcher
            batcher.add(message)
        elif isinstance(result, StatusSeen):
            log.info("gateway status", extra={"gateway": result.gateway,
                                               "status": result.status})
            self.metrics.messages.labels(Outcome.STATUS).inc()
            self._ack(message)
        elif isinstance(result, NotOurs):
            log.debug("not ours, left alone", extra={"topic": item.topic,
                                                     "owner": result.owner})
            self.metrics.messages.labels(Outcome.NOT_OURS).inc()
            self._ack(message)
        else:
            self._dead_letter(message, result)
        self._update_gauges()
        return batcher

    def _dead_letter(self, message: InFlight, why: Rejected) -> None:
        seen = self._dead_letters.record(message.topic, message.payload, why.reason,
                                         why.detail, why.gateway_code)
        log.warning("dead letter", extra={"reason": why.reason, "detail": why.detail,
                                          "topic": message.topic, "times_seen": seen})
        self.metrics.dead_letters.labels(why.reason).inc()
        self.metrics.messages.labels(Outcome.DEAD_LETTER).inc()
        self._ack(message)

    def _commit(self, batches: list[TenantBatch]) -> None:
        """Commit the tenants' batches in one transaction, then acknowledge their messages and
        tell the commit observers, per tenant batch."""
        started = time.monotonic()
        written = self._writer.write(batches)
        now = time.monotonic()
        self.last_commit = now
        self.metrics.commit_seconds.observe(now - started)
        wall = datetime.now(UTC)
        for batch, rows in zip(batches, written, strict=True):
            self.metrics.batch_rows.observe(batch.row_count)
            for kind, n in rows.items():
                self.metrics.rows.labels(kind).inc(n)
                self.metrics.rows_offered.labels(kind).inc(len(batch.rows[kind]))
            for message in batch.messages:
                accepted = message.accepted
                if accepted is not None and accepted.oldest is not None:
                    lag = (wall - accepted.oldest).total_seconds()
                    self.metrics.lag_seconds.observe(lag)
                    for observe in self.lag_observers:
                        observe(lag, len(accepted.rows))
                self.metrics.messages.labels(Outcome.WRITTEN).inc()
                self._ack(message)
        self._update_gauges()
        if not self.commit_observers:
            return
        for batch in batches:
            machines = frozenset(row[MACHINE_COLUMN] for rows in batch.rows.values()
                                 for row in rows)
            for observe in self.commit_observers:
                observe(batch.tenant, machines)

    def _isolate(self, batches: list[TenantBatch]) -> None:
        """After a refused transaction: each tenant's batch alone, then, where one is refused,
        each of its messages alone; the message refused alone is the dead letter."""
        if len(batches) > 1:
            for batch in batches:
                try:
                    self._commit([batch])
                except BatchRefused:
                    self._isolate([batch])
            return
        batch = batches[0]
        for message in batch.messages:
            accepted = message.accepted
            assert accepted is not None
            single = TenantBatch(batch.tenant)
            single.rows[accepted.staging_kind] = accepted.rows
            single.messages.append(message)
            try:
                self._commit([single])
            except BatchRefused as e:
                self._dead_letter(message, Rejected(DeadLetterReason.REFUSED_BY_DATABASE,
                                                    str(e), accepted.gateway))

    def _ack(self, message: InFlight) -> None:
        self.consumer.ack(message.mid, message.qos, message.epoch)
        with self._inflight_lock:
            self._inflight_bytes -= self._inflight.pop(id(message), 0)

    def _update_gauges(self) -> None:
        with self._inflight_lock:
            count, size = len(self._inflight), self._inflight_bytes
        self.metrics.inflight_messages.set(count)
        self.metrics.inflight_bytes.set(size)
