-- Plain PostgreSQL (no TimescaleDB on this server): the time-series tables stay ordinary
-- tables, and time in state per machine and hour is computed on the fly by a plain view with
-- the same name and columns as the continuous aggregate of the TimescaleDB path, so that
-- everything above it (0006) is one code path. Buckets are UTC hours, like time_bucket's.

CREATE VIEW mes.machine_state_hourly_agg AS
    SELECT date_bin(INTERVAL '1 hour', ts, TIMESTAMPTZ '2000-01-01 00:00:00+00') AS bucket,
           organization_id, plant_id, machine_id,
           mes.state_summary(ts, state) AS summary
    FROM mes.machine_status_history
    GROUP BY 1, organization_id, plant_id, machine_id;
REVOKE ALL ON mes.machine_state_hourly_agg FROM PUBLIC;
