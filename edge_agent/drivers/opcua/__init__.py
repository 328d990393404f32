"""OPC UA: tag and device settings and the driver (subscriptions or polled reads)."""

from edge_agent.drivers.opcua.config import OpcUaDevice, OpcUaTag
from edge_agent.drivers.opcua.driver import OpcUaDriver
from edge_agent.drivers.registry import ProtocolSpec

PROTOCOL = ProtocolSpec(name="opcua", device=OpcUaDevice, tag=OpcUaTag, driver=OpcUaDriver)
