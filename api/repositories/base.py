"""What every repository does the same way: find or 404, check a reference, add a row under
the unit of work's tenant, apply changes, honour If-Match."""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from api.problems import Invalid, NotFound, PreconditionFailed
from api.schemas.common import version_of
from core.models import Plant
from core.models.base import TenantEntity
from core.tenancy import Tenant

M = TypeVar("M", bound=TenantEntity)


def get_or_404(session: Session, model: type[M], object_id: uuid.UUID, *, what: str,
               lock: bool = False) -> M:
    """The object, or 404 when it does not exist or lies outside the caller's scope. `lock`
    holds it (FOR UPDATE) until the unit of work ends, so that concurrent state changes
    queue and the second sees the first's result."""
    obj = session.get(model, object_id, with_for_update=lock or None)
    if obj is None:
        raise NotFound(f"no {what} {object_id}")
    return obj


def require(session: Session, model: type[Any], object_id: uuid.UUID | None, *,
            field: str) -> Any:
    """A referenced object named in a request body, or 422 naming the field."""
    if object_id is None:
        return None
    obj = session.get(model, object_id)
    if obj is None:
        raise Invalid(field, f"no such object {object_id} in your scope")
    return obj


def tenant_of(session: Session) -> Tenant:
    return session.info["tenant"]


def add(session: Session, obj: M, *, plant_id: uuid.UUID | None = None) -> M:
    """Insert `obj` into the caller's organization, in `plant_id` (checked to be visible) or
    else the caller's plant (None: organization-wide for an organization-wide caller)."""
    tenant = tenant_of(session)
    require(session, Plant, plant_id, field="plant_id")
    obj.organization_id = tenant.organization_id
    obj.plant_id = plant_id or tenant.plant_id
    session.add(obj)
    session.flush()
    session.refresh(obj)
    return obj


def change(session: Session, obj: M, values: dict[str, Any]) -> M:
    """Set `values` on `obj` and write them (updated_at / updated_by by the database). A null
    for a column that must have a value is 422 naming the field, not a database error."""
    columns = obj.__table__.columns
    for name, value in values.items():
        if value is None and name in columns and not columns[name].nullable:
            raise Invalid(name, "may not be null: leave the field out to keep its value")
    for name, value in values.items():
        setattr(obj, name, value)
    session.flush()
    session.refresh(obj)
    return obj


def check_version(obj: TenantEntity, if_match: str | None) -> None:
    """412 when the client's If-Match names another version than the object's."""
    if if_match is not None and if_match.strip('"') != version_of(obj.updated_at):
        raise PreconditionFailed(
            f"the object changed since version {if_match.strip(chr(34))}: read it again")
