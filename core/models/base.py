"""The one declarative base and metadata of the project, and the columns tenant tables share.

The schema itself is defined by the SQL migrations in `sql/`; these models mirror it (a test
compares the two) so that the API and tools can use the ORM. Every model lives in schema `mes`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    TIMESTAMP,
    ForeignKey,
    ForeignKeyConstraint,
    MetaData,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column

SCHEMA = "mes"
TENANT_USER = text("mes.tenant_user()")
NOW = text("now()")
NEW_UUID = text("gen_random_uuid()")


class Base(DeclarativeBase):
    metadata = MetaData(schema=SCHEMA)
    type_annotation_map = {
        datetime: TIMESTAMP(timezone=True),
        uuid.UUID: UUID(as_uuid=True),
        dict[str, Any]: JSONB,
    }


def same_org_fk(column: str, target: str) -> ForeignKeyConstraint:
    """`(organization_id, column) -> target (organization_id, id)`: a reference that cannot
    leave the row's organization."""
    return ForeignKeyConstraint(
        ["organization_id", column],
        [f"{SCHEMA}.{target}.organization_id", f"{SCHEMA}.{target}.id"],
    )


def tenant_table_args(*refs: tuple[str, str], plant_fk: bool = True) -> tuple[Any, ...]:
    """Constraints of a relational tenant table: its plant, its audit users and `refs`
    (column, target table) all inside the row's organization."""
    fks = [same_org_fk("created_by", "users"), same_org_fk("updated_by", "users")]
    if plant_fk:
        fks.insert(0, same_org_fk("plant_id", "plants"))
    return (*fks, *(same_org_fk(col, table) for col, table in refs))


class Audited:
    """created/updated time and acting user, filled by the database from the unit of work."""

    created_at: Mapped[datetime] = mapped_column(server_default=NOW)
    updated_at: Mapped[datetime] = mapped_column(server_default=NOW)
    created_by: Mapped[uuid.UUID | None] = mapped_column(server_default=TENANT_USER)
    updated_by: Mapped[uuid.UUID | None] = mapped_column(server_default=TENANT_USER)


class TenantEntity(Audited):
    """A relational tenant table: uuid id, organization (required) and plant (NULL = org-wide).

    Row-level security on these tables (sql/0002, 0003) applies the tenant rule.
    """

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, server_default=NEW_UUID)

    @declared_attr
    def organization_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(ForeignKey(f"{SCHEMA}.organizations.id"), index=True)

    plant_id: Mapped[uuid.UUID | None] = mapped_column(index=True)


class TimeSeriesRow:
    """A time-series row: tenant columns for the views' filter, simple references (the write
    functions check the tenant), no RLS, no application grants (docs/tenancy.md, "Time series")."""

    organization_id: Mapped[uuid.UUID] = mapped_column(index=True)
    plant_id: Mapped[uuid.UUID | None] = mapped_column(index=True)

    @declared_attr
    def machine_id(cls) -> Mapped[uuid.UUID]:
        return mapped_column(ForeignKey(f"{SCHEMA}.machines.id"), primary_key=True)

    @declared_attr
    def created_by(cls) -> Mapped[uuid.UUID | None]:
        return mapped_column(ForeignKey(f"{SCHEMA}.users.id"))

    @declared_attr
    def updated_by(cls) -> Mapped[uuid.UUID | None]:
        return mapped_column(ForeignKey(f"{SCHEMA}.users.id"))
