"""Protocols register themselves: one folder under `drivers/` per protocol, found at start.

Every subpackage of `edge_agent.drivers` is a protocol and exports `PROTOCOL`, a
`ProtocolSpec` saying everything the rest of the agent needs to know about it: the device
model (its `protocol` key is the name a tag map uses), the tag model (the shape a machine's
tag takes on such a device), the driver that reads it, and the checks across one device's
tags that no single tag can make (Modbus: every tag fits a request, no two overlap). The tag
map, the agent and `mes edge check` ask this registry and never name a protocol, so adding
one is adding a folder: `drivers/<name>/__init__.py` with its `PROTOCOL`, and its modules.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from core.config_model import StrictModel
from edge_agent.drivers.base import BoundTag, Driver

Loc = tuple[str | int, ...]
"""A key path in the tag map, e.g. ("machines", 2, "tags", "speed")."""

DeviceChecks = Callable[[Any, Sequence[tuple[Loc, Any]]], Iterable[tuple[Loc, str]]]
"""(device, [(where, tag), ...] of the device's tags) -> (where, message) of each problem."""


@dataclass(frozen=True, slots=True)
class ProtocolSpec:
    """One protocol as the agent sees it; `device.protocol` must be `Literal[name]`."""

    name: str
    device: type[StrictModel]
    tag: type[StrictModel]
    driver: Callable[[Any, list[BoundTag]], Driver]
    device_checks: DeviceChecks | None = None


@cache
def protocols() -> dict[str, ProtocolSpec]:
    """Every protocol under `drivers/`, by name, in folder order (imported once)."""
    found: dict[str, ProtocolSpec] = {}
    drivers = importlib.import_module(__package__ or "edge_agent.drivers")
    for module in pkgutil.iter_modules(drivers.__path__):
        if not module.ispkg:
            continue
        package = importlib.import_module(f"{drivers.__name__}.{module.name}")
        spec = getattr(package, "PROTOCOL", None)
        if not isinstance(spec, ProtocolSpec) or spec.name in found:
            raise TypeError(f"drivers/{module.name}: PROTOCOL must be a ProtocolSpec of its own")
        found[spec.name] = spec
    return found


def protocol_of(device: StrictModel) -> ProtocolSpec:
    """The protocol a validated device model belongs to."""
    return protocols()[device.protocol]  # type: ignore[attr-defined]


def make_driver(device: StrictModel, tags: list[BoundTag]) -> Driver:
    """The driver for `device` reading `tags` (their addresses must be of the device's protocol)."""
    return protocol_of(device).driver(device, tags)
