-- Checkpoints of the maintenance engine (ingest/maintenance/, docs/maintenance.md "Cost"), so
-- that a sweep's cost stays flat with months of history, in a restarted engine and in every
-- replica alike.
--
-- A meter checkpoint is a reading from `since` up to `at` of one machine's meter (runtime
-- hours, or the increase of counter `tag`; '' for runtime), with what holds at `at` (the
-- state, or the counter's value). A condition cursor says that a rule's scan on a machine, in
-- the episode state it names (last episode, tripped or not), has seen every row up to `at`
-- and, for a telemetry rule, that the rows beyond the threshold since `run_start` are the
-- open run. Both are placed only a settling lag behind now and at or before the machine's
-- latest landed row, and `rebuilt_at` says when the chain was last computed from scratch.
-- Both are caches: a missing or stale row only costs a read from scratch, never a wrong
-- count, so replicas that write the same row may overwrite each other (a checkpoint is a
-- function of the rows up to `at`).

CREATE TABLE mes.pm_meter_checkpoints (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id        uuid,
    machine_id      uuid NOT NULL,
    meter_kind      text NOT NULL CHECK (meter_kind IN ('runtime_hours', 'cycles')),
    tag             text NOT NULL DEFAULT '',
    since           timestamptz NOT NULL,
    at              timestamptz NOT NULL CHECK (at >= since),
    value           double precision NOT NULL,
    state           text,
    last_value      double precision,
    rebuilt_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid DEFAULT mes.tenant_user(),
    updated_by      uuid DEFAULT mes.tenant_user(),
    UNIQUE (machine_id, meter_kind, tag, since),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, machine_id) REFERENCES mes.machines (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX pm_meter_checkpoints_organization_id_idx
    ON mes.pm_meter_checkpoints (organization_id, rebuilt_at);
CREATE INDEX pm_meter_checkpoints_plant_id_idx ON mes.pm_meter_checkpoints (plant_id);
CALL mes.protect_tenant_table('mes.pm_meter_checkpoints');

CREATE TABLE mes.pm_condition_cursors (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id        uuid,
    rule_id         uuid NOT NULL,
    machine_id      uuid NOT NULL,
    episode         integer NOT NULL CHECK (episode >= 0),
    tripped         boolean NOT NULL,
    at              timestamptz NOT NULL,
    run_start       timestamptz CHECK (run_start <= at),
    rebuilt_at      timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid DEFAULT mes.tenant_user(),
    updated_by      uuid DEFAULT mes.tenant_user(),
    UNIQUE (rule_id, machine_id),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, rule_id) REFERENCES mes.pm_condition_rules (organization_id, id),
    FOREIGN KEY (organization_id, machine_id) REFERENCES mes.machines (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX pm_condition_cursors_organization_id_idx
    ON mes.pm_condition_cursors (organization_id);
CREATE INDEX pm_condition_cursors_plant_id_idx ON mes.pm_condition_cursors (plant_id);
CALL mes.protect_tenant_table('mes.pm_condition_cursors');

-- A machine's latest landed row in any series after `after`, up to `upto`, if the machine is
-- the tenant's (NULL otherwise, or without one): the horizon of its meters and where its
-- checkpoints and cursors may go. Through the tenant views this read every counter and
-- telemetry row of the machine (their keys lead with the tag, and a security-barrier view
-- gives the planner no index order), so its cost grew with history; here each of the
-- machine's tags is found by a probe of the key (a loose index scan) and its latest row by
-- another.
CREATE FUNCTION mes.machine_latest_row(machine uuid, after timestamptz, upto timestamptz)
    RETURNS timestamptz
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        WITH RECURSIVE counter_tags(tag) AS (
            SELECT min(tag) FROM mes.machine_counter WHERE machine_id = machine
            UNION ALL
            SELECT (SELECT min(c.tag) FROM mes.machine_counter c
                    WHERE c.machine_id = machine AND c.tag > t.tag)
            FROM counter_tags t WHERE t.tag IS NOT NULL
        ), telemetry_tags(tag) AS (
            SELECT min(tag) FROM mes.machine_telemetry WHERE machine_id = machine
            UNION ALL
            SELECT (SELECT min(c.tag) FROM mes.machine_telemetry c
                    WHERE c.machine_id = machine AND c.tag > t.tag)
            FROM telemetry_tags t WHERE t.tag IS NOT NULL
        )
        SELECT greatest(
            (SELECT max(ts) FROM mes.machine_status_history
             WHERE machine_id = machine AND ts > after AND ts <= upto),
            (SELECT max((SELECT max(c.ts) FROM mes.machine_counter c
                         WHERE c.machine_id = machine AND c.tag = t.tag AND c.ts > after
                           AND c.ts <= upto))
             FROM counter_tags t WHERE t.tag IS NOT NULL),
            (SELECT max((SELECT max(c.ts) FROM mes.machine_telemetry c
                         WHERE c.machine_id = machine AND c.tag = t.tag AND c.ts > after
                           AND c.ts <= upto))
             FROM telemetry_tags t WHERE t.tag IS NOT NULL))
        FROM mes.machines m
        WHERE m.id = machine AND mes.tenant_allows(m.organization_id, m.plant_id)
    $$;
REVOKE ALL ON FUNCTION mes.machine_latest_row(uuid, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mes.machine_latest_row(uuid, timestamptz, timestamptz) TO mes_app;
