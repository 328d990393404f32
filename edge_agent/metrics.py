"""The agent's Prometheus metrics, read from its parts when scraped (`/metrics`).

A custom collector: nothing is counted twice or on the hot path; drivers, publisher and outbox
keep their own counters and this reads them at scrape time.

| metric | labels | what |
| --- | --- | --- |
| `mes_edge_reads_total` | device | tag values read |
| `mes_edge_read_errors_total` | device | tag reads that failed |
| `mes_edge_requests_total` | device | protocol requests issued |
| `mes_edge_read_latency_seconds` | device | the last request's round trip |
| `mes_edge_device_connected` | device | 1 while every connection of the device is up |
| `mes_edge_clock_skew_seconds` | device | the device's last own stamp behind the agent's clock |
| `mes_edge_clock_skew_exceeded_total` | device | stamps off by more than `max_clock_skew_s` |
| `mes_edge_machine_state` | machine, state | 1 for the machine's current state |
| `mes_edge_values_total` | | tag values handed to the trackers |
| `mes_edge_records_total` | kind | records handed to the outbox |
| `mes_edge_poll_slowdown_ratio` | | polls this much slower than configured (1: keeping up) |
| `mes_edge_messages_published_total`, `..._acked_total` | | MQTT messages sent, PUBACKed |
| `mes_edge_records_acked_total` | | records in acknowledged messages |
| `mes_edge_publish_refused_total` | | publishes the broker refused (MQTT 5 reason code) |
| `mes_edge_publish_rate` | | messages acknowledged per second (last 10 s) |
| `mes_edge_broker_connected` | | 1 while connected to the broker |
| `mes_edge_broker_state` | state | 1 for the connection's state |
| `mes_edge_outbox_records`, `..._messages`, `..._bytes` | | what the outbox holds |
| `mes_edge_outbox_oldest_age_seconds` | | age of the oldest data held (0 when empty) |
| `mes_edge_outbox_dropped_records_total` | kind | records dropped at the outbox's bound |
| `mes_edge_driver_restarts_total` | | drivers that failed and were started again |
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from core.wire import Kind, MachineState
from edge_agent.delivery.outbox import RECORD_KINDS, Outbox
from edge_agent.delivery.publisher import ConnectionState, Publisher
from edge_agent.drivers.base import Driver
from edge_agent.drivers.runtime import Pace

_P = "mes_edge_"


class MeasuredAgent(Protocol):
    """What the collector reads from an agent (edge_agent.agent.EdgeAgent honours it)."""

    drivers: Mapping[str, Driver]
    outbox: Outbox
    publisher: Publisher
    values_in: int
    records_out: Mapping[Kind, int]
    driver_restarts: int
    pace: Pace

    def machine_states(self) -> Mapping[str, MachineState | None]:
        """Each machine's current state (None before its first good read)."""
        ...


class AgentCollector(Collector):
    """Yields the metrics of the table above for one agent."""

    def __init__(self, agent: MeasuredAgent) -> None:
        self._agent = agent

    def collect(self) -> Iterator[Metric]:
        yield from self._devices()
        yield from self._machines()
        yield from self._publishing()
        yield from self._outbox()

    def _devices(self) -> Iterator[Metric]:
        reads = CounterMetricFamily(_P + "reads", "Tag values read", labels=["device"])
        errors = CounterMetricFamily(_P + "read_errors", "Tag reads that failed", labels=["device"])
        requests = CounterMetricFamily(
            _P + "requests", "Protocol requests issued", labels=["device"]
        )
        latency = GaugeMetricFamily(
            _P + "read_latency_seconds", "Round trip of the last request", labels=["device"]
        )
        connected = GaugeMetricFamily(
            _P + "device_connected", "1 while the device's connections are up", labels=["device"]
        )
        skew = GaugeMetricFamily(
            _P + "clock_skew_seconds",
            "How far the device's last own timestamp was behind the agent's clock",
            labels=["device"],
        )
        skewed = CounterMetricFamily(
            _P + "clock_skew_exceeded",
            "Device timestamps off by more than max_clock_skew_s",
            labels=["device"],
        )
        for name, driver in self._agent.drivers.items():
            h = driver.health()
            reads.add_metric([name], h.reads)
            errors.add_metric([name], h.read_errors)
            requests.add_metric([name], h.requests)
            if h.last_latency_s is not None:
                latency.add_metric([name], h.last_latency_s)
            connected.add_metric([name], 1.0 if h.connected else 0.0)
            if h.clock_skew_s is not None:
                skew.add_metric([name], h.clock_skew_s)
            skewed.add_metric([name], h.clock_skew_exceeded)
        restarts = CounterMetricFamily(
            _P + "driver_restarts", "Drivers that failed and were started again"
        )
        restarts.add_metric([], self._agent.driver_restarts)
        yield from (reads, errors, requests, latency, connected, skew, skewed, restarts)

    def _machines(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            _P + "machine_state", "1 for the machine's current state", labels=["machine", "state"]
        )
        for code, current in self._agent.machine_states().items():
            for s in MachineState:
                state.add_metric([code, s.value], 1.0 if s is current else 0.0)
        values = CounterMetricFamily(_P + "values", "Tag values handed to the trackers")
        values.add_metric([], self._agent.values_in)
        records = CounterMetricFamily(
            _P + "records", "Records handed to the outbox", labels=["kind"]
        )
        for kind in RECORD_KINDS:
            records.add_metric([kind.value], self._agent.records_out[kind])
        slowdown = GaugeMetricFamily(
            _P + "poll_slowdown_ratio",
            "How much slower than configured every device is polled (1: the configured rate)",
        )
        slowdown.add_metric([], self._agent.pace.factor)
        yield from (state, values, records, slowdown)

    def _publishing(self) -> Iterator[Metric]:
        s = self._agent.publisher.stats()
        for name, doc, value in (
            ("messages_published", "MQTT messages sent", s.published),
            ("messages_acked", "MQTT messages acknowledged (PUBACK)", s.acked),
            ("records_acked", "Records in acknowledged messages", s.acked_records),
            ("publish_refused", "Publishes the broker refused with a reason code", s.refused),
        ):
            c = CounterMetricFamily(_P + name, doc)
            c.add_metric([], value)
            yield c
        rate = GaugeMetricFamily(_P + "publish_rate", "Messages acknowledged per second (10 s)")
        rate.add_metric([], s.publish_rate)
        up = GaugeMetricFamily(_P + "broker_connected", "1 while connected to the broker")
        up.add_metric([], 1.0 if s.state is ConnectionState.CONNECTED else 0.0)
        state = GaugeMetricFamily(
            _P + "broker_state", "1 for the broker connection's state", labels=["state"]
        )
        for cs in ConnectionState:
            state.add_metric([cs.value], 1.0 if cs is s.state else 0.0)
        yield from (rate, up, state)

    def _outbox(self) -> Iterator[Metric]:
        outbox = self._agent.outbox
        depth = outbox.depth()
        for name, doc, value in (
            ("outbox_records", "Records waiting to be put into messages", depth.records),
            ("outbox_messages", "Messages stored, not yet acknowledged", depth.messages),
            ("outbox_bytes", "Payload bytes the outbox holds", depth.bytes),
            ("outbox_oldest_age_seconds", "Age of the oldest data held", depth.oldest_age_s or 0),
        ):
            g = GaugeMetricFamily(_P + name, doc)
            g.add_metric([], value)
            yield g
        dropped = CounterMetricFamily(
            _P + "outbox_dropped_records", "Records dropped at the outbox's bound", labels=["kind"]
        )
        counts = outbox.dropped
        for kind in RECORD_KINDS:
            dropped.add_metric([kind.value], counts.get(kind, 0))
        yield dropped
