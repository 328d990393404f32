-- A stop cut short by a data gap or by the agent stopping (issue 7): the edge ends it at the
-- last good read and says so with `truncated`, because its real length is unknown (it is then
-- never a micro-stop). NULL: sent by an agent that predates the flag, or the stop is open.
ALTER TABLE mes.downtime_event ADD COLUMN truncated boolean;

-- The view gains the column at its end (CREATE OR REPLACE VIEW may only append columns).
CREATE OR REPLACE VIEW mes.v_downtime_event WITH (security_barrier) AS
    SELECT organization_id, plant_id, machine_id, event_id, started_at, ended_at, state,
           reason_code, category, micro_stop, updated_at, truncated
    FROM mes.downtime_event WHERE mes.tenant_allows(organization_id, plant_id);

-- The staging table of downtime gains the column. A session that made the old table before
-- this migration keeps it until it ends: the ingest's COPY names its columns and then fails
-- on that connection, which the pool replaces (migrations run with the ingest stopped).
CREATE OR REPLACE FUNCTION mes.open_staging(kind text) RETURNS text
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    tbl text := 'stage_' || kind;
    cols text;
BEGIN
    cols := CASE kind
        WHEN 'machine_status' THEN
            'organization_id uuid, plant_id uuid, machine_id uuid, ts timestamptz, '
            'state text, reason_code text'
        WHEN 'downtime_event' THEN
            'organization_id uuid, plant_id uuid, machine_id uuid, event_id uuid, '
            'started_at timestamptz, ended_at timestamptz, state text, reason_code text, '
            'category text, micro_stop boolean, truncated boolean'
        WHEN 'machine_counter' THEN
            'organization_id uuid, plant_id uuid, machine_id uuid, tag text, ts timestamptz, '
            'value double precision'
        WHEN 'machine_telemetry' THEN
            'organization_id uuid, plant_id uuid, machine_id uuid, tag text, ts timestamptz, '
            'value double precision'
    END;
    IF cols IS NULL THEN
        RAISE EXCEPTION 'unknown staging kind %', kind USING ERRCODE = '22023';
    END IF;
    IF to_regclass('pg_temp.' || tbl) IS NULL THEN
        EXECUTE format('CREATE TEMPORARY TABLE %I (%s) ON COMMIT DELETE ROWS', tbl, cols);
        EXECUTE format('GRANT INSERT, SELECT ON TABLE pg_temp.%I TO mes_app', tbl);
    ELSE
        PERFORM mes._staging_table(kind);  -- refuses a table of someone else's making
        -- Not TRUNCATE: see sql/0004.
        EXECUTE format('DELETE FROM ONLY pg_temp.%I', tbl);
    END IF;
    RETURN 'pg_temp.' || tbl;
END
$$;

-- As in sql/0004, with `truncated` moved in and updated together with the end.
CREATE OR REPLACE FUNCTION mes.write_downtime_event() RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    rel regclass := mes._staging_table('downtime_event');
    n bigint;
BEGIN
    PERFORM mes._check_staged_tenant(rel);
    INSERT INTO mes.downtime_event AS t
        (organization_id, plant_id, machine_id, event_id, started_at, ended_at, state,
         reason_code, category, micro_stop, truncated, created_by, updated_by)
    SELECT DISTINCT ON (machine_id, started_at, event_id)
           organization_id, plant_id, machine_id, event_id, started_at, ended_at, state,
           reason_code, category, micro_stop, truncated, mes.tenant_user(), mes.tenant_user()
    FROM ONLY pg_temp.stage_downtime_event
    ORDER BY machine_id, started_at, event_id, ended_at IS NULL, ended_at DESC,
             reason_code IS NULL
    ON CONFLICT (machine_id, started_at, event_id) DO UPDATE
        SET ended_at = excluded.ended_at,
            state = excluded.state,
            reason_code = coalesce(excluded.reason_code, t.reason_code),
            category = excluded.category,
            micro_stop = excluded.micro_stop,
            truncated = excluded.truncated,
            updated_at = now(),
            updated_by = excluded.updated_by
        WHERE t.ended_at IS NULL
          AND (excluded.ended_at IS NOT NULL
               OR excluded.reason_code IS DISTINCT FROM t.reason_code
               AND excluded.reason_code IS NOT NULL);
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;
