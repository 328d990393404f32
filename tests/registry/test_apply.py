"""`mes registry apply|export` against a real database, through the application role: apply,
apply again (nothing), dry run (nothing written), export round trip, prune deactivates, and
applying one organization's entries never touches another's rows."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.registry.apply import RegistryConflict, apply_registry, canonical, export_registry
from core.registry.model import Registry, dump_registry, load_registry, parse_registry
from tests.fixtures.database import TestDatabase
from tests.registry.helpers import app_sessions, registry_data, run_mes, write

TABLES = ("organizations", "plants", "users", "gateways", "machines")


def snapshot(db: TestDatabase, org_code: str | None = None) -> dict[str, list[tuple[Any, ...]]]:
    """Every registry row (all columns, updated_at included) as the superuser sees it."""
    out = {}
    with db.superuser() as conn:
        for table in TABLES:
            where = ""
            if org_code:
                col = "code" if table == "organizations" else "organization_id"
                sub = "%s" if table == "organizations" else \
                    "(SELECT id FROM mes.organizations WHERE code = %s)"
                where = f" WHERE {col} = {sub}"
            rows = conn.execute(f"SELECT * FROM mes.{table}{where} ORDER BY id",
                                (org_code,) if org_code else ()).fetchall()
            out[table] = [tuple(r) for r in rows]
    return out


def test_dry_run_plans_everything_and_writes_nothing(db: TestDatabase,
                                                     tmp_path: Path) -> None:
    path = write(tmp_path, registry_data())
    before = snapshot(db)
    out = run_mes(db, "registry", "apply", str(path), "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "org-a: create organization org-a (name 'Org A')" in out.stdout
    assert "org-a: create plant a1 (name 'Plant A1', timezone 'Europe/Berlin')" in out.stdout
    assert "org-a: create machine a1-m1 (name 'Press 1', kind 'press', plant 'a1', " \
           "tags {'line': 'l1'})" in out.stdout
    assert "dry run: 16 change(s) planned, nothing written" in out.stdout
    assert snapshot(db) == before


def test_apply_then_again_changes_nothing(db: TestDatabase, tmp_path: Path) -> None:
    path = write(tmp_path, registry_data())
    first = run_mes(db, "registry", "apply", str(path))
    assert first.returncode == 0, first.stderr
    assert "applied 16 change(s) in 2 organization(s)" in first.stdout
    after_first = snapshot(db)
    assert len(after_first["machines"]) == 4 and len(after_first["users"]) == 4
    # Created through the application role under each organization's own context.
    with db.superuser() as conn:
        plants = conn.execute(
            "SELECT o.code, p.code, p.timezone, p.is_active FROM mes.plants p "
            "JOIN mes.organizations o ON o.id = p.organization_id ORDER BY p.code").fetchall()
        lead = conn.execute("SELECT u.roles, p.code FROM mes.users u JOIN mes.plants p "
                            "ON p.id = u.plant_id WHERE email = 'lead@a.test'").fetchone()
        tags = conn.execute("SELECT tags FROM mes.machines WHERE code = 'a1-m1'").fetchone()
    assert plants == [("org-a", "a1", "Europe/Berlin", True), ("org-a", "a2", "America/Chicago",
                      True), ("org-b", "b1", "UTC", True)]
    assert lead == (["plant_admin"], "a1")
    assert tags == ({"line": "l1"},)

    second = run_mes(db, "registry", "apply", str(path))
    assert second.returncode == 0, second.stderr
    assert "org-a: no changes" in second.stdout and "org-b: no changes" in second.stdout
    assert "nothing to change: the database matches the file" in second.stdout
    assert snapshot(db) == after_first  # not even updated_at moved


def test_export_round_trip_equals_the_file(db: TestDatabase, tmp_path: Path) -> None:
    path = write(tmp_path, registry_data())
    assert run_mes(db, "registry", "apply", str(path)).returncode == 0
    exported = tmp_path / "exported.yaml"
    out = run_mes(db, "registry", "export", "--org", "org-a", "--org", "org-b",
                  "-o", str(exported))
    assert out.returncode == 0, out.stderr
    assert load_registry(exported) == load_registry(path)
    # The file is in key order, so even the text is the same as the file's own dump.
    assert exported.read_text() == dump_registry(load_registry(path))
    again = run_mes(db, "registry", "apply", str(exported))
    assert "nothing to change" in again.stdout


def test_updates_prune_and_reactivation(db: TestDatabase) -> None:
    data = registry_data()
    with app_sessions(db) as sessions:
        apply_registry(sessions, parse_registry(data, "v1.yaml"))
        org_a = data["organizations"][0]
        org_a["machines"][0].update(name="Press 1 (rebuilt)", plant="a2", tags={"line": "l9"})
        org_a["users"][2]["roles"] = ["viewer"]
        del org_a["machines"][1]  # a1-m2 leaves the file
        del org_a["gateways"][1]  # gw-a2 too
        v2 = parse_registry(data, "v2.yaml")

        [kept, _] = apply_registry(sessions, v2)
        assert [c.describe() for c in kept.changes] == [
            "update user tech@a.test (roles ['maintenance', 'operator'] -> ['viewer'])",
            "update machine a1-m1 (name 'Press 1' -> 'Press 1 (rebuilt)', plant 'a1' -> 'a2', "
            "tags {'line': 'l1'} -> {'line': 'l9'})",
        ]
        assert kept.unlisted == ["gateway gw-a2", "machine a1-m2"]

        [pruned, _] = apply_registry(sessions, v2, prune=True)
        assert [c.describe() for c in pruned.changes] == [
            "deactivate gateway gw-a2 (active True -> False)",
            "deactivate machine a1-m2 (active True -> False)",
        ]
        [after, _] = apply_registry(sessions, v2, prune=True)
        assert after.changes == [] and after.unlisted == []

        # Deactivated, not deleted; the export says so, and listing it again reactivates it.
        exported = export_registry(sessions, ["org-a"])
        m2 = next(m for m in exported.organizations[0].machines if m.code == "a1-m2")
        assert m2.active is False
        [back, _] = apply_registry(sessions, parse_registry(registry_data(), "v1.yaml"))
        assert "update machine a1-m2 (active False -> True)" in [c.describe() for c in
                                                                  back.changes]
    with db.superuser() as conn:
        rows = conn.execute("SELECT code, is_active FROM mes.machines WHERE code LIKE 'a1-%' "
                            "ORDER BY code").fetchall()
    assert rows == [("a1-m1", True), ("a1-m2", True)]


def test_applying_a_never_touches_b(db: TestDatabase) -> None:
    data = registry_data()
    with app_sessions(db) as sessions:
        apply_registry(sessions, parse_registry(data, "both.yaml"))
        b_before = snapshot(db, "org-b")
        only_a = {"organizations": [data["organizations"][0]]}
        only_a["organizations"][0]["name"] = "Org A renamed"
        only_a["organizations"][0]["plants"].append({"code": "b1", "name": "Same code as B's"})
        plans = apply_registry(sessions, parse_registry(only_a, "a.yaml"), prune=True)
    assert [p.code for p in plans] == ["org-a"]
    # A's plan saw none of B's rows, so B's entries were neither unlisted nor pruned.
    assert not any("b1-m1" in c.key or "gw-b1" in c.key for c in plans[0].changes)
    assert snapshot(db, "org-b") == b_before


def test_a_gateway_code_of_another_organization_is_refused_whole(db: TestDatabase,
                                                                 tmp_path: Path) -> None:
    with app_sessions(db) as sessions:
        apply_registry(sessions, parse_registry(registry_data(), "both.yaml"))
        before = snapshot(db)
        thief = {"organizations": [{
            "code": "org-c", "name": "Org C", "plants": [{"code": "c1", "name": "C1"}],
            "gateways": [{"code": "gw-b1", "name": "Not B's", "plant": "c1"}]}]}
        with pytest.raises(RegistryConflict, match=r"gateway code .* another organization"):
            apply_registry(sessions, parse_registry(thief, "c.yaml"))
    assert snapshot(db) == before  # not even org-c or its plant


def test_the_shipped_demo_registry_is_canonical() -> None:
    from mes.demo_seed import DEMO_REGISTRY

    registry = load_registry(DEMO_REGISTRY)
    assert isinstance(registry, Registry)
    assert canonical(registry) == registry
