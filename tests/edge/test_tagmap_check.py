"""`mes edge check` against live servers: the table, and the exit status for each outcome."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from mes.cli import main
from mes.services.ports import free_port
from tests.edge.conftest import ModbusTestServer, OpcUaTestServer

EXAMPLES = Path(__file__).parents[2] / "config" / "edge" / "examples"


def modbus_map(tmp_path: Path, port: int) -> Path:
    data: dict[str, Any] = yaml.safe_load((EXAMPLES / "modbus_line.yaml").read_text())
    data["devices"][0]["port"] = port
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def table_rows(out: str) -> dict[tuple[str, str], str]:
    """(machine, tag) -> the rest of its table line."""
    rows = {}
    for line in out.splitlines()[1:]:
        parts = line.split()
        if len(parts) >= 3:
            rows[(parts[1], parts[2])] = " ".join(parts[3:])
    return rows


def test_check_prints_every_tag_and_exits_0(
    tmp_path: Path, modbus_server: ModbusTestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["edge", "check", "--config", str(modbus_map(tmp_path, modbus_server.port))])
    out = capsys.readouterr().out
    assert status == 0, out
    rows = table_rows(out)
    assert out.splitlines()[0].split() == ["DEVICE", "MACHINE", "TAG", "VALUE", "ERROR"]
    assert rows[("press-1", "cycles")] == "1234"
    assert rows[("press-1", "recipe")] == "'LINE-1'"
    assert rows[("press-1", "temp")] == "77.7"
    assert rows[("saw-2", "state_code")] == "42"
    assert "13 of 13 tags read, 0 failed" in out


def test_check_on_the_opcua_example(
    tmp_path: Path, opcua_server: OpcUaTestServer, capsys: pytest.CaptureFixture[str]
) -> None:
    text = (EXAMPLES / "opcua_line.toml").read_text()
    path = tmp_path / "agent.toml"
    path.write_text(text.replace("opc.tcp://127.0.0.1:4841/mes/", opcua_server.endpoint))
    status = main(["edge", "check", "--config", str(path)])
    out = capsys.readouterr().out
    assert status == 0, out
    assert table_rows(out)[("filler-1", "product")] == "'Line 1'"


def test_check_exits_1_when_a_device_does_not_answer(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data: dict[str, Any] = yaml.safe_load((EXAMPLES / "modbus_line.yaml").read_text())
    data["devices"][0].update(port=free_port(), timeout_s=0.5)
    path = tmp_path / "agent.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["edge", "check", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    assert "cannot connect" in table_rows(out)[("press-1", "cycles")]
    assert "0 of 13 tags read, 13 failed" in out


def test_check_of_a_closed_opcua_port_says_so_in_words(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = f"opc.tcp://127.0.0.1:{free_port()}/"
    text = (EXAMPLES / "opcua_line.toml").read_text()
    path = tmp_path / "agent.toml"
    path.write_text(text.replace("opc.tcp://127.0.0.1:4841/mes/", endpoint))
    assert main(["edge", "check", "--config", str(path)]) == 1
    out = capsys.readouterr().out
    error = table_rows(out)[("filler-1", "product")]
    assert error == f"cannot connect to {endpoint}: connection refused (is the server running?)"
    assert "Errno" not in out and "ConnectionRefusedError" not in out


def test_check_of_a_bad_map_exits_2_naming_file_and_key(tmp_path: Path) -> None:
    path = modbus_map(tmp_path, 5020)
    path.write_text(path.read_text().replace("word_order: little", "word_order: middle"))
    done = subprocess.run(
        [sys.executable, "-m", "mes.cli", "edge", "check", "--config", str(path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert str(path) in done.stderr
    assert "machines[0].tags.position.word_order" in done.stderr
    assert done.stdout == ""
