"""What an operator sees when something is wrong: one clear message and exit status 2, the same
in every command, never a traceback and never a password."""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from mes.sim.cli import _map_hint, at_a_terminal, build, config_from
from mes.sim.config import SimConfig
from mes.sim.tagmap import SHIPPED_MAP, SHIPPED_MODBUS_PORT, SHIPPED_OPCUA_PORT

ROOT = Path(__file__).resolve().parents[1]
SECRET = "hunter2-secret"


def mes(*args: str, env: dict[str, str] | None = None, timeout: float = 60
        ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("MES_") and k != "DATABASE_URL"}
    return subprocess.run([sys.executable, "-m", "mes.cli", *args], capture_output=True,
                          text=True, timeout=timeout, env={**clean, **(env or {})}, cwd=ROOT)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port some other process holds."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_busy_status_port_of_the_agent_is_a_config_error(tmp_path: Path, busy_port: int) -> None:
    tag_map = (ROOT / SHIPPED_MAP).read_text().replace(
        "outbox: {path: sim-agent-outbox.sqlite3}", f"outbox: {{path: {tmp_path / 'ob.db'}}}")
    (tmp_path / "map.yaml").write_text(tag_map)
    done = mes("edge", "run", "--config", str(tmp_path / "map.yaml"),
               "--status-port", str(busy_port))
    assert done.returncode == 2, done.stderr
    assert f"--status-port: cannot listen on 127.0.0.1:{busy_port}" in done.stderr
    assert "Traceback" not in done.stderr


def test_busy_status_port_of_the_ingest_is_a_config_error(busy_port: int) -> None:
    done = mes("ingest", "run", env={
        "MES_DATABASE__URL": "postgresql://owner@127.0.0.1:1/mes",
        "MES_INGEST__STATUS_PORT": str(busy_port)})
    assert done.returncode == 2, done.stderr
    assert f"ingest.status_port: cannot listen on 127.0.0.1:{busy_port}" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("variable", ["DATABASE_URL", "MES_DATABASE__URL"])
@pytest.mark.parametrize("url", [
    pytest.param(f"postgresql://mes:{SECRET}@db:5432", id="url-without-database"),
    pytest.param(f"mysql://mes:{SECRET}@db/mes", id="wrong-scheme"),
])
def test_a_bad_database_url_is_reported_without_its_password(variable: str, url: str) -> None:
    done = mes("db", "migrate", env={variable: url})
    assert done.returncode == 2, done.stderr
    assert "database.url" in done.stderr
    assert SECRET not in done.stderr + done.stdout


def test_a_bad_database_url_in_a_file_is_reported_without_its_password(tmp_path: Path) -> None:
    config = tmp_path / "mes.toml"
    config.write_text(f'[database]\nurl = "postgresql://mes:{SECRET}@db:5432"\n')
    done = mes("--config", str(config), "db", "status")
    assert done.returncode == 2, done.stderr
    assert SECRET not in done.stderr and str(config) in done.stderr


@pytest.mark.parametrize("command", [
    pytest.param(("db", "migrate"), id="db-migrate"),
    pytest.param(("db", "status"), id="db-status"),
    pytest.param(("ingest", "run"), id="ingest-run"),
    pytest.param(("ingest", "dead-letters", "list"), id="dead-letters-list"),
])
def test_missing_database_url_is_the_same_message_everywhere(command: tuple[str, ...]) -> None:
    done = mes(*command)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines()[-1].strip() == (
        "- database.url: not set: give the owner's (or an administrator's) URL in "
        "MES_DATABASE__URL, DATABASE_URL or the config file's [database] section")


def test_mes_sim_without_port_options_serves_the_shipped_maps_ports() -> None:
    parser = argparse.ArgumentParser()
    build(parser)
    config = at_a_terminal(config_from(parser.parse_args([])))
    shipped = yaml.safe_load((ROOT / SHIPPED_MAP).read_text())
    ports = {d["name"]: d.get("port") or d.get("endpoint") for d in shipped["devices"]}
    assert ports == {"sim-modbus": config.modbus_port,
                     "sim-opcua": f"opc.tcp://{config.host}:{config.opcua_port}/"}
    # Programs driving it (--control) keep asking for free ports.
    assert config_from(parser.parse_args(["--control"])).modbus_port is None


def test_mes_sim_on_the_shipped_ports_names_the_shipped_map() -> None:
    config = SimConfig(modbus_port=SHIPPED_MODBUS_PORT, opcua_port=SHIPPED_OPCUA_PORT)
    assert _map_hint(config).endswith(f"mes edge check --config {SHIPPED_MAP}")


def test_mes_sim_elsewhere_says_how_to_make_its_map() -> None:
    config = SimConfig(machines=2, modbus_port=SHIPPED_MODBUS_PORT, opcua_port=SHIPPED_OPCUA_PORT)
    hint = _map_hint(config)
    assert "mes sim tagmap --machines 2 " in hint and SHIPPED_MAP not in hint
