"""Write time-series rows the one way the application role can: COPY into an owner-made staging
table, then the kind's SECURITY DEFINER write function (sql/0004), inside a tenant transaction.

Each wire kind that carries records has one `StagingKind` here: its staging table, the table it
lands in, and the row builder that turns a record into a staging row. The staging tables'
columns are created by `mes.open_staging(name)` in SQL; `columns` and `types` mirror them for
the binary COPY (tests check the two agree, name and type, and that every field of the kind's
wire record has its column). Rows are built by column NAME from the record's fields, so a
column moved in either place cannot put a value into the wrong column.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any

import psycopg

from core.tenancy import SET_TENANT_SQL, Tenant
from core.wire import RECORD_TYPES, Kind

# The ids the ingest resolves for each record (its tenant, and its machine code's row), first
# in every staging table; the other columns are named after the record's fields.
TENANT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("organization_id", "uuid"), ("plant_id", "uuid"), ("machine_id", "uuid"))
# The record field that `machine_id` (and `plant_id`) replace: a code, resolved by the ingest.
MACHINE_FIELD = "machine"


@dataclass(frozen=True, slots=True)
class StagingKind:
    """How the records of one wire kind are written.

    `name` is the staging kind of `mes.open_staging(name)` (table `pg_temp.stage_{name}`,
    write function `mes.write_{name}`); `table` is the time-series table the write function
    fills; `columns` and `types` are the staging table's, in its order.
    """

    kind: Kind
    name: str
    table: str
    columns: tuple[str, ...]
    types: tuple[str, ...]
    _values: Callable[[Any], tuple[Any, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # One C-level getter of the record's fields in column order: by name, and as fast as
        # a hand-written tuple (the ingest builds tens of thousands of rows per second).
        record_columns = self.columns[len(TENANT_COLUMNS):]
        if len(record_columns) < 2:  # attrgetter of one name returns a value, not a tuple
            raise ValueError(f"staging kind {self.name}: fewer than two record columns")
        object.__setattr__(self, "_values", attrgetter(*record_columns))

    @property
    def record_type(self) -> type[Any]:
        """The wire record this kind's envelopes carry (core.wire.RECORD_TYPES)."""
        return RECORD_TYPES[self.kind]

    @property
    def write_function(self) -> str:
        """The SECURITY DEFINER function that moves the staged rows in (sql/0004)."""
        return f"mes.write_{self.name}"

    @property
    def copy_sql(self) -> str:
        """The binary COPY into this kind's staging table, columns named."""
        return (f"COPY pg_temp.stage_{self.name} ({', '.join(self.columns)}) "
                "FROM STDIN (FORMAT BINARY)")

    def row(self, record: Any, organization_id: uuid.UUID, plant_id: uuid.UUID | None,
            machine_id: uuid.UUID) -> tuple[Any, ...]:
        """The staging row of `record` (of `record_type`) for the given tenant and machine ids.

        Enum fields stay enum members: they are `str`s, which COPY writes as their value.
        """
        return (organization_id, plant_id, machine_id, *self._values(record))


def _kind(kind: Kind, name: str, table: str, *cols: tuple[str, str]) -> StagingKind:
    pairs = (*TENANT_COLUMNS, *cols)
    return StagingKind(kind, name, table, tuple(c for c, _ in pairs), tuple(t for _, t in pairs))


_KINDS = (
    _kind(Kind.STATE, "machine_status", "machine_status_history",
          ("ts", "timestamptz"), ("state", "text"), ("reason_code", "text")),
    _kind(Kind.DOWNTIME, "downtime_event", "downtime_event",
          ("event_id", "uuid"), ("started_at", "timestamptz"), ("ended_at", "timestamptz"),
          ("state", "text"), ("reason_code", "text"), ("category", "text"),
          ("micro_stop", "bool"), ("truncated", "bool")),
    _kind(Kind.COUNTER, "machine_counter", "machine_counter",
          ("tag", "text"), ("ts", "timestamptz"), ("value", "float8")),
    _kind(Kind.TELEMETRY, "machine_telemetry", "machine_telemetry",
          ("tag", "text"), ("ts", "timestamptz"), ("value", "float8")),
)
# By staging name (what `mes.open_staging` and the metrics call a kind) and by wire kind.
STAGING: dict[str, StagingKind] = {k.name: k for k in _KINDS}
STAGING_OF: dict[Kind, StagingKind] = {k.kind: k for k in _KINDS}
# The time-series tables, one per wire kind that carries records.
TIME_SERIES_TABLES: frozenset[str] = frozenset(k.table for k in _KINDS)


def open_staging_sql(tenant: Tenant | None) -> tuple[str, dict[str, str]]:
    """One statement that opens a kind's staging table (`%(kind)s`), setting the tenant
    context first when `tenant` is given: the context and the staging in one round trip."""
    if tenant is None:
        return "SELECT mes.open_staging(%(kind)s)", {}
    return SET_TENANT_SQL + ", mes.open_staging(%(kind)s)", tenant.params()


def copy_staged(conn: psycopg.Connection, kind: str, rows: Iterable[Sequence[Any]]) -> None:
    """Binary COPY of `rows` (tuples in STAGING[kind].columns order) into the kind's staging
    table, opened in this transaction (mes.open_staging)."""
    spec = STAGING[kind]
    with conn.cursor().copy(spec.copy_sql) as copy:
        copy.set_types(list(spec.types))
        for row in rows:
            copy.write_row(row)


def write_staged(conn: psycopg.Connection, kind: str, rows: Iterable[Sequence[Any]]) -> int:
    """COPY `rows` (tuples in STAGING[kind].columns order) and move them in; returns rows written.

    Call inside core.tenancy.tenant_transaction: the write function checks every row against
    that context and refuses the whole batch (InsufficientPrivilege) on a single mismatch.
    """
    sql, params = open_staging_sql(None)
    conn.execute(sql, {**params, "kind": kind})
    copy_staged(conn, kind, rows)
    row = conn.execute(f"SELECT {STAGING[kind].write_function}()").fetchone()
    return int(row[0]) if row else 0
