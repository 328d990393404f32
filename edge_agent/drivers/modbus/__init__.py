"""Modbus TCP: tag and device settings, the read planner and its checks, decoding, the driver."""

from edge_agent.drivers.modbus.checks import device_checks
from edge_agent.drivers.modbus.config import ModbusDevice, ModbusTag
from edge_agent.drivers.modbus.driver import ModbusDriver
from edge_agent.drivers.registry import ProtocolSpec

PROTOCOL = ProtocolSpec(
    name="modbus",
    device=ModbusDevice,
    tag=ModbusTag,
    driver=ModbusDriver,
    device_checks=device_checks,
)
