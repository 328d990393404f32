"""The agent's tag map: gateway identity, broker, outbox, devices, and machines with their tags.

One file (YAML or TOML) configures an agent. Every section is a typed model with `extra=forbid`
that owns its defaults; `load_agent_config` turns any problem into a ConfigError naming the
file, the key path (`machines[2].tags.speed.word_order`) and what was expected. A tag's address
takes the shape of its machine's device: Modbus (`table`, `address`, `type`, ...) or OPC UA
(`node_id`). See config/edge/examples/ for complete maps and docs in each model.
"""

from __future__ import annotations

import hashlib
import json
import operator
import tomllib
from collections.abc import Iterator
from functools import reduce
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import (
    AfterValidator,
    Field,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from core.config_errors import ConfigError, describe
from core.config_model import StrictModel
from core.wire import CODE_PATTERN, MACHINE_CODE_MAX
from edge_agent.delivery.settings import BrokerConfig, OutboxConfig
from edge_agent.derivation.rules import MachineRules, wire_text
from edge_agent.drivers.base import BoundTag
from edge_agent.drivers.registry import Loc, protocols

_PROTOCOLS = protocols()
# The shapes a device and a tag may take: one per protocol under drivers/ (drivers.registry).
DeviceConfig = Annotated[
    reduce(operator.or_, (p.device for p in _PROTOCOLS.values())),
    Field(discriminator="protocol"),
]
TagConfig = reduce(operator.or_, (p.tag for p in _PROTOCOLS.values()))
_TAGS_BY_PROTOCOL = {name: TypeAdapter(dict[str, p.tag]) for name, p in _PROTOCOLS.items()}
_DEVICE_MODELS = {name: p.device for name, p in _PROTOCOLS.items()}
_EXPECTED_PROTOCOL = "expected " + " or ".join(repr(name) for name in _PROTOCOLS)
# libyaml's loader when PyYAML was built with it: the pure-Python one takes ~12 s for a
# 10,000-tag map. Both are the safe loader (plain data only).
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _located(err: Any, prefix: tuple[str | int, ...]) -> InitErrorDetails:
    """A pydantic error again, its location under `prefix`."""
    return InitErrorDetails(
        type=err["type"], loc=(*prefix, *err["loc"]), input=err.get("input"), ctx=err.get("ctx", {})
    )


class GatewayIdentity(StrictModel):
    """Who publishes: codes registered in the centre (`[a-z0-9][a-z0-9-]{0,62}`)."""

    org: str = Field(pattern=CODE_PATTERN)
    plant: str = Field(pattern=CODE_PATTERN)
    gateway: str = Field(pattern=CODE_PATTERN)


class MachineConfig(StrictModel):
    """A machine: the device its tags are read from, the tags, and its state rules."""

    code: Annotated[str, Field(min_length=1, max_length=MACHINE_CODE_MAX),
                    AfterValidator(wire_text)]
    name: str | None = None
    device: str = Field(min_length=1)
    tags: dict[str, TagConfig] = Field(min_length=1)
    rules: MachineRules

    @field_validator("tags", mode="wrap")
    @classmethod
    def _tags_of_device_protocol(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        protocols = (info.context or {}).get("protocols")
        if protocols is None:  # validated on its own, not as part of an AgentConfig
            return handler(value)
        adapter = _TAGS_BY_PROTOCOL.get(protocols.get(info.data.get("device")))
        if adapter is None:
            # The device is unknown or itself invalid, an error reported on its own; without
            # its protocol the tags cannot be checked, and the config is refused regardless.
            return value
        tags = adapter.validate_python(value, context=info.context)
        if not tags:
            raise ValueError("a machine needs at least one tag")
        for name in tags:
            if not 1 <= len(name) <= 128:
                raise ValueError(f"tag name {name!r} must be 1 to 128 characters")
            wire_text(name)
        return tags


class AgentConfig(StrictModel):
    """The whole tag map of one agent."""

    gateway: GatewayIdentity
    broker: BrokerConfig
    outbox: OutboxConfig
    devices: list[DeviceConfig] = Field(min_length=1)
    machines: list[MachineConfig] = Field(min_length=1)

    @field_validator("devices", mode="wrap")
    @classmethod
    def _devices_by_protocol(
        cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> Any:
        """Validate each device by its `protocol`, keeping key paths free of union tags."""
        if not isinstance(value, list):
            return handler(value)
        devices: list[Any] = []
        errors: list[InitErrorDetails] = []
        for i, item in enumerate(value):
            raw = (
                item.get("protocol") if isinstance(item, dict) else getattr(item, "protocol", None)
            )
            model = _DEVICE_MODELS.get(raw) if isinstance(raw, str) else None
            if model is None:
                expected = PydanticCustomError("protocol", _EXPECTED_PROTOCOL)
                errors.append(InitErrorDetails(type=expected, loc=(i, "protocol"), input=raw))
                continue
            try:
                devices.append(model.model_validate(item, context=info.context))
            except ValidationError as e:
                errors += [_located(err, (i,)) for err in e.errors()]
        if errors:
            raise ValidationError.from_exception_data("devices", errors)
        return handler(devices)

    @classmethod
    def model_validate(cls, obj: Any, *, context: dict[str, Any] | None = None,
                       **kwargs: Any) -> AgentConfig:  # fmt: skip
        """Validate, giving each machine's tags the shape of its device's protocol."""
        ctx = {"protocols": _device_protocols(obj), **(context or {})}
        return super().model_validate(obj, context=ctx, **kwargs)

    @model_validator(mode="after")
    def _cross_references(self) -> AgentConfig:
        problems = list(_reference_problems(self))
        if problems:
            raise ValidationError.from_exception_data(
                "AgentConfig",
                [
                    InitErrorDetails(
                        type=PydanticCustomError("reference", msg), loc=loc, input=None
                    )
                    for loc, msg in problems
                ],
            )
        return self

    def bound_tags(self, device: str) -> list[BoundTag]:
        """Every tag read from `device`, bound to its machine, in map order."""
        return [
            BoundTag(m.code, name, address)
            for m in self.machines
            if m.device == device
            for name, address in m.tags.items()
        ]

    def config_hash(self) -> str:
        """A stable hash of the normalised config (defaults filled in), for the birth message."""
        text = json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def _device_protocols(obj: Any) -> dict[str, str]:
    """Device name -> protocol, read leniently from raw input (validation reports the rest)."""
    devices = obj.get("devices") if isinstance(obj, dict) else None
    out: dict[str, str] = {}
    for d in devices if isinstance(devices, list) else []:
        if isinstance(d, dict) and isinstance(d.get("name"), str) and d.get("protocol") in (
            _PROTOCOLS
        ):  # fmt: skip
            out.setdefault(d["name"], d["protocol"])
        elif isinstance(d, tuple(_DEVICE_MODELS.values())):
            out.setdefault(d.name, d.protocol)
    return out


def _reference_problems(config: AgentConfig) -> Iterator[tuple[Loc, str]]:
    seen: dict[str, int] = {}
    for i, d in enumerate(config.devices):
        if d.name in seen:
            yield (
                ("devices", i, "name"),
                f"duplicate device name {d.name!r} (see devices[{seen[d.name]}])",
            )
        seen.setdefault(d.name, i)
    codes: dict[str, int] = {}
    for i, m in enumerate(config.machines):
        if m.code in codes:
            yield (
                ("machines", i, "code"),
                f"duplicate machine code {m.code!r} (see machines[{codes[m.code]}])",
            )
        codes.setdefault(m.code, i)
        if m.device not in seen:
            yield (
                ("machines", i, "device"),
                (f"unknown device {m.device!r}; expected one of: {', '.join(sorted(seen))}"),
            )
            continue
        for tag in sorted(m.rules.referenced_tags() - m.tags.keys()):
            yield (
                ("machines", i, "rules"),
                (f"tag {tag!r} is used by the rules but not defined in machines[{i}].tags"),
            )
    for device in config.devices:
        yield from _device_problems(config, device)


def _device_problems(config: AgentConfig, device: Any) -> Iterator[tuple[Loc, str]]:
    """What the device's protocol finds wrong across its tags (drivers.registry)."""
    spec = _PROTOCOLS[device.protocol]
    if spec.device_checks is None:
        return
    placed = [
        (("machines", i, "tags", name), t)
        for i, m in enumerate(config.machines)
        if m.device == device.name
        for name, t in m.tags.items()
        if isinstance(t, spec.tag)
    ]
    yield from spec.device_checks(device, placed)


def load_agent_config(path: str | Path) -> AgentConfig:
    """Read and validate a tag map (`.yaml`, `.yml` or `.toml`); relative paths in it are
    relative to its folder. Raises ConfigError naming the file and key path of each problem."""
    path = Path(path)
    data = _read(path)
    try:
        config = AgentConfig.model_validate(data, context={"base_dir": path.parent})
    except ValidationError as e:
        raise describe(e, file=path, file_data=data) from None
    return _resolve_paths(config, path.parent)


def _read(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError([f"cannot read the file: {e.strerror or e}"], path) from None
    suffix = path.suffix.lower()
    try:
        if suffix in (".yaml", ".yml"):
            data = yaml.load(text, Loader=_YAML_LOADER)
        elif suffix == ".toml":
            data = tomllib.loads(text)
        else:
            raise ConfigError([f"unknown format {suffix!r}: expected .yaml, .yml or .toml"], path)
    except (yaml.YAMLError, tomllib.TOMLDecodeError) as e:
        raise ConfigError([f"not valid {suffix.lstrip('.').upper()}: {e}"], path) from None
    if not isinstance(data, dict):
        raise ConfigError(
            ["(top level): expected a mapping of sections (gateway, broker, ...)"], path
        )
    return data


def _resolve_paths(config: AgentConfig, base: Path) -> AgentConfig:
    """Outbox and broker TLS paths relative to the tag map's folder, like certificate paths."""

    def rel(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else base / p

    tls = config.broker.tls
    broker = config.broker.model_copy(
        update={
            "tls": tls.model_copy(
                update={n: rel(getattr(tls, n)) for n in ("ca_file", "cert_file", "key_file")}
            )
        }
    )
    outbox = config.outbox.model_copy(update={"path": rel(config.outbox.path)})
    return config.model_copy(update={"broker": broker, "outbox": outbox})
