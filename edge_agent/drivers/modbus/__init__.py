"""Modbus TCP: tag and device settings, the read planner, register decoding, the driver."""
