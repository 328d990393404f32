"""Records -> the centre: the durable outbox and its bound, the MQTT publisher, its settings."""
