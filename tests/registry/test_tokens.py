"""API tokens: made through `mes token`, resolved by the application role through the one
definer function, refused when expired, revoked, forged or of a deactivated user; only a keyed
digest is stored; a plant admin's token confines it to its plant."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import psycopg
import pytest

from core.registry.apply import apply_registry, lookup_organization
from core.registry.model import parse_registry
from core.tenancy import SET_TENANT_SQL, Tenant, unit_of_work
from core.tokens import Caller, create_token, digest, resolve_token
from tests.fixtures.database import TestDatabase
from tests.registry.helpers import app_sessions, registry_data, run_mes

SECRET = "k" * 40
KEY = SECRET.encode()


@pytest.fixture
def registered(db: TestDatabase) -> TestDatabase:
    with app_sessions(db) as sessions:
        apply_registry(sessions, parse_registry(registry_data(), "registry.yaml"))
    return db


def _token(db: TestDatabase, email: str, lifetime: timedelta | None = None) -> str:
    with app_sessions(db) as sessions:
        org = lookup_organization(sessions, "org-b" if email.endswith("@b.test") else "org-a")
        assert org is not None
        with unit_of_work(sessions, Tenant(org)) as s:
            return create_token(s, KEY, email=email, lifetime=lifetime).token


def test_token_created_listed_resolved_and_revoked(registered: TestDatabase) -> None:
    env = {"MES_TOKENS__SECRET": SECRET}
    made = run_mes(registered, "token", "create", "--org", "org-a", "--user", "tech@a.test",
                   "--name", "dashboard", "--expires", "30d", **env)
    assert made.returncode == 0, made.stderr
    token = made.stdout.splitlines()[-1]
    token_id = re.search(r"token (\S+) for tech@a.test", made.stdout)[1]  # type: ignore[index]
    assert token.startswith("mes_")

    with registered.app() as conn:
        caller = resolve_token(conn, token, KEY)
    assert isinstance(caller, Caller) and caller.roles == ("maintenance", "operator")
    with registered.superuser() as conn:
        user, plant, stored = conn.execute(
            "SELECT u.id, u.plant_id, t.token_hash FROM mes.api_tokens t JOIN mes.users u "
            "ON u.id = t.user_id WHERE t.id = %s", (token_id,)).fetchone()
    assert (caller.user_id, caller.plant_id) == (user, plant)
    # Only the keyed digest is stored: not the token, not an unkeyed hash of it.
    assert bytes(stored) == digest(KEY, token) and token.encode() not in bytes(stored)

    listed = run_mes(registered, "token", "list", "--org", "org-a")
    assert f"{token_id}  active" in listed.stdout and "tech@a.test / dashboard" in listed.stdout
    assert token not in listed.stdout
    other_org = run_mes(registered, "token", "list", "--org", "org-b")
    assert token_id not in other_org.stdout and "0 token(s)" in other_org.stdout
    # Organization B cannot revoke A's token: RLS hides it.
    assert run_mes(registered, "token", "revoke", "--org", "org-b", token_id).returncode == 1

    revoked = run_mes(registered, "token", "revoke", "--org", "org-a", token_id)
    assert revoked.returncode == 0, revoked.stderr
    with registered.app() as conn:
        assert resolve_token(conn, token, KEY) is None
    assert f"{token_id}  revoked" in run_mes(registered, "token", "list", "--org",
                                             "org-a").stdout


def test_refused_tokens(registered: TestDatabase) -> None:
    good = _token(registered, "admin@a.test")
    expired = _token(registered, "admin@b.test", lifetime=timedelta(seconds=-1))
    with registered.app() as conn:
        assert resolve_token(conn, good, KEY) is not None
        assert resolve_token(conn, expired, KEY) is None
        assert resolve_token(conn, good, b"another-key" * 4) is None  # wrong server secret
        forged = good[:-4] + ("AAAA" if not good.endswith("AAAA") else "BBBB")
        assert resolve_token(conn, forged, KEY) is None
        assert resolve_token(conn, "not a token", KEY) is None
        # The function alone, with a digest that is right but for a different token id.
        row = conn.execute("SELECT * FROM mes.resolve_api_token(%s, %s)",
                           (uuid.uuid4(), digest(KEY, good))).fetchall()
        assert row == []
        # The application role cannot read the token table without a tenant context.
        assert conn.execute("SELECT count(*) FROM mes.api_tokens").fetchone() == (0,)
    with app_sessions(registered) as sessions:
        data = registry_data()
        data["organizations"][0]["users"][0]["active"] = False
        apply_registry(sessions, parse_registry(data, "registry.yaml"))
    with registered.app() as conn:
        assert resolve_token(conn, good, KEY) is None  # its user was deactivated


def test_a_plant_admins_token_confines_it_to_its_plant(registered: TestDatabase) -> None:
    token = _token(registered, "lead@a.test")
    with registered.app() as conn:
        caller = resolve_token(conn, token, KEY)
        assert caller is not None and caller.roles == ("plant_admin",)
        with conn.transaction():
            conn.execute(SET_TENANT_SQL, caller.tenant().params())
            machines = [r[0] for r in conn.execute("SELECT code FROM mes.machines ORDER BY 1")]
            plants = [r[0] for r in conn.execute("SELECT code FROM mes.plants")]
            org_a = conn.execute("SELECT mes.lookup_organization('org-a')").fetchone()
        assert machines == ["a1-m1", "a1-m2"] and plants == ["a1"]
        # Writing into the other plant is refused by the policy, not by the caller's care.
        with registered.superuser() as su:
            a2_plant = su.execute("SELECT id FROM mes.plants WHERE code = 'a2'").fetchone()[0]
        with pytest.raises(psycopg.errors.InsufficientPrivilege), conn.transaction():
            conn.execute(SET_TENANT_SQL, caller.tenant().params())
            conn.execute("INSERT INTO mes.machines (organization_id, plant_id, code, name) "
                         "VALUES (%s, %s, 'sneaky', 'Sneaky')", (org_a[0], a2_plant))


def test_token_create_needs_the_server_secret(registered: TestDatabase) -> None:
    out = run_mes(registered, "token", "create", "--org", "org-a", "--user", "tech@a.test")
    assert out.returncode == 1 and "tokens.secret is not set" in out.stderr
    out = run_mes(registered, "token", "create", "--org", "org-a", "--user", "nobody@a.test",
                  MES_TOKENS__SECRET=SECRET)
    assert out.returncode == 1 and "no user 'nobody@a.test'" in out.stderr
