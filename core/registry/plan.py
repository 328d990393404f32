"""The plan: what applying a registry file would change in one organization, without I/O.

Every entity of the file is compared, in the file's terms, with what the database holds
(core.registry.state): missing -> create, different -> update (the fields that differ, old and
new), equal -> nothing. An active entity the file no longer lists is left alone and reported as
unlisted, unless pruning, when it is deactivated (`is_active = false`): never deleted, so that
its history (states, downtime, PM tasks, audit columns) keeps pointing at it. A deactivated
entity listed again is reactivated by the ordinary update of `active`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any, Literal

from core.registry.model import OrganizationEntry
from core.registry.state import SECTIONS, OrganizationState

Action = Literal["create", "update", "deactivate"]


@dataclass(frozen=True)
class Change:
    """One step: `entity` is its singular kind (organization, plant, ...), `key` its code or
    email, `fields` what changes (old, new): for a create, every field (None, value)."""

    action: Action
    entity: str
    key: str
    fields: dict[str, tuple[Any, Any]]
    entry: Any = None  # the file's entry (create and update)

    def describe(self) -> str:
        shown = ", ".join(
            f"{name} {new!r}" if self.action == "create" else f"{name} {old!r} -> {new!r}"
            for name, (old, new) in self.fields.items()
        )
        return f"{self.action} {self.entity} {self.key}" + (f" ({shown})" if shown else "")


@dataclass
class OrganizationPlan:
    """The changes for one organization, in the order they must be made."""

    code: str
    organization_id: uuid.UUID
    changes: list[Change] = field(default_factory=list)
    unlisted: list[str] = field(default_factory=list)  # "machine m009": kept, not pruned

    def lines(self) -> list[str]:
        out = [f"{self.code}: {c.describe()}" for c in self.changes]
        out += [f"{self.code}: {u} is not in the file (kept; --prune deactivates it)"
                for u in self.unlisted]
        if not self.changes:
            out.append(f"{self.code}: no changes")
        return out


def _compare(old: Any, new: Any) -> dict[str, tuple[Any, Any]]:
    a, b = old.model_dump(mode="json"), new.model_dump(mode="json")
    return {name: (a[name], b[name]) for name in b if a[name] != b[name]}


def _created(entry: Any, skip: tuple[str, ...] = ()) -> dict[str, tuple[Any, Any]]:
    return {name: (None, value)
            for name, value in entry.model_dump(mode="json", exclude_defaults=True).items()
            if name not in skip}


def plan_organization(wanted: OrganizationEntry, organization_id: uuid.UUID,
                      state: OrganizationState, *, prune: bool) -> OrganizationPlan:
    """Diff the file's organization against the database's (`organization_id` is the
    organization's id, or the one it will be created with)."""
    plan = OrganizationPlan(wanted.code, organization_id)
    if state.organization is None:
        plan.changes.append(Change("create", "organization", wanted.code,
                                   {"name": (None, wanted.name)}))
    elif state.organization.name != wanted.name:
        plan.changes.append(Change("update", "organization", wanted.code,
                                   {"name": (state.organization.name, wanted.name)}))
    for section in SECTIONS:
        have = state.entries(section)
        listed = set()
        for entry in getattr(wanted, section.name):
            key = getattr(entry, section.key)
            listed.add(key)
            if key not in have:
                plan.changes.append(Change("create", section.singular, key,
                                           _created(entry, (section.key,)), entry))
            elif diff := _compare(have[key], entry):
                plan.changes.append(Change("update", section.singular, key, diff, entry))
        for key, entry in sorted(have.items()):
            if key in listed or not entry.active:
                continue
            if prune:
                plan.changes.append(Change("deactivate", section.singular, key,
                                           {"active": (True, False)}))
            else:
                plan.unlisted.append(f"{section.singular} {key}")
    return plan
