"""The protocol registry: every folder under drivers/ is a protocol, described once."""

from __future__ import annotations

import pkgutil
import typing

import edge_agent.drivers
from edge_agent.drivers.registry import make_driver, protocol_of, protocols


def test_every_driver_folder_is_a_registered_protocol() -> None:
    folders = {m.name for m in pkgutil.iter_modules(edge_agent.drivers.__path__) if m.ispkg}
    assert set(protocols()) == folders == {"modbus", "opcua"}


def test_a_protocol_name_is_its_device_models_protocol_key() -> None:
    for name, spec in protocols().items():
        annotation = spec.device.model_fields["protocol"].annotation
        assert typing.get_args(annotation) == (name,)


# One device of each protocol, minimal; a new protocol's folder adds its example here.
DEVICES = {
    "modbus": {"protocol": "modbus", "name": "press", "host": "127.0.0.1"},
    "opcua": {"protocol": "opcua", "name": "oven", "endpoint": "opc.tcp://127.0.0.1:4840"},
}


def test_make_driver_picks_the_devices_protocol() -> None:
    assert set(DEVICES) == set(protocols())
    for name, spec in protocols().items():
        device = spec.device.model_validate(DEVICES[name])
        assert protocol_of(device) is spec
        driver = make_driver(device, [])
        assert driver.name == DEVICES[name]["name"]
        assert driver.watches("m1", {"state"}) is False  # not connected: nothing is watched
