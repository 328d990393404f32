"""Shared shapes: the base classes, the audit columns, a page of items."""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import cache
from typing import Any, Generic, TypeVar

from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, TypeAdapter, computed_field

T = TypeVar("T")


def example(**values: Any) -> ConfigDict:
    """Model config of a request body: unknown fields refused, `values` its example."""
    return ConfigDict(extra="forbid", json_schema_extra={"examples": [values]})


class Out(BaseModel):
    """A response body read from a model's attributes."""

    model_config = ConfigDict(from_attributes=True)


class Audited(Out):
    """Who made and last changed the object, and when; `version` is what If-Match takes."""

    created_at: datetime
    updated_at: datetime
    created_by: uuid.UUID | None
    updated_by: uuid.UUID | None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def version(self) -> str:
        return version_of(self.updated_at)


class TenantOut(Audited):
    id: uuid.UUID
    organization_id: uuid.UUID
    plant_id: uuid.UUID | None


def version_of(updated_at: datetime) -> str:
    """An object's version: its last change, in microseconds since the epoch."""
    return str(round(updated_at.timestamp() * 1_000_000))


class AssigneeIn(BaseModel):
    """Who is to work on it: a user of the caller's scope."""

    model_config = example(assignee_id="00000000-0000-0000-0000-000000000001")

    assignee_id: uuid.UUID


class PageOf(BaseModel, Generic[T]):
    """One page of a list; `next_cursor` fetches the next (None: this was the last)."""

    items: list[T]
    next_cursor: str | None


@cache
def _page_adapter(model: type[BaseModel]) -> TypeAdapter[Any]:
    return TypeAdapter(PageOf[model])  # type: ignore[valid-type]


def page_response(model: type[BaseModel], items: list[Any], next_cursor: str | None
                  ) -> Response:
    """A page of `model` (the route's `response_model=PageOf[model]`) as a JSON response,
    validated and serialized where the route runs. Returned as a dict instead, FastAPI would
    validate it on another trip through the thread pool before serializing it: one more
    hand-over between threads per request, the larger part of a list's cost in Python
    (py-spy on `mes bench api`)."""
    adapter = _page_adapter(model)
    page = adapter.validate_python({"items": items, "next_cursor": next_cursor})
    return Response(adapter.dump_json(page), media_type="application/json")
