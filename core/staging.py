"""Write time-series rows the one way the application role can: COPY into an owner-made staging
table, then the kind's SECURITY DEFINER write function (sql/0004), inside a tenant transaction.

The staging tables' columns are created by `mes.open_staging(kind)` in SQL; STAGING mirrors
them for the binary COPY (a test checks the two agree).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg


@dataclass(frozen=True, slots=True)
class StagingKind:
    name: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    write_function: str

    @property
    def copy_sql(self) -> str:
        return (f"COPY pg_temp.stage_{self.name} ({', '.join(self.columns)}) "
                "FROM STDIN (FORMAT BINARY)")


_TENANT = (("organization_id", "uuid"), ("plant_id", "uuid"), ("machine_id", "uuid"))


def _kind(name: str, function: str, *cols: tuple[str, str]) -> StagingKind:
    pairs = (*_TENANT, *cols)
    return StagingKind(name, tuple(c for c, _ in pairs), tuple(t for _, t in pairs),
                       f"mes.{function}")


STAGING: dict[str, StagingKind] = {
    k.name: k
    for k in (
        _kind("machine_status", "write_machine_status",
              ("ts", "timestamptz"), ("state", "text"), ("reason_code", "text")),
        _kind("downtime_event", "write_downtime_event",
              ("event_id", "uuid"), ("started_at", "timestamptz"), ("ended_at", "timestamptz"),
              ("state", "text"), ("reason_code", "text"), ("category", "text"),
              ("micro_stop", "bool")),
        _kind("machine_counter", "write_machine_counter",
              ("tag", "text"), ("ts", "timestamptz"), ("value", "float8")),
        _kind("machine_telemetry", "write_machine_telemetry",
              ("tag", "text"), ("ts", "timestamptz"), ("value", "float8")),
    )
}


def write_staged(conn: psycopg.Connection, kind: str, rows: Iterable[Sequence[Any]]) -> int:
    """COPY `rows` (tuples in STAGING[kind].columns order) and move them in; returns rows written.

    Call inside core.tenancy.tenant_transaction: the write function checks every row against
    that context and refuses the whole batch (InsufficientPrivilege) on a single mismatch.
    """
    spec = STAGING[kind]
    conn.execute("SELECT mes.open_staging(%s)", (kind,))
    with conn.cursor().copy(spec.copy_sql) as copy:
        copy.set_types(list(spec.types))
        for row in rows:
            copy.write_row(row)
    row = conn.execute(f"SELECT {spec.write_function}()").fetchone()
    return int(row[0]) if row else 0
