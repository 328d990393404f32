-- TimescaleDB is loaded on this server: hypertables, compression, retention and a continuous
-- aggregate of time in state per machine and hour (written from the TimescaleDB documentation;
-- the plain path, 0005_timeseries_storage.plain.sql, is the one tested on every run).
--
-- The tables carry no RLS and the application role has no privilege on them, so none on their
-- chunks either (TimescaleDB copies grants, not policies, to chunks). The older
-- compression names (timescaledb.compress, add_compression_policy) are used because they are
-- accepted by every 2.x release, including those that renamed them "columnstore".

SELECT create_hypertable('mes.machine_status_history', by_range('ts', INTERVAL '1 day'));
SELECT create_hypertable('mes.downtime_event', by_range('started_at', INTERVAL '7 days'));
SELECT create_hypertable('mes.machine_counter', by_range('ts', INTERVAL '1 day'));
SELECT create_hypertable('mes.machine_telemetry', by_range('ts', INTERVAL '1 day'));

ALTER TABLE mes.machine_status_history SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'machine_id', timescaledb.compress_orderby = 'ts DESC');
ALTER TABLE mes.downtime_event SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'machine_id', timescaledb.compress_orderby = 'started_at DESC');
ALTER TABLE mes.machine_counter SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'machine_id, tag', timescaledb.compress_orderby = 'ts DESC');
ALTER TABLE mes.machine_telemetry SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'machine_id, tag', timescaledb.compress_orderby = 'ts DESC');

-- Compress once late data has stopped arriving (an edge outbox holds at most days).
SELECT add_compression_policy('mes.machine_status_history', compress_after => INTERVAL '14 days');
SELECT add_compression_policy('mes.downtime_event', compress_after => INTERVAL '30 days');
SELECT add_compression_policy('mes.machine_counter', compress_after => INTERVAL '14 days');
SELECT add_compression_policy('mes.machine_telemetry', compress_after => INTERVAL '7 days');

SELECT add_retention_policy('mes.machine_status_history', drop_after => INTERVAL '3 years');
SELECT add_retention_policy('mes.downtime_event', drop_after => INTERVAL '5 years');
SELECT add_retention_policy('mes.machine_counter', drop_after => INTERVAL '3 years');
SELECT add_retention_policy('mes.machine_telemetry', drop_after => INTERVAL '90 days');

-- Real-time aggregation (materialized_only = false): recent hours not yet materialized are
-- computed from the hypertable, so the view is complete up to now.
CREATE MATERIALIZED VIEW mes.machine_state_hourly_agg
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
    SELECT time_bucket(INTERVAL '1 hour', ts) AS bucket,
           organization_id, plant_id, machine_id,
           mes.state_summary(ts, state) AS summary
    FROM mes.machine_status_history
    GROUP BY time_bucket(INTERVAL '1 hour', ts), organization_id, plant_id, machine_id
    WITH NO DATA;
REVOKE ALL ON mes.machine_state_hourly_agg FROM PUBLIC;

SELECT add_continuous_aggregate_policy('mes.machine_state_hourly_agg',
    start_offset => INTERVAL '14 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '15 minutes');
