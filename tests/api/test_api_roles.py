"""Role checks on every write, from the OpenAPI document: every operation that changes
something declares the roles it needs (`x-roles`), and a caller with none of them is refused
with 403 before anything happens, on its own tenant's objects."""

from __future__ import annotations

import httpx
import pytest

from tests.api.conftest import USERS, Api
from tests.api.openapi_calls import Spec, ids_in, operations, request_for
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants

# Users of plant A1 / organization A with a single role each.
SINGLE_ROLE = ["a_viewer", "a1_viewer", "a1_quality", "a1_operator", "a1_tech"]


@pytest.fixture(scope="module")
def spec(api: Api) -> Spec:
    return operations(httpx.get(api.base_url + "/openapi.json").json())


def test_every_write_declares_its_roles(spec: Spec) -> None:
    writes = [op for op in spec.operations if op.method != "GET"]
    assert writes
    missing = [op.name for op in writes if not op.roles]
    assert not missing, f"writes without x-roles (use api.deps.requires): {missing}"
    assert all("viewer" not in op.roles for op in writes if op.roles)


def test_callers_without_the_role_are_refused(api: Api, spec: Spec, database: TestDatabase,
                                              tenants: Tenants) -> None:
    with database.superuser() as conn:
        own = ids_in(conn, "organization_id = %s AND plant_id = %s", (tenants.a.id, tenants.a1))
        before = conn.execute("SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) "
                              "FROM mes.ncr t").fetchone()
    failures, checked = [], 0
    for op in spec.operations:
        if op.method == "GET":
            continue
        for user in SINGLE_ROLE:
            if set(USERS[user][2]) & set(op.roles or []):
                continue
            path, kw = request_for(op, own, body_ids=True)
            r = api.call(user, op.method, path, **kw)
            checked += 1
            if r.status_code != 403:
                failures.append(f"{op.name} as {user}: {r.status_code} {r.text[:200]}")
    assert not failures, "\n".join(failures)
    assert checked >= 60
    with database.superuser() as conn:
        assert conn.execute("SELECT md5(string_agg(t::text, ',' ORDER BY t::text)) "
                            "FROM mes.ncr t").fetchone() == before


def test_only_maintenance_completes_a_task(api: Api, spec: Spec) -> None:
    complete = next(op for op in spec.operations
                    if op.template == "/v1/pm/tasks/{task_id}/complete")
    assert complete.roles == ["maintenance"]
    task = api.ok("a_admin", "GET", "/v1/pm/tasks", params={"status": "open"})["items"][0]
    r = api.call("a_admin", "POST", f"/v1/pm/tasks/{task['id']}/complete", json={})
    assert r.status_code == 403
