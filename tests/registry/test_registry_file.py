"""Broken registry files: each refused with the file, the entity and the field named, and
nothing written (BAD_FILES is the table of cases and the words each message must hold)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from core.config_errors import ConfigError
from core.registry.model import load_registry
from tests.fixtures.database import TestDatabase
from tests.registry.helpers import registry_data, run_mes, write

Edit = Callable[[dict[str, Any]], None]


def _org_a(edit: Callable[[dict[str, Any]], None]) -> Edit:
    return lambda data: edit(data["organizations"][0])


BAD_FILES: dict[str, tuple[Edit, list[str]]] = {
    "unknown key": (
        _org_a(lambda o: o["machines"][0].update(colour="red")),
        ["machine 'a1-m1' of organization 'org-a'", "organizations[0].machines[0].colour",
         "Extra inputs are not permitted"],
    ),
    "unknown top-level key": (
        lambda d: d.update(sites=[]),
        ["sites", "Extra inputs are not permitted"],
    ),
    "duplicate machine code": (
        _org_a(lambda o: o["machines"].append({**o["machines"][0], "name": "Copy"})),
        ["machine 'a1-m1' of organization 'org-a'", "organizations[0].machines[3].code",
         "listed twice"],
    ),
    "duplicate plant code": (
        _org_a(lambda o: o["plants"].append({"code": "a1", "name": "Again"})),
        ["plant 'a1'", "organizations[0].plants[2].code", "listed twice"],
    ),
    "duplicate organization": (
        lambda d: d["organizations"].append({"code": "org-a", "name": "Twin"}),
        ["organization 'org-a'", "organizations[2].code", "listed twice"],
    ),
    "gateway in two organizations": (
        lambda d: d["organizations"][1]["gateways"].append(
            {"code": "gw-a1", "name": "Mine", "plant": "b1"}),
        ["gateway 'gw-a1' of organization 'org-b'", "organizations[1].gateways[1].code",
         "also listed under organization 'org-a'"],
    ),
    "machine in an unknown plant": (
        _org_a(lambda o: o["machines"][2].update(plant="a9")),
        ["machine 'a2-m1' of organization 'org-a'", "organizations[0].machines[2].plant",
         "unknown plant", "'a9'", "a1, a2"],
    ),
    "user in an unknown plant": (
        _org_a(lambda o: o["users"][2].update(plant="b1")),
        ["user 'tech@a.test'", "organizations[0].users[2].plant", "unknown plant", "'b1'"],
    ),
    "invalid time zone": (
        _org_a(lambda o: o["plants"][1].update(timezone="America/Springfield")),
        ["plant 'a2' of organization 'org-a'", "organizations[0].plants[1].timezone",
         "unknown time zone 'America/Springfield'", "IANA"],
    ),
    "plant code breaks the topic rule": (
        _org_a(lambda o: o["plants"][0].update(code="Plant/1")),
        ["organizations[0].plants[0].code", "lowercase letters, digits and '-'", "MQTT topic",
         "Plant/1"],
    ),
    "gateway code breaks the topic rule": (
        _org_a(lambda o: o["gateways"][0].update(code="gw+1")),
        ["organizations[0].gateways[0].code", "lowercase letters", "gw+1"],
    ),
    "organization code breaks the topic rule": (
        _org_a(lambda o: o.update(code="-org")),
        ["organization '-org'", "organizations[0].code", "starting with a letter or digit"],
    ),
    "reserved gateway code": (
        _org_a(lambda o: o["gateways"][0].update(code="maintenance")),
        ["organizations[0].gateways[0].code", "reserved for the services' broker accounts"],
    ),
    "unknown role": (
        _org_a(lambda o: o["users"][2].update(roles=["superuser"])),
        ["user 'tech@a.test'", "organizations[0].users[2].roles[0]", "'org_admin'",
         "superuser"],
    ),
    "plant admin without a plant": (
        _org_a(lambda o: o["users"][1].pop("plant")),
        ["user 'lead@a.test'", "organizations[0].users[1].plant",
         "plant_admin needs the `plant` it administers"],
    ),
    "organization admin with a plant": (
        _org_a(lambda o: o["users"][0].update(plant="a1")),
        ["user 'admin@a.test'", "organizations[0].users[0].plant", "organization-wide"],
    ),
    "missing name": (
        _org_a(lambda o: o["gateways"][1].pop("name")),
        ["gateway 'gw-a2'", "organizations[0].gateways[1].name", "Field required"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_bad_file_names_file_entity_and_field(tmp_path: Path, case: str) -> None:
    edit, expected = BAD_FILES[case]
    data = registry_data()
    edit(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_registry(path)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message, f"{part!r} not in:\n{message}"


def test_a_bad_file_writes_nothing(db: TestDatabase, tmp_path: Path) -> None:
    data = registry_data()
    data["organizations"][1]["machines"][0]["plant"] = "b7"  # org-a itself is fine
    path = write(tmp_path, data)
    out = run_mes(db, "registry", "apply", str(path))
    assert out.returncode == 2
    assert f"config error in {path}" in out.stderr and "unknown plant" in out.stderr
    assert "Traceback" not in out.stderr
    with db.superuser() as conn:
        assert conn.execute("SELECT count(*) FROM mes.organizations").fetchone() == (0,)


def test_not_yaml_and_not_a_mapping(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("organizations: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_registry(bad)
    bad.write_text("- just a list\n")
    with pytest.raises(ConfigError, match="expected a mapping with `organizations`"):
        load_registry(bad)
