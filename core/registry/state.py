"""The registry as the database holds it, in the file's own terms, read under a tenant.

One organization is read inside its unit of work (RLS shows that organization only) and turned
into registry entries, plant ids into plant codes: the plan compares these with the file, and
`mes registry export` writes them. `columns` is the reverse, an entry as table columns.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Gateway, Machine, Organization, Plant, User
from core.models.base import Base
from core.registry.model import (
    GatewayEntry,
    MachineEntry,
    OrganizationEntry,
    PlantEntry,
    UserEntry,
)


@dataclass(frozen=True)
class Section:
    """A kind of entity: its list in the file, its table, its key, renamed fields."""

    name: str  # the file's list: plants, users, ...
    singular: str
    model: type[Base]
    entry: type[PlantEntry | UserEntry | GatewayEntry | MachineEntry]
    key: str  # the entry field (and column) that identifies it within the organization
    renames: dict[str, str] = field(default_factory=dict)  # entry field -> column

    def columns(self, entry: Any, plant_ids: dict[str, uuid.UUID]) -> dict[str, Any]:
        """The entry as column values; its plant code becomes the plant's id."""
        out: dict[str, Any] = {}
        for name, value in entry.model_dump(mode="json").items():
            if name == "plant":
                out["plant_id"] = plant_ids[value] if value else None
            else:
                out[self.renames.get(name, name)] = value
        return out

    def entry_of(self, row: Any, plant_codes: dict[uuid.UUID, str]) -> Any:
        """A row as the entry the file would hold for it."""
        values: dict[str, Any] = {}
        for name in self.entry.model_fields:
            if name == "plant":
                values[name] = plant_codes.get(row.plant_id) if row.plant_id else None
            else:
                values[name] = getattr(row, self.renames.get(name, name))
        return self.entry.model_validate(values)


_ACTIVE = {"active": "is_active"}
# In dependency order: plants first, their ids are what the others refer to.
SECTIONS = (
    Section("plants", "plant", Plant, PlantEntry, "code", _ACTIVE),
    Section("users", "user", User, UserEntry, "email", {**_ACTIVE, "name": "display_name"}),
    Section("gateways", "gateway", Gateway, GatewayEntry, "code", _ACTIVE),
    Section("machines", "machine", Machine, MachineEntry, "code", _ACTIVE),
)


@dataclass
class OrganizationState:
    """What the database holds for one organization: ORM rows by section and key."""

    organization: Organization | None
    rows: dict[str, dict[str, Any]]

    @property
    def plant_ids(self) -> dict[str, uuid.UUID]:
        return {code: row.id for code, row in self.rows["plants"].items()}

    def entries(self, section: Section) -> dict[str, Any]:
        """The section's rows as file entries, by key."""
        codes = {row.id: code for code, row in self.rows["plants"].items()}
        return {key: section.entry_of(row, codes) for key, row in self.rows[section.name].items()}

    def as_entry(self) -> OrganizationEntry:
        """The whole organization as the file would hold it, entries sorted by key."""
        if self.organization is None:
            raise LookupError("no organization is visible under this tenant context")
        return OrganizationEntry(
            code=self.organization.code,
            name=self.organization.name,
            **{s.name: [e for _, e in sorted(self.entries(s).items())] for s in SECTIONS},
        )


def read_state(session: Session) -> OrganizationState:
    """Everything registered for the session's tenant (one organization, no plant set)."""
    org = session.scalars(select(Organization)).one_or_none()
    rows = {
        s.name: {getattr(r, s.key): r for r in session.scalars(select(s.model))}
        for s in SECTIONS
    }
    return OrganizationState(org, rows)
