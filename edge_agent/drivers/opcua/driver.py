"""OPC UA driver (asyncua): data-change subscriptions, batched reads where they are refused.

One session per server. In `subscribe` mode every node is monitored with the configured
sampling interval; a node the server refuses to monitor (or a server that refuses the
subscription) is read instead, in batches, every `poll_interval_s`. In `poll` mode every node is
read that way. When the connection is lost (server restart, network cut, a subscription the
server reports dead) every tag is reported with an error, the session is dropped, and a new one
is opened with capped, jittered backoff, subscriptions included: the driver never needs to be
recreated. asyncua's own reconnect is left off so that this one path handles every loss.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from datetime import datetime
from typing import Any

from asyncua import Client, ua
from asyncua.common.subscription import DataChangeEvent, StatusChangeEvent, Subscription
from asyncua.crypto import security_policies
from cryptography import x509

from core.backoff import Backoff
from edge_agent.drivers.base import BoundTag, DriverHealth, TagReading, Value
from edge_agent.drivers.opcua.config import (
    AcquisitionMode,
    ExpectedType,
    OpcUaDevice,
    OpcUaTag,
    SecurityMode,
    SecurityPolicy,
)
from edge_agent.drivers.opcua.errors import describe, quiet_asyncua
from edge_agent.drivers.opcua.speedups import install as install_speedups
from edge_agent.drivers.opcua.timestamps import SourceClock
from edge_agent.drivers.runtime import (
    HealthTracker,
    Pace,
    deliver,
    failed,
    now,
    sleep_or_stop,
)

log = logging.getLogger(__name__)
install_speedups()

Sink = Callable[[list[TagReading]], None]

_MODES = {
    SecurityMode.SIGN: ua.MessageSecurityMode.Sign,
    SecurityMode.SIGN_AND_ENCRYPT: ua.MessageSecurityMode.SignAndEncrypt,
}
_FAMILIES: dict[ExpectedType, tuple[type, ...]] = {
    ExpectedType.BOOL: (bool,),
    ExpectedType.INT: (int,),
    ExpectedType.FLOAT: (float, int),
    ExpectedType.STRING: (str,),
}


class ConnectionLost(Exception):
    """The session ended under the driver (raised inside `run` only, to start a reconnect)."""


class OpcUaDriver:
    """Reads one OPC UA server; see the module docstring for the failure behaviour."""

    def __init__(self, device: OpcUaDevice, tags: list[BoundTag]) -> None:
        self.name = device.name
        self.pace = Pace()
        self.device = device
        self._tags = tags
        # Several tags (of several machines) may read one node: each node is read once.
        self._by_node: dict[str, list[BoundTag]] = defaultdict(list)
        self._node_of: dict[tuple[str, str], str] = {}
        for t in tags:
            if not isinstance(t.address, OpcUaTag):
                raise TypeError(f"{t.machine}.{t.tag}: not an OPC UA address")
            self._by_node[t.address.node_id].append(t)
            self._node_of[(t.machine, t.tag)] = t.address.node_id
        self._client: Client | None = None
        self._node_ids: dict[str, ua.NodeId] = {}
        self._keys: dict[ua.NodeId, str] = {}
        self._health = HealthTracker()
        self._clock = SourceClock(device, self._health)
        self._reported: set[str] = set()  # node ids whose first notification came this session
        self._backoff = Backoff(min(1.0, device.backoff_max_s), device.backoff_max_s)
        self._lost: asyncio.Event | None = None
        self._lost_reason = ""
        self._sink: Sink | None = None
        self._pending: list[TagReading] = []
        self.subscribed: set[str] = set()
        """Node ids currently monitored by a subscription (the rest are polled)."""

    # ------------------------------------------------------------------------- the interface

    async def read_once(self) -> list[TagReading]:
        try:
            client = await self._ensure_client()
            readings = await self._read(client, list(self._by_node))
        except Exception as e:  # any failure of this device is its tags' error, not the caller's
            await self.close()
            readings = failed(self._tags, describe(e, self.device.endpoint))
        self._health.record(readings)
        return readings

    async def run(self, sink: Sink, stop: asyncio.Event) -> None:
        """Acquire until `stop`. A lost connection, and each failed attempt to get it back,
        is one failed read of every tag (counted in `read_errors`, as a Modbus poll that cannot
        reach its unit); the loss is logged once, as one line, and so is the recovery."""
        quiet_asyncua()
        self._sink = sink
        try:
            while not stop.is_set():
                try:
                    await self._session(sink, stop)
                except (OSError, TimeoutError, ConnectionError, ConnectionLost, ua.UaError) as e:
                    error = describe(e, self.device.endpoint)
                    if isinstance(e, ConnectionLost):  # already described
                        error = str(e) or f"connection to {self.device.endpoint} lost"
                    if self._health.consecutive_errors == 0:
                        log.warning(
                            "opcua server unreachable; retrying",
                            extra={"device": self.name, "error": error},
                        )
                except Exception as e:  # a bug must not end acquisition for good
                    error = f"internal error: {describe(e, self.device.endpoint)}"
                    log.exception("opcua session failed", extra={"device": self.name})
                else:
                    return
                self._health.consecutive_errors += 1
                readings = failed(self._tags, error)
                self._health.record(readings)
                self._emit(readings)
                await self.close()
                if await sleep_or_stop(stop, self._backoff.delay()):
                    return
        finally:
            self._sink = None
            await self.close()

    def health(self) -> DriverHealth:
        return self._health.snapshot()

    def watches(self, machine: str, tags: Collection[str]) -> bool:
        """A data-change subscription sends nothing while values do not change: while the
        session is up and every one of `tags` is monitored, silence means "unchanged"."""
        if not tags or not self._health.connected:
            return False
        return all(self._node_of.get((machine, tag)) in self.subscribed for tag in tags)

    async def close(self) -> None:
        client, self._client = self._client, None
        self.subscribed = set()
        self._health.connected = False
        if client is None:
            return
        try:
            await asyncio.wait_for(client.disconnect(), self.device.timeout_s)
        except Exception:  # the server may already be gone: the socket is closed regardless
            client.disconnect_socket()

    # ------------------------------------------------------------------------------ sessions

    async def _session(self, sink: Sink, stop: asyncio.Event) -> None:
        """One connection's life: subscribe (or not), then poll what must be polled."""
        client = await self._ensure_client()
        lost = self._lost = asyncio.Event()
        polled = list(self._by_node)
        consumer: asyncio.Task[None] | None = None
        try:
            if self.device.mode is AcquisitionMode.SUBSCRIBE:
                sub, polled = await self._subscribe(client)
                if sub is not None:
                    consumer = asyncio.create_task(self._consume(sub), name=f"{self.name}/sub")
            self._backoff.reset()
            if self._health.consecutive_errors:
                log.info("opcua server reachable again", extra={"device": self.name})
            self._health.consecutive_errors = 0
            while True:
                if polled:
                    readings = await self._read(client, polled)
                    self._health.record(readings)
                    deliver(sink, readings, self.name)
                waiters = [asyncio.ensure_future(stop.wait()), asyncio.ensure_future(lost.wait())]
                timeout = self.pace.interval(self.device.poll_interval_s) if polled else None
                try:
                    await asyncio.wait(
                        [*waiters, *([consumer] if consumer else [])],
                        timeout=timeout,
                        return_when=asyncio.FIRST_COMPLETED,
                    )
                finally:
                    for w in waiters:
                        w.cancel()
                if stop.is_set():
                    return
                if lost.is_set():
                    raise ConnectionLost(self._lost_reason)
                if consumer is not None and consumer.done():
                    consumer.result()  # a bug in handling notifications: end this session
                    raise ConnectionLost("subscription closed")
        finally:
            if consumer is not None:
                consumer.cancel()

    async def _subscribe(self, client: Client) -> tuple[Subscription | None, list[str]]:
        """Monitor every node; return the subscription and the node ids to poll instead."""
        d = self.device
        keys = list(self._by_node)
        try:
            # Iterator mode (no handler object): asyncua queues each notification instead of
            # starting one task per notification, which cost more than the rest of the agent.
            # The queue is unbounded because `_consume`, on this loop, empties it whenever it
            # runs: it holds at most the publish responses decoded since; a bound would drop
            # values (asyncua's default of 1,000 drops the oldest, fewer than one response).
            sub = await client.create_subscription(d.publishing_interval_ms, queue_maxsize=0)
        except ua.UaStatusCodeError as e:
            log.warning(
                "subscription refused, polling", extra={"device": self.name, "error": str(e)}
            )
            return None, keys
        refused: list[str] = []
        self._reported = set()
        step = d.workarounds.max_items_per_subscribe
        for i in range(0, len(keys), step):
            batch = keys[i : i + step]
            nodes = [client.get_node(self._node_ids[k]) for k in batch]
            results = await sub.subscribe_data_change(
                nodes, sampling_interval=d.sampling_interval_ms
            )
            self._health.request(0.0)
            for key, result in zip(batch, results, strict=True):
                if isinstance(result, ua.StatusCode):
                    refused.append(key)
                else:
                    self.subscribed.add(key)
        if refused:
            log.warning(
                "nodes refused monitoring, polling them",
                extra={"device": self.name, "nodes": refused[:20], "count": len(refused)},
            )
        return sub, refused

    async def _ensure_client(self) -> Client:
        if self._client is not None:
            return self._client
        d = self.device
        client = Client(d.endpoint, timeout=d.timeout_s, watchdog_intervall=max(1.0, d.timeout_s))
        client.connection_lost_callback = self._on_connection_lost
        if d.security_policy is SecurityPolicy.BASIC256SHA256:
            assert d.certificate is not None and d.private_key is not None
            client.application_uri = d.application_uri or _certificate_uri(
                d.certificate.read_bytes()
            )
            await client.set_security(
                security_policies.SecurityPolicyBasic256Sha256,
                certificate=str(d.certificate),
                private_key=str(d.private_key),
                server_certificate=str(d.server_certificate) if d.server_certificate else None,
                mode=_MODES[d.security_mode],
            )
        if d.username is not None:
            client.set_user(d.username)
            client.set_password(d.password or "")
        try:
            await asyncio.wait_for(client.connect(), d.timeout_s * 2)
            self._node_ids = await self._resolve(client)
            self._keys = {nid: key for key, nid in self._node_ids.items()}
        except BaseException:
            client.disconnect_socket()
            raise
        self._client = client
        self._health.connected = True
        return client

    async def _resolve(self, client: Client) -> dict[str, ua.NodeId]:
        """Node ids as the server numbers them (an `nsu=` namespace URI becomes its index)."""
        out: dict[str, ua.NodeId] = {}
        for key in self._by_node:
            nid = ua.NodeId.from_string(key)
            if isinstance(nid, ua.ExpandedNodeId) and nid.NamespaceUri:
                index = await client.get_namespace_index(nid.NamespaceUri)
                nid = ua.NodeId(nid.Identifier, index, nid.NodeIdType)
            out[key] = nid
        return out

    async def _on_connection_lost(self, exc: Exception) -> None:
        self._lost_reason = describe(exc, self.device.endpoint)
        if self._lost is not None:
            self._lost.set()

    # ----------------------------------------------------------------------------- readings

    async def _read(self, client: Client, keys: Sequence[str]) -> list[TagReading]:
        readings: list[TagReading] = []
        step = self.device.workarounds.max_nodes_per_read
        for i in range(0, len(keys), step):
            batch = keys[i : i + step]
            started = time.monotonic()
            values = await client.read_attributes(
                [client.get_node(self._node_ids[k]) for k in batch]
            )
            self._health.request(time.monotonic() - started)
            ts = now()
            for key, dv in zip(batch, values, strict=True):
                readings += self._readings(key, dv, ts)
        return readings

    def _readings(self, key: str, dv: ua.DataValue, ts: datetime) -> list[TagReading]:
        status = dv.StatusCode
        if status is not None and not status.is_good():
            return failed(self._by_node[key], f"bad status {status.name}", ts)
        value, error = _plain(dv.Value.Value if dv.Value is not None else None)
        out = []
        for t in self._by_node[key]:
            expected = t.address.expected_type if isinstance(t.address, OpcUaTag) else None
            err = error or _type_error(value, expected)
            out.append(TagReading(t.machine, t.tag, None if err else value, ts, err))
        return out

    # ------------------------------------------------------------------------ subscription

    async def _consume(self, sub: Subscription) -> None:
        """Turn what the subscription delivers into readings until the session ends."""
        async for event in sub:
            if isinstance(event, DataChangeEvent):
                self._on_data_change(event)
            elif isinstance(event, StatusChangeEvent):
                self._on_status_change(event.notification)

    def _on_data_change(self, event: DataChangeEvent) -> None:
        key = self._keys.get(event.node.nodeid)
        if key is None:
            return
        dv = event.data.monitored_item.Value
        ts = now()
        if key in self._reported:  # a change: the source's time (drivers.opcua.timestamps)
            ts = self._clock.stamp(dv, ts)
        else:  # the current value, reported on subscribing: known to hold now
            self._reported.add(key)
        self._pending += self._readings(key, dv, ts)
        if len(self._pending) == 1:
            # `_consume` takes every queued notification without yielding to the loop, so
            # this runs once they are all in: one batch per publish response.
            asyncio.get_running_loop().call_soon(self._flush)

    def _on_status_change(self, status: ua.StatusChangeNotification) -> None:
        if not status.Status.is_good() and self._lost is not None:
            self._lost_reason = f"subscription ended: {status.Status.name}"
            self._lost.set()

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        self._health.record(batch)
        self._emit(batch)

    def _emit(self, readings: list[TagReading]) -> None:
        if self._sink is not None:
            deliver(self._sink, readings, self.name)


def _plain(value: Any) -> tuple[Value, str | None]:
    """An OPC UA value as a tag value, or an error for types a tag cannot carry."""
    if value is None or isinstance(value, bool | str | float):
        return value, None
    if isinstance(value, enum.Enum):
        return int(value.value), None
    if isinstance(value, int):
        return value, None
    if isinstance(value, ua.LocalizedText):
        return value.Text, None
    return None, f"unsupported value type {type(value).__name__}"


def _type_error(value: Value, expected: ExpectedType | None) -> str | None:
    if expected is None or value is None:
        return None
    ok = isinstance(value, _FAMILIES[expected]) and not (
        isinstance(value, bool) and expected is not ExpectedType.BOOL
    )
    return None if ok else f"expected {expected.value}, got {type(value).__name__} {value!r}"


def _certificate_uri(data: bytes) -> str:
    """The application URI in a certificate's subject alternative names (servers check it)."""
    cert = (
        x509.load_pem_x509_certificate(data)
        if b"-----BEGIN" in data
        else x509.load_der_x509_certificate(data)
    )
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        raise ValueError(
            "the client certificate has no application URI; set application_uri"
        ) from None
    uris = san.value.get_values_for_type(x509.UniformResourceIdentifier)
    if not uris:
        raise ValueError("the client certificate has no application URI; set application_uri")
    return uris[0]

