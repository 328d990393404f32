"""The simulated machines over OPC UA: one asyncua server, one object per machine.

The address space is built once per start (layout.py names the nodes). Each tick `update`
writes only the values that changed since the last tick, straight into the address space
(`Server.write_attribute_value`), which also feeds data-change subscriptions. Those writes are
the costly part of the simulator (figures in runner.py's docstring).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from asyncua import Server, ua

from mes.sim.layout import (
    BASE_TAGS,
    OPCUA_NAMESPACE,
    OPCUA_NS_INDEX,
    DType,
    extra_name,
    machine_code,
)
from mes.sim.model import Snapshot

log = logging.getLogger(__name__)

_VARIANT = {
    DType.BOOL: ua.VariantType.Boolean,
    DType.UINT16: ua.VariantType.UInt16,
    DType.UINT32: ua.VariantType.UInt32,
    DType.FLOAT32: ua.VariantType.Float,
}
_INITIAL: dict[DType, Any] = {DType.BOOL: False, DType.FLOAT32: 0.0}


class _WrittenValue(ua.DataValue):
    """A value as `update` writes it: a new one per write, never changed afterwards.

    asyncua's server deep-copies each written value for every monitored item (to compare with
    the next one, in case the writer changes the object it wrote); a generic `deepcopy` of a
    DataValue was about 60 % of the simulator's CPU under `mes bench edge`. Nothing changes
    these after the write (asyncua queues this very object in the notification it sends), so
    the copy is the value itself and what subscribers see is the same.
    """

    __slots__ = ()

    def __deepcopy__(self, memo: dict[int, Any]) -> _WrittenValue:
        return self


class OpcUaSim:
    """An OPC UA server for the machines at `indexes`; `update` publishes a tick."""

    def __init__(self, indexes: Sequence[int], *, extra_tags: int, host: str, port: int) -> None:
        self.indexes = list(indexes)
        self.host = host
        self.port = port
        self._extra_tags = extra_tags
        self._server: Server | None = None
        # Per machine: node ids in tag order (BASE_TAGS, then extras) and last values written.
        self._nodes: dict[int, list[ua.NodeId]] = {}
        self._last: dict[int, list[Any]] = {}
        self._types = [_VARIANT[t.dtype] for t in BASE_TAGS]
        self._types += [ua.VariantType.Float] * extra_tags

    @property
    def endpoint(self) -> str:
        return f"opc.tcp://{self.host}:{self.port}/"

    async def start(self, snapshots: Sequence[Snapshot], ts: datetime) -> None:
        """Build the address space holding `snapshots` and listen (same port after `stop`)."""
        server = Server()
        await server.init()
        server.set_endpoint(self.endpoint)
        server.set_server_name("mes sim")
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        server.set_identity_tokens([ua.AnonymousIdentityToken])
        ns = await server.register_namespace(OPCUA_NAMESPACE)
        if ns != OPCUA_NS_INDEX:
            raise RuntimeError(f"namespace {OPCUA_NAMESPACE} got index {ns}, not {OPCUA_NS_INDEX}")
        objects = server.nodes.objects
        names = [t.name for t in BASE_TAGS] + [extra_name(k) for k in range(self._extra_tags)]
        dtypes = [t.dtype for t in BASE_TAGS] + [DType.FLOAT32] * self._extra_tags
        for i in self.indexes:
            code = machine_code(i)
            obj = await objects.add_object(ua.NodeId(code, ns), ua.QualifiedName(code, ns))
            nodes = []
            for name, dtype, vtype in zip(names, dtypes, self._types, strict=True):
                node_id = ua.NodeId(f"{code}.{name}", ns)
                initial = _INITIAL.get(dtype, 0)
                await obj.add_variable(
                    node_id, ua.QualifiedName(name, ns), ua.Variant(initial, vtype)
                )
                nodes.append(node_id)
            self._nodes[i] = nodes
            self._last[i] = [None] * len(nodes)
        self._server = server
        await self.update(snapshots, ts)
        await server.start()

    @staticmethod
    def _values(s: Snapshot) -> list[Any]:
        return [getattr(s, t.field) for t in BASE_TAGS] + s.extras

    async def update(self, snapshots: Sequence[Snapshot], ts: datetime) -> int:
        """Write the values that changed, stamped `ts`; returns how many were written."""
        server = self._server
        if server is None:
            return 0
        written = 0
        for i, nodes in self._nodes.items():
            last = self._last[i]
            values = self._values(snapshots[i])
            for k, value in enumerate(values[: len(nodes)]):
                if value == last[k]:
                    continue
                dv = _WrittenValue(
                    ua.Variant(value, self._types[k]), SourceTimestamp=ts, ServerTimestamp=ts
                )
                await server.write_attribute_value(nodes[k], dv)
                last[k] = value
                written += 1
        return written

    async def stop(self) -> None:
        """Stop listening; client sessions see the server go away."""
        if self._server is not None:
            await self._server.stop()
            self._server = None
            self._nodes.clear()
            self._last.clear()
