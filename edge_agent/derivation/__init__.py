"""Tag values -> machine state, downtime, counters and telemetry: the rules and the trackers."""
