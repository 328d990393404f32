"""Requests built from the API's own OpenAPI document, so that route-driven tests cover every
operation, including ones added later: path ids by parameter name, required query values by
name, bodies from each schema's example. Whatever cannot be built is reported, not skipped."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import psycopg

from tests.fixtures.tenants import T0

# An id parameter (path or body) -> the table (and column) of the object it names.
ID_PARAMS: dict[str, tuple[str, str]] = {
    "machine_id": ("machines", "id"),
    "event_id": ("downtime_event", "event_id"),
    "work_order_id": ("work_orders", "id"),
    "assignment_id": ("work_order_machines", "id"),
    "ncr_id": ("ncr", "id"),
    "inspection_id": ("inspection_logs", "id"),
    "shift_id": ("shifts", "id"),
    "handover_id": ("shift_handovers", "id"),
    "schedule_id": ("pm_schedules", "id"),
    "task_id": ("pm_tasks", "id"),
    "assignee_id": ("users", "id"),
    "material_id": ("materials", "id"),
    "plant_id": ("plants", "id"),
}
QUERY_VALUES = {"start": (T0 - timedelta(hours=1)).isoformat(),
                "end": (T0 + timedelta(hours=2)).isoformat()}


@dataclass(frozen=True)
class Operation:
    method: str
    template: str
    path_params: list[str]
    query: dict[str, str]
    body: dict[str, Any] | None
    body_ids: list[str]
    roles: list[str] | None
    streams: bool = False  # answers text/event-stream: a response that never ends

    @property
    def name(self) -> str:
        return f"{self.method} {self.template}"


@dataclass
class Spec:
    operations: list[Operation] = field(default_factory=list)
    uncovered: list[str] = field(default_factory=list)


def _schema(spec: dict[str, Any], ref_or_schema: dict[str, Any]) -> dict[str, Any]:
    ref = ref_or_schema.get("$ref")
    return spec["components"]["schemas"][ref.rsplit("/", 1)[1]] if ref else ref_or_schema


def operations(spec: dict[str, Any]) -> Spec:
    out = Spec()
    for template, item in spec["paths"].items():
        for method, op in item.items():
            name = f"{method.upper()} {template}"
            params = op.get("parameters", [])
            path_params = [p["name"] for p in params if p["in"] == "path"]
            for p in path_params:
                if p not in ID_PARAMS:
                    out.uncovered.append(f"{name}: path parameter {p}")
            query = {}
            for p in params:
                if p["in"] == "query" and p.get("required"):
                    if p["name"] in QUERY_VALUES:
                        query[p["name"]] = QUERY_VALUES[p["name"]]
                    else:
                        out.uncovered.append(f"{name}: required query parameter {p['name']}")
            body, body_ids = None, []
            if "requestBody" in op:
                schema = _schema(spec, op["requestBody"]["content"]["application/json"]["schema"])
                examples = schema.get("examples")
                if not examples:
                    out.uncovered.append(f"{name}: request body without an example")
                    continue
                body = dict(examples[0])
                body_ids = [p for p in schema.get("properties", {}) if p.endswith("_id")]
                for p in body_ids:
                    if p not in ID_PARAMS:
                        out.uncovered.append(f"{name}: body field {p}")
            streams = "text/event-stream" in op.get("responses", {}).get("200", {}).get(
                "content", {})
            out.operations.append(Operation(method.upper(), template, path_params, query,
                                            body, body_ids, op.get("x-roles"), streams))
    return out


def ids_in(conn: psycopg.Connection, where: str, params: tuple[Any, ...]) -> dict[str, uuid.UUID]:
    """One object per id parameter among the rows matching `where` (as superuser)."""
    found = {}
    for name, (table, column) in ID_PARAMS.items():
        cond = where.replace("plant_id", "id") if table == "plants" else where
        row = conn.execute(f"SELECT {column} FROM mes.{table} WHERE {cond} ORDER BY {column} "
                           "LIMIT 1", params).fetchone()
        assert row is not None, f"no {table} row where {where} {params}"
        found[name] = row[0]
    return found


def request_for(op: Operation, ids: dict[str, uuid.UUID], *,
                body_ids: bool) -> tuple[str, dict[str, Any]]:
    """The path and request options of `op` naming the objects `ids` (in the body too when
    `body_ids`)."""
    path = op.template
    for p in op.path_params:
        path = path.replace("{" + p + "}", str(ids[p]))
    kw: dict[str, Any] = {"params": op.query}
    if op.body is not None:
        body = dict(op.body)
        if body_ids:
            body.update({p: str(ids[p]) for p in op.body_ids})
        kw["json"] = body
    return path, kw


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON document."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from strings(v)
