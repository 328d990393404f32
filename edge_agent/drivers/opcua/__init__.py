"""OPC UA: tag and device settings and the driver (subscriptions or polled reads)."""
