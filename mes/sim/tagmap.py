"""The edge agent's tag map for the simulator, generated from layout.py so the two cannot drift.

    mes sim tagmap --machines 4 > config/edge/sim-agent.yaml

Machines served by both protocols are split for the map: the first half read over Modbus, the
rest over OPC UA. Two state rules are on offer (`--state-rule`), both exact against the truth:

- `packml` (default): the agent's `packml` preset on the PackML state register, refined by the
  stop reason register where PackML cannot tell (Suspended is starved or blocked, Held is
  setup): what a plant engineer would write for a PackML machine.
- `status`: a code table on the status word, one bit per canonical state.
"""

from __future__ import annotations

from typing import Any, Literal

import yaml

from edge_agent.derivation.rules import PACKML_STATES, PackMLState
from mes.sim.config import Protocol, SimConfig
from mes.sim.layout import (
    BASE_TAGS,
    CATEGORY_OF_STATE,
    PACKML_OF_STATE,
    STATE_OF_REASON,
    STATUS_BITS,
    DType,
    Reason,
    Table,
    extra_address,
    extra_name,
    machine_code,
    modbus_unit,
    opcua_node_id,
    reason_code,
)
from mes.sim.model import MICRO_STOP_S

# Where the shipped map expects the simulator (non-standard ports, loopback only).
SHIPPED_MODBUS_PORT = 15020
SHIPPED_OPCUA_PORT = 48400
SHIPPED_MAP = "config/edge/sim-agent.yaml"
MODBUS_DEVICE = "sim-modbus"
OPCUA_DEVICE = "sim-opcua"
StateRuleKind = Literal["status", "packml"]

# Tag names in the map: the snapshot field, with the two that need a clearer name renamed.
_TAG_NAME = {"packml": "state", "reason": "stop_reason"}
_MODBUS_TYPE = {DType.UINT16: "uint16", DType.UINT32: "uint32", DType.FLOAT32: "float32"}
_OPCUA_TYPE = {DType.BOOL: "bool", DType.UINT16: "int", DType.UINT32: "int", DType.FLOAT32: "float"}


def tag_name(field: str) -> str:
    """The map's name for the tag holding snapshot field `field`."""
    return _TAG_NAME.get(field, field)


def _extra_tag(k: int) -> str:
    return f"extra_{k:03d}"


def _modbus_tags(index: int, extra_tags: int) -> dict[str, dict[str, Any]]:
    unit = modbus_unit(index)
    tags: dict[str, dict[str, Any]] = {}
    for t in BASE_TAGS:
        if t.dtype is DType.BOOL:
            tags[tag_name(t.field)] = {"table": Table.DISCRETE.value, "address": t.address,
                                       "unit_id": unit}
        else:
            tags[tag_name(t.field)] = {"table": t.tables[0].value, "address": t.address,
                                       "type": _MODBUS_TYPE[t.dtype], "unit_id": unit}
    for k in range(extra_tags):
        tags[_extra_tag(k)] = {"table": Table.INPUT.value, "address": extra_address(k),
                               "type": "float32", "unit_id": unit}
    return tags


def _opcua_tags(index: int, extra_tags: int) -> dict[str, dict[str, Any]]:
    tags = {
        tag_name(t.field): {"node_id": opcua_node_id(index, t.name),
                            "expected_type": _OPCUA_TYPE[t.dtype]}
        for t in BASE_TAGS
    }
    for k in range(extra_tags):
        tags[_extra_tag(k)] = {"node_id": opcua_node_id(index, extra_name(k)),
                               "expected_type": "float"}
    return tags


def _state_rule(kind: StateRuleKind) -> dict[str, Any]:
    if kind == "packml":
        # The states the preset reads where the reason register knows better (starved, fault).
        refined = sorted({PACKML_STATES[PackMLState(PACKML_OF_STATE[s])]
                          for s in STATE_OF_REASON.values()})
        return {"kind": "preset", "preset": "packml", "tag": tag_name("packml"),
                "refine": {"tag": tag_name("reason"),
                           "states": [s.value for s in refined],
                           "codes": {int(r): s.value for r, s in STATE_OF_REASON.items()}}}
    return {"kind": "code", "tag": tag_name("status_word"),
            "codes": {1 << n: s.value for n, s in enumerate(STATUS_BITS)}}


def _rules(config: SimConfig, extra_tags: int, state_rule: StateRuleKind) -> dict[str, Any]:
    return {
        "state": _state_rule(state_rule),
        "reasons": {
            "tags": [{"tag": tag_name("reason"),
                      "codes": {int(r): reason_code(r) for r in Reason if r}}],
            "state_categories": {s.value: c.value for s, c in CATEGORY_OF_STATE.items()},
        },
        # The model's micro-stop length is in machine time; the agent measures wall time.
        "micro_stop_below_s": MICRO_STOP_S / config.speed,
        "offline_after_s": 5.0,
        "counters": [
            {"tag": tag_name("cycle_counter"), "kind": "cycles", "width": 16},
            {"tag": tag_name("parts"), "kind": "parts", "width": 32},
            {"tag": tag_name("runtime_s"), "kind": "runtime", "width": 32},
        ],
        "telemetry": [
            {"tag": "spindle_speed", "deadband_abs": 5.0},
            {"tag": "temperature", "deadband_abs": 0.1},
            *({"tag": _extra_tag(k), "deadband_abs": 0.5} for k in range(extra_tags)),
        ],
    }


def map_protocol(config: SimConfig, index: int) -> Protocol:
    """The protocol the map reads machine `index` over."""
    on_modbus, on_opcua = index in config.modbus_indexes, index in config.opcua_indexes
    if on_modbus and on_opcua:
        return Protocol.MODBUS if index < (config.machines + 1) // 2 else Protocol.OPCUA
    return Protocol.MODBUS if on_modbus else Protocol.OPCUA


def build(
    config: SimConfig,
    *,
    state_rule: StateRuleKind = "packml",
    gateway: tuple[str, str, str] = ("acme", "north", "gw-north"),
    poll_interval_s: float = 0.5,
) -> dict[str, Any]:
    """The tag map as plain data (what load_agent_config reads)."""
    modbus_port = config.modbus_port or SHIPPED_MODBUS_PORT
    opcua_port = config.opcua_port or SHIPPED_OPCUA_PORT
    protocols = {i: map_protocol(config, i) for i in range(config.machines)}
    devices: list[dict[str, Any]] = []
    if Protocol.MODBUS in protocols.values():
        devices.append({"name": MODBUS_DEVICE, "protocol": "modbus", "host": config.host,
                        "port": modbus_port, "poll_interval_s": poll_interval_s})
    if Protocol.OPCUA in protocols.values():
        devices.append({"name": OPCUA_DEVICE, "protocol": "opcua",
                        "endpoint": f"opc.tcp://{config.host}:{opcua_port}/",
                        "sampling_interval_ms": poll_interval_s * 1000 / 2,
                        "publishing_interval_ms": poll_interval_s * 1000})
    machines = []
    for i, protocol in protocols.items():
        on_modbus = protocol is Protocol.MODBUS
        machines.append({
            "code": machine_code(i),
            "name": f"Simulated machine {i + 1}",
            "device": MODBUS_DEVICE if on_modbus else OPCUA_DEVICE,
            "tags": (_modbus_tags if on_modbus else _opcua_tags)(i, config.extra_tags),
            "rules": _rules(config, config.extra_tags, state_rule),
        })
    org, plant, gw = gateway
    return {
        "gateway": {"org": org, "plant": plant, "gateway": gw},
        "broker": {"host": "127.0.0.1", "port": 1883},
        "outbox": {"path": "sim-agent-outbox.sqlite3"},
        "devices": devices,
        "machines": machines,
    }


def render(config: SimConfig, *, state_rule: StateRuleKind = "packml") -> str:
    """The tag map as YAML, with a header saying how to run the simulator it reads."""
    data = build(config, state_rule=state_rule)
    modbus = next((d["port"] for d in data["devices"] if d["protocol"] == "modbus"), None)
    opcua = next((d["endpoint"] for d in data["devices"] if d["protocol"] == "opcua"), None)
    ports = " ".join(
        f"--{p}-port {v}" for p, v in (
            ("modbus", modbus), ("opcua", opcua and opcua.rsplit(":", 1)[1].rstrip("/"))
        ) if v
    )
    header = (
        "# Tag map for the PLC simulator, generated from mes/sim/layout.py: do not edit, run\n"
        f"#   mes sim tagmap --machines {config.machines} --speed {config.speed:g}"
        f" --state-rule {state_rule} > this file\n"
        "# Serve it with\n"
        f"#   mes sim --machines {config.machines} --speed {config.speed:g} {ports}\n"
        "# Registers, node ids, PackML numbers and reason codes: see mes/sim/layout.py.\n"
    )
    return header + yaml.safe_dump(data, sort_keys=False, width=100, default_flow_style=None)
