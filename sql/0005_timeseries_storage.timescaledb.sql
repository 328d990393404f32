-- mes:as-connecting-user
-- TimescaleDB is loaded on this server: hypertables, compression, retention and a continuous
-- aggregate of time in state per machine and hour. Measured on TimescaleDB 2.28 with
-- PostgreSQL 15 (tests/test_timescaledb.py; `.ci/run` runs it when a build is found).
--
-- Runs as the connecting user (it creates a role and revokes on the extension's functions),
-- switching to mes_owner for everything the schema owns.
--
-- The tables carry no RLS and the application role has no privilege on them, so none on their
-- chunks either (TimescaleDB copies grants, not policies, to chunks). The older
-- compression names (timescaledb.compress, add_compression_policy) are used because they are
-- accepted by every 2.x release, including those that renamed them "columnstore".

-- Who the jobs run as. TimescaleDB runs a policy job as the owner of its hypertable or
-- continuous aggregate, and that role must have LOGIN (checked when the policy is added and
-- again each time the job starts). mes_owner stays NOLOGIN: it owns every view and SECURITY
-- DEFINER function. The time-series tables and the continuous aggregate belong instead to
-- mes_jobs, which has LOGIN but no password and owns nothing else; background workers start
-- as a role without authenticating, so nobody needs its credentials, and pg_hba.conf should
-- reject it (docs/tenancy.md). mes_owner is a member, so the views and write functions it owns
-- keep reaching the tables with owner rights.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mes_jobs') THEN
        CREATE ROLE mes_jobs LOGIN NOINHERIT;
    END IF;
END
$$;
ALTER ROLE mes_jobs LOGIN PASSWORD NULL NOINHERIT NOSUPERUSER NOBYPASSRLS NOCREATEDB
    NOCREATEROLE NOREPLICATION;
GRANT mes_jobs TO mes_owner;
GRANT USAGE ON SCHEMA mes TO mes_jobs;
-- Taking ownership needs CREATE on the schema; revoked again at the end of this file.
GRANT CREATE ON SCHEMA mes TO mes_jobs;

-- TimescaleDB grants EXECUTE on its functions to PUBLIC. Most check ownership of the table
-- they act on, but add_job does not: the application role could schedule a job of its own,
-- running as itself in the background. Nothing but the owner adds, changes or runs jobs.
REVOKE EXECUTE ON FUNCTION add_job, alter_job, delete_job FROM PUBLIC;
REVOKE EXECUTE ON PROCEDURE run_job FROM PUBLIC;
GRANT EXECUTE ON FUNCTION add_job, alter_job, delete_job TO mes_owner;
GRANT EXECUTE ON PROCEDURE run_job TO mes_owner;

-- TimescaleDB's own statistics in _timescaledb_internal (job runs, chunk sizes per
-- hypertable) are readable by PUBLIC; the schema also holds every chunk, and the application
-- role is to have no privilege at all in it.
DO $$
DECLARE
    rel regclass;
BEGIN
    FOR rel IN
        SELECT c.oid FROM pg_class c, aclexplode(c.relacl) a
        WHERE c.relnamespace = '_timescaledb_internal'::regnamespace AND a.grantee = 0
    LOOP
        EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', rel);
    END LOOP;
END
$$;

SET LOCAL ROLE mes_owner;

ALTER TABLE mes.machine_status_history OWNER TO mes_jobs;
ALTER TABLE mes.downtime_event OWNER TO mes_jobs;
ALTER TABLE mes.machine_counter OWNER TO mes_jobs;
ALTER TABLE mes.machine_telemetry OWNER TO mes_jobs;

SELECT create_hypertable('mes.machine_status_history', by_range('ts', INTERVAL '1 day'));
SELECT create_hypertable('mes.downtime_event', by_range('started_at', INTERVAL '7 days'));
SELECT create_hypertable('mes.machine_counter', by_range('ts', INTERVAL '1 day'));
SELECT create_hypertable('mes.machine_telemetry', by_range('ts', INTERVAL '1 day'));

-- Segment by machine (and tag), the filter of every read; event_id goes last in the order so
-- that the primary key (machine_id, started_at, event_id) is covered by segment and order.
ALTER TABLE mes.machine_status_history SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'machine_id', timescaledb.compress_orderby = 'ts DESC');
ALTER TABLE mes.downtime_event SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'machine_id',
    timescaledb.compress_orderby = 'started_at DESC, event_id');
ALTER TABLE mes.machine_counter SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'machine_id, tag', timescaledb.compress_orderby = 'ts DESC');
ALTER TABLE mes.machine_telemetry SET (timescaledb.compress,
    timescaledb.compress_segmentby = 'machine_id, tag', timescaledb.compress_orderby = 'ts DESC');

-- Compress once late data has stopped arriving (an edge outbox holds at most days). Rows that
-- still arrive later land in the compressed chunk all the same (the write functions work
-- unchanged; docs/tenancy.md).
SELECT add_compression_policy('mes.machine_status_history', compress_after => INTERVAL '14 days');
SELECT add_compression_policy('mes.downtime_event', compress_after => INTERVAL '30 days');
SELECT add_compression_policy('mes.machine_counter', compress_after => INTERVAL '14 days');
SELECT add_compression_policy('mes.machine_telemetry', compress_after => INTERVAL '7 days');

SELECT add_retention_policy('mes.machine_status_history', drop_after => INTERVAL '3 years');
SELECT add_retention_policy('mes.downtime_event', drop_after => INTERVAL '5 years');
SELECT add_retention_policy('mes.machine_counter', drop_after => INTERVAL '3 years');
SELECT add_retention_policy('mes.machine_telemetry', drop_after => INTERVAL '90 days');

-- Real-time aggregation (materialized_only = false): recent hours not yet materialized are
-- computed from the hypertable, so the view is complete up to now. Made by mes_jobs, so that
-- its refresh job runs as a role that may log in.
SET LOCAL ROLE mes_jobs;
CREATE MATERIALIZED VIEW mes.machine_state_hourly_agg
    WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS
    SELECT time_bucket(INTERVAL '1 hour', ts) AS bucket,
           organization_id, plant_id, machine_id,
           mes.state_summary(ts, state) AS summary
    FROM mes.machine_status_history
    GROUP BY time_bucket(INTERVAL '1 hour', ts), organization_id, plant_id, machine_id
    WITH NO DATA;
REVOKE ALL ON mes.machine_state_hourly_agg FROM PUBLIC;

-- The refresh window reaches well past compress_after of machine_status_history (14 days):
-- a late row is re-materialised while its chunk is still uncompressed and, for a while, after
-- (the refresh reads compressed chunks too). A window ending at compress_after would leave
-- rows landing just before compression never materialised, and the real-time part of the
-- view does not cover them (it only adds hours after the materialised ones).
SELECT add_continuous_aggregate_policy('mes.machine_state_hourly_agg',
    start_offset => INTERVAL '21 days', end_offset => INTERVAL '1 hour',
    schedule_interval => INTERVAL '15 minutes');

RESET ROLE;
REVOKE CREATE ON SCHEMA mes FROM mes_jobs;
