"""Tag maps: the examples load; each kind of mistake gives an error naming file and key path."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from core.config_errors import ConfigError
from edge_agent.drivers.modbus.config import ModbusTag
from edge_agent.drivers.opcua.config import OpcUaTag
from edge_agent.tagmap import AgentConfig, load_agent_config

EXAMPLES = Path(__file__).parents[2] / "config" / "edge" / "examples"
MODBUS_MAP = EXAMPLES / "modbus_line.yaml"
OPCUA_MAP = EXAMPLES / "opcua_line.toml"


def modbus_map() -> dict[str, Any]:
    return yaml.safe_load(MODBUS_MAP.read_text())


def write(tmp_path: Path, data: dict[str, Any], name: str = "agent.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def test_examples_load_with_tags_of_their_device_protocol() -> None:
    modbus = load_agent_config(MODBUS_MAP)
    assert {type(t) for m in modbus.machines for t in m.tags.values()} == {ModbusTag}
    assert modbus.machines[0].tags["motor_on"].type.value == "bool"  # coil default
    assert modbus.outbox.path == EXAMPLES / "outbox.sqlite3"
    opcua = load_agent_config(OPCUA_MAP)
    assert {type(t) for m in opcua.machines for t in m.tags.values()} == {OpcUaTag}
    assert [b.tag for b in opcua.bound_tags("ua-1")] == list(opcua.machines[0].tags)


def test_config_hash_is_stable_and_follows_content(tmp_path: Path) -> None:
    a = load_agent_config(MODBUS_MAP).config_hash()
    same = modbus_map()
    assert (
        load_agent_config(write(tmp_path, same)).config_hash()
        == load_agent_config(write(tmp_path, copy.deepcopy(same), "again.yaml")).config_hash()
    )
    changed = modbus_map()
    changed["devices"][0]["poll_interval_s"] = 2
    assert load_agent_config(write(tmp_path, changed)).config_hash() != a
    assert len(a) == 64


def _del(path: list[Any]) -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        for p in path[:-1]:
            d = d[p]
        del d[path[-1]]

    return edit


def _set(path: list[Any], value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(d: dict[str, Any]) -> None:
        for p in path[:-1]:
            d = d[p]
        d[path[-1]] = value

    return edit


def _reason_codes(codes: dict[int, str]) -> dict[str, Any]:
    return {"tags": [{"tag": "parts", "codes": codes}]}


BAD_MAPS = {
    "missing key": (
        _del(["devices", 0, "host"]),
        ["devices[0].host", "Field required"],
    ),
    "wrong type": (
        _set(["devices", 0, "port"], "five-oh-two"),
        ["devices[0].port", "valid integer", "five-oh-two"],
    ),
    "bad word order": (
        _set(["machines", 0, "tags", "position", "word_order"], "middle"),
        ["machines[0].tags.position.word_order", "'big' or 'little'", "middle"],
    ),
    "unknown device": (
        _set(["machines", 1, "device"], "plc-9"),
        ["machines[1].device", "unknown device 'plc-9'", "plc-1"],
    ),
    "unknown tag in rules": (
        _set(["machines", 1, "rules", "state", "tag"], "mode"),
        ["machines[1].rules", "'mode'", "not defined in machines[1].tags"],
    ),
    "unknown key": (
        _set(["machines", 0, "tags", "speed", "wordorder"], "big"),
        ["machines[0].tags.speed.wordorder", "Extra inputs are not permitted"],
    ),
    "opcua field on a modbus tag": (
        _set(["machines", 0, "tags", "speed"], {"node_id": "ns=2;s=Speed"}),
        ["machines[0].tags.speed.node_id", "machines[0].tags.speed.address"],
    ),
    "bit without bit number": (
        _del(["machines", 0, "tags", "run", "bit"]),
        ["machines[0].tags.run", "'bit' (0-15) is required"],
    ),
    "overlapping registers": (
        _set(["machines", 0, "tags", "delta", "address"], 3),
        ["machines[0].tags.delta.address", "overlaps machines[0].tags.speed"],
    ),
    "duplicate device": (
        lambda d: d["devices"].append(copy.deepcopy(d["devices"][0])),
        ["devices[1].name", "duplicate device name 'plc-1'"],
    ),
    "duplicate machine": (
        _set(["machines", 1, "code"], "press-1"),
        ["machines[1].code", "duplicate machine code"],
    ),
    "bad gateway code": (
        _set(["gateway", "plant"], "Plant 1"),
        ["gateway.plant", "should match pattern"],
    ),
    "too many outstanding modbus requests": (
        _set(["devices", 0, "max_outstanding_requests"], 17),
        ["devices[0].max_outstanding_requests", "less than or equal to 16"],
    ),
    # Codes the ingest would refuse (core.wire.TEXT_RULE) are refused when the map is loaded.
    "machine code with a control character": (
        _set(["machines", 1, "code"], "saw\x07-2"),
        ["machines[1].code", "printable text", "the ingest refuses"],
    ),
    "tag name with a line break": (
        _set(["machines", 1, "tags", "part\ncount"], {"address": 5, "type": "uint16"}),
        ["machines[1].tags", "'part\\ncount'", "printable text"],
    ),
    "reason code with a quote": (
        _set(["machines", 1, "rules", "reasons"], _reason_codes({3: "jam'"})),
        ["machines[1].rules.reasons.tags[0].codes", "printable text"],
    ),
    "published counter name ending in a space": (
        _set(["machines", 1, "rules", "counters", 0, "name"], "parts "),
        ["machines[1].rules.counters[0].name", "printable text"],
    ),
    "reason code too long for the wire": (
        _set(["machines", 1, "rules", "reasons"], _reason_codes({3: "j" * 65})),
        ["machines[1].rules.reasons.tags[0].codes", "at most 64 characters"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_MAPS), ids=list(BAD_MAPS))
def test_bad_map_names_file_key_and_expectation(tmp_path: Path, case: str) -> None:
    edit, expected = BAD_MAPS[case]
    data = modbus_map()
    edit(data)
    path = write(tmp_path, data)
    with pytest.raises(ConfigError) as err:
        load_agent_config(path)
    message = str(err.value)
    assert str(path) in message
    for part in expected:
        assert part in message, f"{part!r} not in:\n{message}"


def test_bad_node_id(tmp_path: Path) -> None:
    text = OPCUA_MAP.read_text().replace('"ns=2;s=Line1.Speed"', '"ns=two;s=Line1.Speed"')
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_agent_config(path)
    message = str(err.value)
    assert str(path) in message
    assert "machines[0].tags.speed.node_id" in message and "not an OPC UA node id" in message


def test_secured_device_needs_existing_certificate_files(tmp_path: Path) -> None:
    text = OPCUA_MAP.read_text().replace(
        'security_policy = "None"',
        'security_policy = "Basic256Sha256"\ncertificate = "pki/agent.der"\n'
        'private_key = "pki/agent.pem"',
    )
    path = tmp_path / "agent.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=r"devices\[0\]\.certificate: no such file: .*pki"):
        load_agent_config(path)
    (tmp_path / "pki").mkdir()
    (tmp_path / "pki" / "agent.der").write_bytes(b"x")
    (tmp_path / "pki" / "agent.pem").write_bytes(b"x")
    device = load_agent_config(path).devices[0]
    assert device.certificate == tmp_path / "pki" / "agent.der"


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("agent.yaml", "gateway: [unclosed", "not valid YAML"),
        ("agent.toml", "gateway = ", "not valid TOML"),
        ("agent.json", "{}", "expected .yaml, .yml or .toml"),
        ("agent.yaml", "- a list", "expected a mapping"),
    ],
)
def test_unreadable_files(tmp_path: Path, name: str, content: str, expected: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigError, match=expected):
        load_agent_config(path)
    with pytest.raises(ConfigError, match="cannot read"):
        load_agent_config(tmp_path / "missing.yaml")


def test_model_validate_without_a_file_shapes_tags_too() -> None:
    config = AgentConfig.model_validate(modbus_map())
    assert isinstance(config.machines[1].tags["parts"], ModbusTag)
