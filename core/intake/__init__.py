"""The ingest's message path, shared by `mes ingest run` and the API's dead-letter replay: check
a message (validator), who its gateway and machines are (registry), commit a tenant's rows
(writer), and run dead letters through all three again (replay)."""
