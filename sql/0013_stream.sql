-- The live stream's source (api/stream.py): every landed state change, stop, stop reason and
-- PM task change is announced on the channel `mes_stream` when its transaction commits.
--
-- Why LISTEN/NOTIFY and not the MQTT topics: a notification is sent only when the row has
-- committed, so the board shows what the database holds (never a message the ingest later
-- dead-letters), and task changes made through the API are announced as well as the
-- maintenance engine's. Why row triggers and not the write functions: every writer (the
-- ingest's definer functions, the API's unit of work, the maintenance engine) is covered by one
-- definition, and the applied write functions stay as they are.
--
-- Tenancy: LISTEN is not access-controlled in PostgreSQL, so the payload is the least the
-- board needs (ids, state, reason code, status; never notes or comments) and it carries the
-- row's organization and plant: the API delivers a notification only to subscribers whose
-- tenant rule (0002) admits that organization and plant. Only our roles may connect to the
-- database (docs/tenancy.md), so no one else can listen.
--
-- Volume: counters and telemetry (the bulk) are not announced. State rows are the hot path of
-- the ingest (changes and heartbeats of every machine): a row trigger there halved the
-- ingest's rows/s in `mes bench ingest` (34k against 73k, and the raw COPY ceiling as much),
-- so the state write function announces once per batch, the latest state of each machine it
-- landed, instead; stops, stop reasons and tasks are few and use the row trigger. A payload
-- stays far below PostgreSQL's 8000-byte limit: ids, timestamps and bounded codes.

CREATE FUNCTION mes.notify_stream() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog
    AS $$
BEGIN
    -- TG_ARGV[0] is the event kind, the rest the columns the payload carries.
    PERFORM pg_notify('mes_stream', jsonb_build_object(
        'kind', TG_ARGV[0],
        'org', NEW.organization_id,
        'plant', NEW.plant_id,
        'row', (SELECT coalesce(jsonb_object_agg(key, value), '{}'::jsonb)
                FROM jsonb_each(to_jsonb(NEW))
                WHERE key = ANY (TG_ARGV[1:TG_NARGS - 1])))::text);
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION mes.notify_stream() FROM PUBLIC;
-- On the TimescaleDB path the hypertables belong to mes_jobs (0005), and TimescaleDB makes a
-- new chunk's triggers as the hypertable's owner, which must be able to run the function.
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mes_jobs') THEN
        GRANT EXECUTE ON FUNCTION mes.notify_stream() TO mes_jobs;
    END IF;
END
$$;

-- sql/0004's state write function, announcing the latest landed state of each machine.
CREATE OR REPLACE FUNCTION mes.write_machine_status() RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    rel regclass := mes._staging_table('machine_status');
    n bigint;
BEGIN
    PERFORM mes._check_staged_tenant(rel);
    WITH landed AS (
        INSERT INTO mes.machine_status_history
            (organization_id, plant_id, machine_id, ts, state, reason_code, created_by)
        SELECT organization_id, plant_id, machine_id, ts, state, reason_code, mes.tenant_user()
        FROM ONLY pg_temp.stage_machine_status
        ON CONFLICT (machine_id, ts) DO NOTHING
        RETURNING organization_id, plant_id, machine_id, ts, state, reason_code
    ), announced AS (
        SELECT pg_notify('mes_stream', jsonb_build_object(
            'kind', 'state', 'org', organization_id, 'plant', plant_id,
            'row', jsonb_build_object('machine_id', machine_id, 'ts', ts, 'state', state,
                                      'reason_code', reason_code))::text)
        FROM (SELECT DISTINCT ON (machine_id) * FROM landed ORDER BY machine_id, ts DESC) latest
    )
    SELECT (SELECT count(*) FROM landed) + 0 * (SELECT count(*) FROM announced) INTO n;
    RETURN n;
END
$$;
CREATE TRIGGER notify_stream AFTER INSERT OR UPDATE ON mes.downtime_event
    FOR EACH ROW EXECUTE FUNCTION mes.notify_stream(
        'downtime', 'machine_id', 'event_id', 'started_at', 'ended_at', 'state', 'reason_code',
        'category');
CREATE TRIGGER notify_stream AFTER INSERT OR UPDATE ON mes.downtime_reasons
    FOR EACH ROW EXECUTE FUNCTION mes.notify_stream(
        'reason', 'machine_id', 'event_id', 'segment_start', 'reason_code');
CREATE TRIGGER notify_stream AFTER INSERT OR UPDATE ON mes.pm_tasks
    FOR EACH ROW EXECUTE FUNCTION mes.notify_stream(
        'task', 'id', 'machine_id', 'status', 'due_at', 'due_meter', 'assignee_id',
        'completed_by_user_id', 'updated_at');
