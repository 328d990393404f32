"""Make the database match a registry file, and read it back (`mes registry apply|export`).

Everything runs through the application role, one unit of work per organization under that
organization's tenant context (core.tenancy), so RLS guarantees that applying organization A's
entries cannot read or write a row of B. An organization is found by its code through the
narrow definer function `mes.lookup_organization`; a new one is created by that same role
under a context carrying its new id, which is exactly what the organizations policy allows
(sql/0003) - no owner connection is needed. The whole plan of an organization commits or
nothing of it does; with `dry_run` the plan is only computed.
"""

from __future__ import annotations

import uuid

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from core.errors import UserFacingError
from core.models import Organization
from core.registry.model import OrganizationEntry, Registry
from core.registry.plan import Change, OrganizationPlan, plan_organization
from core.registry.state import SECTIONS, OrganizationState, read_state
from core.tenancy import Tenant, unit_of_work

_BY_ENTITY = {s.singular: s for s in SECTIONS}


class RegistryConflict(UserFacingError):
    """The database refused a change that the file alone could not show to be wrong."""


def lookup_organization(sessions: sessionmaker[Session], code: str) -> uuid.UUID | None:
    """An organization's id by its code, before any tenant context exists."""
    with sessions.begin() as s:
        return s.execute(text("SELECT mes.lookup_organization(:code)"), {"code": code}).scalar()


def apply_registry(sessions: sessionmaker[Session], registry: Registry, *,
                   prune: bool = False, dry_run: bool = False) -> list[OrganizationPlan]:
    """Plan (and unless `dry_run`, apply) every organization of the file, one transaction
    each, in file order. Returns the plans; a second apply of the same file plans nothing."""
    return [_apply_organization(sessions, org, prune=prune, dry_run=dry_run)
            for org in registry.organizations]


def _apply_organization(sessions: sessionmaker[Session], wanted: OrganizationEntry, *,
                        prune: bool, dry_run: bool) -> OrganizationPlan:
    org_id = lookup_organization(sessions, wanted.code) or uuid.uuid4()
    try:
        with unit_of_work(sessions, Tenant(org_id)) as session:
            state = read_state(session)
            plan = plan_organization(wanted, org_id, state, prune=prune)
            if not dry_run:
                _execute(session, org_id, state, plan)
    except IntegrityError as e:
        raise RegistryConflict(_conflict_message(wanted.code, e)) from None
    return plan


def _execute(session: Session, org_id: uuid.UUID, state: OrganizationState,
             plan: OrganizationPlan) -> None:
    plant_ids = state.plant_ids
    for change in plan.changes:
        if change.entity == "organization":
            _organization(session, org_id, state, change)
            continue
        section = _BY_ENTITY[change.entity]
        if change.action == "create":
            row = section.model(organization_id=org_id,
                                **section.columns(change.entry, plant_ids))
            session.add(row)
            session.flush()  # a new plant's id is needed by what follows
            state.rows[section.name][change.key] = row
            if section.name == "plants":
                plant_ids[change.key] = row.id
            continue
        row = state.rows[section.name][change.key]
        if change.action == "deactivate":
            row.is_active = False
        else:
            columns = section.columns(change.entry, plant_ids)
            for name in change.fields:
                column = section.renames.get(name, "plant_id" if name == "plant" else name)
                setattr(row, column, columns[column])
        session.flush()


def _organization(session: Session, org_id: uuid.UUID, state: OrganizationState,
                  change: Change) -> None:
    name = change.fields["name"][1]
    if state.organization is None:
        session.add(Organization(id=org_id, code=change.key, name=name))
    else:
        state.organization.name = name
    session.flush()


def _conflict_message(org: str, e: IntegrityError) -> str:
    detail = str(e.orig).splitlines()[0] if e.orig else str(e)
    if "gateways_code_key" in str(e.orig):
        return (f"organization {org!r}: a gateway code of the file is already registered to "
                f"another organization (gateway codes are unique across organizations: the "
                f"broker knows a gateway by its code alone); nothing of {org!r} was written. "
                f"({detail})")
    return f"organization {org!r}: the database refused the change, nothing written: {detail}"


def export_registry(sessions: sessionmaker[Session], codes: list[str]) -> Registry:
    """The registry of the organizations `codes`, as the database holds it (entries sorted)."""
    organizations = []
    for code in codes:
        org_id = lookup_organization(sessions, code)
        if org_id is None:
            raise UserFacingError(f"no organization {code!r} is registered")
        with unit_of_work(sessions, Tenant(org_id)) as session:
            organizations.append(read_state(session).as_entry())
    return Registry(organizations=organizations)


def canonical(registry: Registry) -> Registry:
    """The registry with every list sorted by its key, as `export_registry` returns it."""
    return Registry(organizations=[
        org.model_copy(update={
            s.name: sorted(getattr(org, s.name), key=lambda e, k=s.key: getattr(e, k))
            for s in SECTIONS
        })
        for org in registry.organizations
    ])
