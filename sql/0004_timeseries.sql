-- Time series, dead letters and identity lookups.
--
-- The time-series tables are NOT protected by RLS and the application role has NO privilege on
-- them (DESIGN.md explains why: TimescaleDB chunks copy grants but not policies, and refuse
-- compression and continuous aggregates on tables with RLS). The application reads them through
-- the security_barrier views below and writes them only through the SECURITY DEFINER functions
-- below, which check every row against the tenant context. The same tables, views and functions
-- serve the plain-PostgreSQL path; 0005 makes them hypertables when TimescaleDB is present.
-- Unique keys include the time column (a hypertable requirement) and are the natural keys of
-- the wire format, so that a replayed message writes nothing twice.

CREATE TABLE mes.machine_status_history (
    organization_id uuid NOT NULL,
    plant_id        uuid,
    machine_id      uuid NOT NULL REFERENCES mes.machines (id),
    ts              timestamptz NOT NULL,
    state           text NOT NULL CHECK (state IN ('running', 'idle', 'starved', 'blocked',
                        'setup', 'planned_stop', 'fault', 'offline')),
    reason_code     text,
    created_by      uuid REFERENCES mes.users (id),
    updated_by      uuid REFERENCES mes.users (id),
    PRIMARY KEY (machine_id, ts)
);
CREATE INDEX machine_status_history_organization_id_idx
    ON mes.machine_status_history (organization_id, ts DESC);
CREATE INDEX machine_status_history_plant_id_idx ON mes.machine_status_history (plant_id, ts DESC);

-- One row per stop. The edge sends the event when it starts (ended_at NULL) and again, same
-- event_id, when it ends; the write function upserts. An end that arrives before its start is
-- kept (the start then changes nothing).
CREATE TABLE mes.downtime_event (
    organization_id uuid NOT NULL,
    plant_id        uuid,
    machine_id      uuid NOT NULL REFERENCES mes.machines (id),
    event_id        uuid NOT NULL,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz,
    state           text NOT NULL CHECK (state IN ('idle', 'starved', 'blocked', 'setup',
                        'planned_stop', 'fault')),
    reason_code     text,
    category        text NOT NULL CHECK (category IN ('planned', 'unplanned')),
    micro_stop      boolean,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid REFERENCES mes.users (id),
    updated_by      uuid REFERENCES mes.users (id),
    CHECK (ended_at IS NULL OR ended_at >= started_at),
    PRIMARY KEY (machine_id, started_at, event_id)
);
CREATE INDEX downtime_event_organization_id_idx ON mes.downtime_event (organization_id, started_at DESC);
CREATE INDEX downtime_event_plant_id_idx ON mes.downtime_event (plant_id, started_at DESC);

CREATE TABLE mes.machine_counter (
    organization_id uuid NOT NULL,
    plant_id        uuid,
    machine_id      uuid NOT NULL REFERENCES mes.machines (id),
    tag             text NOT NULL,
    ts              timestamptz NOT NULL,
    value           double precision NOT NULL,
    created_by      uuid REFERENCES mes.users (id),
    updated_by      uuid REFERENCES mes.users (id),
    PRIMARY KEY (machine_id, tag, ts)
);
CREATE INDEX machine_counter_organization_id_idx ON mes.machine_counter (organization_id, ts DESC);
CREATE INDEX machine_counter_plant_id_idx ON mes.machine_counter (plant_id, ts DESC);

CREATE TABLE mes.machine_telemetry (
    organization_id uuid NOT NULL,
    plant_id        uuid,
    machine_id      uuid NOT NULL REFERENCES mes.machines (id),
    tag             text NOT NULL,
    ts              timestamptz NOT NULL,
    value           double precision NOT NULL,
    created_by      uuid REFERENCES mes.users (id),
    updated_by      uuid REFERENCES mes.users (id),
    PRIMARY KEY (machine_id, tag, ts)
);
CREATE INDEX machine_telemetry_organization_id_idx
    ON mes.machine_telemetry (organization_id, ts DESC);
CREATE INDEX machine_telemetry_plant_id_idx ON mes.machine_telemetry (plant_id, ts DESC);

REVOKE ALL ON mes.machine_status_history, mes.downtime_event, mes.machine_counter,
    mes.machine_telemetry FROM PUBLIC;

-- Reading: one security_barrier view per table (owned by the owner, so it reads the table with
-- the owner's rights), filtered by the tenant rule; the barrier keeps a caller's leaky function
-- from seeing rows before the filter.
CREATE VIEW mes.v_machine_status_history WITH (security_barrier) AS
    SELECT organization_id, plant_id, machine_id, ts, state, reason_code
    FROM mes.machine_status_history WHERE mes.tenant_allows(organization_id, plant_id);
CREATE VIEW mes.v_downtime_event WITH (security_barrier) AS
    SELECT organization_id, plant_id, machine_id, event_id, started_at, ended_at, state,
           reason_code, category, micro_stop, updated_at
    FROM mes.downtime_event WHERE mes.tenant_allows(organization_id, plant_id);
CREATE VIEW mes.v_machine_counter WITH (security_barrier) AS
    SELECT organization_id, plant_id, machine_id, tag, ts, value
    FROM mes.machine_counter WHERE mes.tenant_allows(organization_id, plant_id);
CREATE VIEW mes.v_machine_telemetry WITH (security_barrier) AS
    SELECT organization_id, plant_id, machine_id, tag, ts, value
    FROM mes.machine_telemetry WHERE mes.tenant_allows(organization_id, plant_id);
REVOKE ALL ON mes.v_machine_status_history, mes.v_downtime_event, mes.v_machine_counter,
    mes.v_machine_telemetry FROM PUBLIC;
GRANT SELECT ON mes.v_machine_status_history, mes.v_downtime_event, mes.v_machine_counter,
    mes.v_machine_telemetry TO mes_app;

-- Writing, step 1: mes.open_staging(kind) makes sure the session has the kind's staging table
-- in its temporary schema, owned by the owner, and lets the application role COPY into it.
-- Two variations on DESIGN.md, where the application creates an ON COMMIT DROP table in each
-- transaction: the owner owns it, so that the caller cannot attach triggers, rules,
-- inheritance children or odd column types that would run its own code inside the write
-- function with the owner's rights; and it is ON COMMIT DELETE ROWS, made once per pooled
-- connection, because creating and dropping it in every transaction cost about a tenth of the
-- writer's time (measured with py-spy on `mes bench ingest`). Rows never outlive a
-- transaction either way.
CREATE FUNCTION mes.open_staging(kind text) RETURNS text
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
            'category text, micro_stop boolean'
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
        -- Empty at the start of every batch, also for a second batch in one transaction. Not
        -- TRUNCATE: on a table made in an earlier transaction that allocates a new file each
        -- time, which cost the ingest a quarter of its throughput.
        EXECUTE format('DELETE FROM ONLY pg_temp.%I', tbl);
    END IF;
    RETURN 'pg_temp.' || tbl;
END
$$;

-- The staging table of a kind, checked: ours, a plain table. Internal to the write functions.
CREATE FUNCTION mes._staging_table(kind text) RETURNS regclass
    LANGUAGE plpgsql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    rel regclass := to_regclass('pg_temp.stage_' || kind);
BEGIN
    IF rel IS NULL THEN
        RAISE EXCEPTION 'no staging table for %: call mes.open_staging(%) in this transaction',
            kind, quote_literal(kind) USING ERRCODE = '55000';
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_class
                   WHERE oid = rel AND relkind = 'r' AND relowner = 'mes_owner'::regrole) THEN
        RAISE EXCEPTION 'staging table % was not made by mes.open_staging', rel
            USING ERRCODE = '42501';
    END IF;
    RETURN rel;
END
$$;

-- Every staged row must belong to the context's tenant, and name a machine of that tenant with
-- the same plant. Runs as the owner, on whom FORCE RLS puts the same context on mes.machines.
-- One offending row refuses the whole call.
CREATE FUNCTION mes._check_staged_tenant(rel regclass) RETURNS void
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    bad bigint;
BEGIN
    EXECUTE format(
        'SELECT count(*) FROM ONLY %s s LEFT JOIN mes.machines m ON m.id = s.machine_id '
        'AND m.organization_id = s.organization_id '
        'AND m.plant_id IS NOT DISTINCT FROM s.plant_id '
        'WHERE m.id IS NULL OR NOT coalesce(mes.tenant_allows(s.organization_id, s.plant_id), false)',
        rel) INTO bad;
    IF bad > 0 THEN
        RAISE EXCEPTION '% staged row(s) lie outside the tenant context (organization %, plant %)',
            bad, coalesce(mes.tenant_org()::text, 'unset'), coalesce(mes.tenant_plant()::text, 'any')
            USING ERRCODE = '42501';
    END IF;
END
$$;

-- Writing, step 2: move the staged rows in with one INSERT ... SELECT. Each returns the number
-- of rows it wrote (duplicates of rows already stored count 0).
CREATE FUNCTION mes.write_machine_status() RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    rel regclass := mes._staging_table('machine_status');
    n bigint;
BEGIN
    PERFORM mes._check_staged_tenant(rel);
    INSERT INTO mes.machine_status_history
        (organization_id, plant_id, machine_id, ts, state, reason_code, created_by)
    SELECT organization_id, plant_id, machine_id, ts, state, reason_code, mes.tenant_user()
    FROM ONLY pg_temp.stage_machine_status
    ON CONFLICT (machine_id, ts) DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

CREATE FUNCTION mes.write_machine_counter() RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    rel regclass := mes._staging_table('machine_counter');
    n bigint;
BEGIN
    PERFORM mes._check_staged_tenant(rel);
    INSERT INTO mes.machine_counter
        (organization_id, plant_id, machine_id, tag, ts, value, created_by)
    SELECT organization_id, plant_id, machine_id, tag, ts, value, mes.tenant_user()
    FROM ONLY pg_temp.stage_machine_counter
    ON CONFLICT (machine_id, tag, ts) DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

CREATE FUNCTION mes.write_machine_telemetry() RETURNS bigint
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
DECLARE
    rel regclass := mes._staging_table('machine_telemetry');
    n bigint;
BEGIN
    PERFORM mes._check_staged_tenant(rel);
    INSERT INTO mes.machine_telemetry
        (organization_id, plant_id, machine_id, tag, ts, value, created_by)
    SELECT organization_id, plant_id, machine_id, tag, ts, value, mes.tenant_user()
    FROM ONLY pg_temp.stage_machine_telemetry
    ON CONFLICT (machine_id, tag, ts) DO NOTHING;
    GET DIAGNOSTICS n = ROW_COUNT;
    RETURN n;
END
$$;

-- Downtime upserts by event: within a batch the end record wins over the start; an open event
-- takes its end or a reason code that arrived after the start (the edge re-sends the start
-- with it); a stored event that already has its end is never changed again (replays and late
-- starts change nothing).
CREATE FUNCTION mes.write_downtime_event() RETURNS bigint
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
         reason_code, category, micro_stop, created_by, updated_by)
    SELECT DISTINCT ON (machine_id, started_at, event_id)
           organization_id, plant_id, machine_id, event_id, started_at, ended_at, state,
           reason_code, category, micro_stop, mes.tenant_user(), mes.tenant_user()
    FROM ONLY pg_temp.stage_downtime_event
    ORDER BY machine_id, started_at, event_id, ended_at IS NULL, ended_at DESC,
             reason_code IS NULL
    ON CONFLICT (machine_id, started_at, event_id) DO UPDATE
        SET ended_at = excluded.ended_at,
            state = excluded.state,
            reason_code = coalesce(excluded.reason_code, t.reason_code),
            category = excluded.category,
            micro_stop = excluded.micro_stop,
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

REVOKE ALL ON FUNCTION mes.open_staging(text), mes._staging_table(text),
    mes._check_staged_tenant(regclass), mes.write_machine_status(), mes.write_machine_counter(),
    mes.write_machine_telemetry(), mes.write_downtime_event() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mes.open_staging(text), mes.write_machine_status(),
    mes.write_machine_counter(), mes.write_machine_telemetry(), mes.write_downtime_event()
    TO mes_app;

-- Identity lookup before any tenant is known: a gateway code taken from a topic. Returns just
-- the identity the ingest needs to check the topic's organization and plant.
CREATE FUNCTION mes.lookup_gateway(gateway_code text)
    RETURNS TABLE (gateway_id uuid, organization_id uuid, plant_id uuid,
                   organization_code text, plant_code text, is_active boolean)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT g.id, g.organization_id, g.plant_id, o.code, p.code, g.is_active
        FROM mes.gateways g
        JOIN mes.organizations o ON o.id = g.organization_id
        JOIN mes.plants p ON p.id = g.plant_id
        WHERE g.code = gateway_code
    $$;
REVOKE ALL ON FUNCTION mes.lookup_gateway(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mes.lookup_gateway(text) TO mes_app;

-- Messages that could not be used: what arrived, why, when. Not a tenant table (a message may
-- name no known tenant): the application role may only add to it; operators read and replay
-- with the owner's connection (`mes ingest dead-letters`).
CREATE TABLE mes.dead_letters (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at   timestamptz NOT NULL DEFAULT now(),
    topic         text NOT NULL,
    gateway_code  text,
    reason        text NOT NULL,
    detail        text NOT NULL DEFAULT '',
    payload       bytea NOT NULL,
    payload_size  integer NOT NULL,
    replayed_at   timestamptz
);
CREATE INDEX dead_letters_reason_idx ON mes.dead_letters (reason, received_at);
REVOKE ALL ON mes.dead_letters FROM PUBLIC;
GRANT INSERT ON mes.dead_letters TO mes_app;

-- Time in each state per machine and hour, as a composite aggregate that a TimescaleDB
-- continuous aggregate can store and that the plain path computes on the fly (0005).
-- Order-independent (it sorts in the final function) so that it needs no ORDER BY inside the
-- aggregate call. `seconds` covers the spans between samples inside the bucket; the span
-- before the first and after the last sample belong to the neighbouring buckets and are added
-- by the tenant view (0006).
CREATE TYPE mes.state_sample AS (ts timestamptz, state text);
CREATE TYPE mes.state_summary AS (
    seconds     jsonb,
    first_ts    timestamptz,
    first_state text,
    last_ts     timestamptz,
    last_state  text
);

CREATE FUNCTION mes._state_summary_final(samples mes.state_sample[]) RETURNS mes.state_summary
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$
        WITH s AS (
            SELECT ts, state, lead(ts) OVER (ORDER BY ts) AS next_ts
            FROM unnest(samples)
        )
        SELECT ROW(
            coalesce((SELECT jsonb_object_agg(state, secs) FROM (
                SELECT state, sum(extract(epoch FROM next_ts - ts)) AS secs
                FROM s WHERE next_ts IS NOT NULL GROUP BY state) d), '{}'::jsonb),
            (SELECT ts FROM s ORDER BY ts LIMIT 1),
            (SELECT state FROM s ORDER BY ts LIMIT 1),
            (SELECT ts FROM s ORDER BY ts DESC LIMIT 1),
            (SELECT state FROM s ORDER BY ts DESC LIMIT 1)
        )::mes.state_summary
    $$;

CREATE FUNCTION mes._state_summary_step(acc mes.state_sample[], ts timestamptz, state text)
    RETURNS mes.state_sample[]
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $$ SELECT acc || ROW(ts, state)::mes.state_sample $$;

CREATE AGGREGATE mes.state_summary(timestamptz, text) (
    SFUNC = mes._state_summary_step,
    STYPE = mes.state_sample[],
    FINALFUNC = mes._state_summary_final,
    INITCOND = '{}'
);
