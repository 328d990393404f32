"""Who a gateway is, and which machine a code names, cached.

Gateways are looked up before any tenant is known, through `mes.lookup_gateway` (the narrow
SECURITY DEFINER function of sql/0004). Machines are resolved under the gateway's tenant. Both
caches expire after `ttl_s`; a code that is not found is asked again only after `negative_ttl_s`
so that a flood of messages from an unregistered gateway costs one query per interval, yet a
machine registered a moment ago is picked up quickly.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from typing import Generic, TypeVar

from psycopg_pool import ConnectionPool

from core.tenancy import Tenant, tenant_transaction


@dataclass(frozen=True, slots=True)
class RegisteredGateway:
    """A gateway as the database registers it (mes.lookup_gateway): its tenant and codes."""

    gateway_id: uuid.UUID
    organization_id: uuid.UUID
    plant_id: uuid.UUID
    organization_code: str
    plant_code: str
    is_active: bool

    @property
    def tenant(self) -> Tenant:
        """The gateway's plant: the tenant its messages are written under."""
        return Tenant(self.organization_id, self.plant_id)


@dataclass(frozen=True, slots=True)
class MachineRef:
    """A machine's row id and plant (None: organization-wide), for the staging rows."""

    machine_id: uuid.UUID
    plant_id: uuid.UUID | None


K = TypeVar("K")
V = TypeVar("V")


class _Expiring(Generic[K, V]):
    def __init__(self, ttl_s: float, negative_ttl_s: float) -> None:
        self.ttl_s, self.negative_ttl_s = ttl_s, negative_ttl_s
        self._items: dict[K, tuple[float, V | None]] = {}

    def get(self, key: K) -> tuple[bool, V | None]:
        hit = self._items.get(key)
        if hit is None or hit[0] < time.monotonic():
            return False, None
        return True, hit[1]

    def put(self, key: K, value: V | None) -> None:
        ttl = self.ttl_s if value is not None else self.negative_ttl_s
        self._items[key] = (time.monotonic() + ttl, value)


class Registry:
    """Gateway identities and machine ids, read through the application role."""

    def __init__(self, pool: ConnectionPool, ttl_s: float = 60, negative_ttl_s: float = 5):
        self._pool = pool
        self._gateways: _Expiring[str, RegisteredGateway] = _Expiring(ttl_s, negative_ttl_s)
        self._machines: _Expiring[Tenant, dict[str, MachineRef]] = _Expiring(ttl_s, 0)
        self._machine_misses: _Expiring[tuple[Tenant, str], bool] = _Expiring(
            negative_ttl_s, negative_ttl_s)

    def gateway(self, code: str) -> RegisteredGateway | None:
        """The registered gateway of `code`, or None when there is none."""
        found, identity = self._gateways.get(code)
        if found:
            return identity
        with self._pool.connection() as conn:
            row = conn.execute("SELECT * FROM mes.lookup_gateway(%s)", (code,)).fetchone()
        identity = RegisteredGateway(*row) if row else None
        self._gateways.put(code, identity)
        return identity

    def machines(self, tenant: Tenant, codes: set[str]) -> dict[str, MachineRef]:
        """The machines among `codes` that exist for `tenant` (its plant and org-wide ones).

        A code missing from the cache reloads the tenant's machines, unless it was missing at
        a reload less than `negative_ttl_s` ago.
        """
        found, known = self._machines.get(tenant)
        if not found or known is None:
            known = self._reload(tenant)
        missing = codes - known.keys()
        if missing and any(not self._machine_misses.get((tenant, c))[0] for c in missing):
            known = self._reload(tenant)
            for code in codes - known.keys():
                self._machine_misses.put((tenant, code), True)
        return {c: known[c] for c in codes if c in known}

    def _reload(self, tenant: Tenant) -> dict[str, MachineRef]:
        known = self._load_machines(tenant)
        self._machines.put(tenant, known)
        return known

    def _load_machines(self, tenant: Tenant) -> dict[str, MachineRef]:
        with self._pool.connection() as conn, tenant_transaction(conn, tenant):
            rows = conn.execute(
                "SELECT code, id, plant_id FROM mes.machines WHERE is_active").fetchall()
        return {code: MachineRef(mid, plant) for code, mid, plant in rows}
