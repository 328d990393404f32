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
-- Volume: state rows are changes, not samples, and stops are a few per machine and hour;
-- counters and telemetry (the bulk) are not announced. A payload stays far below
-- PostgreSQL's 8000-byte limit: the columns picked are ids, timestamps and bounded codes.

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

CREATE TRIGGER notify_stream AFTER INSERT ON mes.machine_status_history
    FOR EACH ROW EXECUTE FUNCTION mes.notify_stream(
        'state', 'machine_id', 'ts', 'state', 'reason_code');
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
