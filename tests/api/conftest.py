"""The API under test: `mes api` as a real process on a free loopback port, over the module's
database seeded with two organizations (tests/fixtures/tenants.py), and tokens of users with
chosen roles and scopes, made the way `mes token create` makes them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.tenancy import Tenant, unit_of_work
from core.tokens import create_token
from mes.services.ports import LOOPBACK, free_port, wait_for_port
from mes.services.process import Child
from tests.fixtures.database import TestDatabase
from tests.fixtures.tenants import Tenants
from tests.registry.helpers import app_sessions

SECRET = "api-test-secret-" + "x" * 32
KEY = SECRET.encode()

# name -> (organization, plant code or None for organization-wide, roles)
USERS: dict[str, tuple[str, str | None, list[str]]] = {
    "a_admin": ("a", None, ["org_admin"]),
    "a_viewer": ("a", None, ["viewer"]),
    "a_all": ("a", None, ["org_admin", "quality", "maintenance", "operator"]),
    "a1_lead": ("a", "a1", ["plant_admin", "quality", "maintenance", "operator"]),
    "a1_quality": ("a", "a1", ["quality"]),
    "a1_operator": ("a", "a1", ["operator"]),
    "a1_tech": ("a", "a1", ["maintenance"]),
    "a1_tech2": ("a", "a1", ["maintenance"]),
    "a1_viewer": ("a", "a1", ["viewer"]),
    "a2_tech": ("a", "a2", ["maintenance"]),
    "b_admin": ("b", None, ["org_admin"]),
}


@dataclass
class ApiUsers:
    """Tokens and user ids by name (USERS)."""

    tokens: dict[str, str]
    ids: dict[str, uuid.UUID]


@pytest.fixture(scope="module")
def api_users(database: TestDatabase, tenants: Tenants) -> ApiUsers:
    ids: dict[str, uuid.UUID] = {}
    with database.superuser() as conn:
        for name, (org_key, plant, roles) in USERS.items():
            org = getattr(tenants, org_key)
            ids[name] = conn.execute(
                "INSERT INTO mes.users (organization_id, plant_id, email, display_name, roles)"
                " VALUES (%s, %s, %s, %s, %s) RETURNING id",
                (org.id, org.plants[plant] if plant else None, f"{name}@{org.code}.test",
                 name, roles)).fetchone()[0]
    tokens = {}
    with app_sessions(database) as sessions:
        for name, (org_key, _, _) in USERS.items():
            org = getattr(tenants, org_key)
            with unit_of_work(sessions, Tenant(org.id)) as s:
                tokens[name] = create_token(s, KEY, email=f"{name}@{org.code}.test",
                                            lifetime=None).token
    return ApiUsers(tokens, ids)


@dataclass
class Api:
    """A running `mes api`: `call(user, method, path)` sends a request with that user's token
    (`user=None`: without one)."""

    base_url: str
    users: ApiUsers
    log_path: Path

    def call(self, user: str | None, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if user is not None:
            headers["Authorization"] = f"Bearer {self.users.tokens[user]}"
        return httpx.request(method, self.base_url + path, headers=headers, timeout=30, **kw)

    def stream_status(self, user: str, path: str, **kw: Any) -> int:
        """The status of a GET whose body never ends (server-sent events), then hang up."""
        headers = {"Authorization": f"Bearer {self.users.tokens[user]}"}
        with httpx.stream("GET", self.base_url + path, headers=headers, timeout=30, **kw) as r:
            return r.status_code

    def ok(self, user: str, method: str, path: str, **kw: Any) -> Any:
        """The JSON of a request that must succeed."""
        r = self.call(user, method, path, **kw)
        assert r.status_code < 300, (method, path, r.status_code, r.text)
        return r.json()


def api_env(database: TestDatabase) -> dict[str, str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MES_")}
    return {**clean, "MES_DATABASE__URL": database.superuser_url,
            "MES_DATABASE__APP_URL": database.app_url, "MES_TOKENS__SECRET": SECRET,
            "MES_LOG__FORMAT": "json"}


@contextmanager
def running_api(database: TestDatabase, users: ApiUsers, log_dir: Path,
                **settings: str) -> Iterator[Api]:
    """`mes api` on a free port, with `settings` (MES_... variables) over api_env's."""
    port = free_port()
    log_path = log_dir / "api.log"
    child = Child(["api", "--host", LOOPBACK, "--port", str(port)], log_path,
                  env={**api_env(database), **settings})
    try:
        if not wait_for_port(port, timeout=30):
            pytest.fail(f"mes api did not listen: {log_path.read_text()}")
        yield Api(f"http://{LOOPBACK}:{port}", users, log_path)
    finally:
        child.stop()


@pytest.fixture(scope="module")
def api(database: TestDatabase, api_users: ApiUsers,
        tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    # Without the rate limit: these tests send bursts with one token on purpose
    # (test_api_rate_limit.py runs one with it).
    with running_api(database, api_users, tmp_path_factory.mktemp("api"),
                     MES_API__RATE_LIMIT_PER_S="0") as running:
        yield running
