"""Tenant isolation through the API, for every operation of its OpenAPI document.

Callers of organization A (organization-wide, and scoped to plant A1, each holding every write
role so that role checks never answer first) aim every operation at another tenant's objects:
organization B's, and for the plant-scoped caller plant A2's. Every operation naming such an
object in its path is 404 (its existence not revealed); every write naming one in its body is
refused with 422 naming the field; every list answers 200 and contains none of their ids; and
afterwards not one of their rows has changed. Operations come from /openapi.json, so a new
route is checked without being listed here (and fails the coverage check if its parameters
are unknown)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest

from tests.api.conftest import Api
from tests.api.openapi_calls import Spec, ids_in, operations, request_for, strings
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants


@pytest.fixture(scope="module")
def spec(api: Api) -> Spec:
    return operations(httpx.get(api.base_url + "/openapi.json").json())


def _scope(tenants: Tenants, foreign: str) -> tuple[str, tuple[Any, ...]]:
    if foreign == "org_b":
        return "organization_id = %s", (tenants.b.id,)
    return "organization_id = %s AND plant_id = %s", (tenants.a.id, tenants.a2)


def _tenant_tables(database: TestDatabase) -> list[tuple[str, bool, bool]]:
    """(table, has id, has event_id) of every tenant table, from the catalog."""
    with database.superuser() as conn:
        rows = conn.execute(
            """SELECT c.relname,
                      EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                              AND a.attname = 'id' AND NOT a.attisdropped),
                      EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid
                              AND a.attname = 'event_id' AND NOT a.attisdropped)
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
               JOIN pg_attribute o ON o.attrelid = c.oid AND o.attname = 'organization_id'
               WHERE n.nspname = 'mes' AND c.relkind IN ('r', 'p')""").fetchall()
    return [(r[0], r[1], r[2]) for r in rows]


def _foreign(database: TestDatabase, tenants: Tenants, foreign: str
             ) -> tuple[set[str], dict[str, str]]:
    """Every id of the foreign scope's rows, and a digest of each table's foreign rows."""
    where, params = _scope(tenants, foreign)
    ids: set[str] = {str(params[-1])}
    digests = {}
    with database.superuser() as conn:
        for table, has_id, has_event in _tenant_tables(database):
            cond = where.replace("plant_id", "id") if table == "plants" else where
            if "plant_id" in where and table in ("organizations",):
                continue
            for column, present in (("id", has_id), ("event_id", has_event)):
                if present:
                    ids |= {str(v) for (v,) in conn.execute(
                        f"SELECT {column} FROM mes.{table} WHERE {cond}", params)}
            digests[table] = conn.execute(
                f"SELECT md5(coalesce(string_agg(t::text, ',' ORDER BY t::text), '')) "
                f"FROM mes.{table} t WHERE {cond}", params).fetchone()[0]
    return ids, digests


def test_every_operation_can_be_built(spec: Spec) -> None:
    assert not spec.uncovered, f"teach tests/api/openapi_calls.py: {spec.uncovered}"
    assert len(spec.operations) >= 37


@pytest.mark.parametrize(("caller", "foreign"), [
    ("a_all", "org_b"), ("a1_lead", "org_b"), ("a1_lead", "plant_a2")])
def test_no_operation_reaches_another_tenant(api: Api, spec: Spec, database: TestDatabase,
                                             tenants: Tenants, caller: str,
                                             foreign: str) -> None:
    where, params = _scope(tenants, foreign)
    with database.superuser() as conn:
        targets = ids_in(conn, where, params)
    foreign_ids, before = _foreign(database, tenants, foreign)
    failures, listed = [], 0
    for op in spec.operations:
        path, kw = request_for(op, targets, body_ids=True)
        if op.streams:
            # What a stream carries per tenant is tested in tests/board/test_stream.py.
            status = api.stream_status(caller, path, **kw)
            if status != 200:
                failures.append(f"{op.name}: {status} (expected 200)")
            continue
        r = api.call(caller, op.method, path, **kw)
        if op.path_params:
            expected = {404}
        elif op.method != "GET":
            expected = {422} if op.body_ids else {200, 201}
        else:
            expected = {200}
        if r.status_code not in expected:
            failures.append(f"{op.name}: {r.status_code} (expected {expected}) {r.text[:200]}")
            continue
        if r.status_code == 422:
            assert any(e["field"] in op.body_ids for e in r.json()["errors"]), (op.name, r.text)
        if r.status_code == 200:
            leaked = set(strings(r.json())) & foreign_ids
            if leaked:
                failures.append(f"{op.name}: shows {foreign} ids {sorted(leaked)[:3]}")
            listed += len(r.json().get("items", []))
    assert not failures, "\n".join(failures)
    assert listed > 0, "the lists returned nothing at all: the check would mean nothing"
    assert _foreign(database, tenants, foreign)[1] == before, "a foreign row changed"


def test_a_plant_scoped_caller_sees_its_plant_and_organization_wide_rows(
        api: Api, tenants: Tenants, database: TestDatabase) -> None:
    work_orders = api.ok("a1_lead", "GET", "/v1/work-orders", params={"limit": 500})["items"]
    plants = {w["plant_id"] for w in work_orders}
    assert plants == {str(tenants.a1), None}
    shifts = api.ok("a_all", "GET", "/v1/shifts", params={"limit": 500})["items"]
    assert {s["plant_id"] for s in shifts} == {str(tenants.a1), str(tenants.a2), None}
    assert all(uuid.UUID(s["organization_id"]) == tenants.a.id for s in shifts)
