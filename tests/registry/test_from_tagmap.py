"""`mes registry from-tagmap`: the entries an agent's tag map implies, valid as a registry file
and, once applied, enough for the ingest to know the gateway and its machines."""

from __future__ import annotations

from pathlib import Path

import yaml

from core.registry.model import parse_registry
from mes.registry_from_tagmap import registry_from_tagmaps
from mes.services.broker import PROJECT_ROOT
from tests.fixtures.database import TestDatabase
from tests.registry.helpers import run_mes, write

SIM_MAP = PROJECT_ROOT / "config" / "edge" / "sim-agent.yaml"
MODBUS_MAP = PROJECT_ROOT / "config" / "edge" / "examples" / "modbus_line.yaml"


def test_entries_of_two_maps() -> None:
    registry = registry_from_tagmaps([SIM_MAP, MODBUS_MAP])
    orgs = {o.code: o for o in registry.organizations}
    acme = orgs["acme"]
    assert [g.code for g in acme.gateways if g.plant == "north"] == ["gw-north"]
    north = [m for m in acme.machines if m.plant == "north"]
    assert [m.code for m in north] == ["m001", "m002", "m003", "m004"]
    assert north[0].name == "Simulated machine 1"
    assert all(p.timezone == "UTC" and "(review)" in p.name for p in acme.plants)


def test_printed_entries_apply(db: TestDatabase, tmp_path: Path) -> None:
    out = run_mes(db, "registry", "from-tagmap", str(SIM_MAP))
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("# Registry entries implied by")
    data = yaml.safe_load(out.stdout)
    parse_registry(data, "printed")  # a valid registry file as printed
    applied = run_mes(db, "registry", "apply", str(write(tmp_path, data)))
    assert applied.returncode == 0, applied.stderr
    assert "acme: create gateway gw-north (name 'gw-north (review)', plant 'north')" \
        in applied.stdout
    with db.app() as conn:
        row = conn.execute("SELECT organization_code, plant_code, is_active "
                           "FROM mes.lookup_gateway('gw-north')").fetchone()
    assert row == ("acme", "north", True)


def test_a_broken_map_is_reported_with_its_file(db: TestDatabase, tmp_path: Path) -> None:
    broken = tmp_path / "agent.yaml"
    broken.write_text(SIM_MAP.read_text().replace("gateway: gw-north", "gateway: GW"))
    out = run_mes(db, "registry", "from-tagmap", str(broken))
    assert out.returncode == 2
    assert f"config error in {broken}" in out.stderr and "gateway.gateway" in out.stderr
