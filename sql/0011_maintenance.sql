-- The maintenance engine (ingest/maintenance/, docs/maintenance.md): schedules that trigger on
-- the calendar (every N days / weeks / months or cron, in the plant's zone), on runtime hours
-- from the state history, on a counter's increase, or on both (whichever first); condition
-- rules on telemetry and states; corrective rules on downtime events; the tasks they raise,
-- their lifecycle and history; the webhooks the history is delivered to.
--
-- Exactly once: a task is unique by its source and occurrence (schedule or rule, machine,
-- occurrence; or downtime event), and the engine decides and inserts under a transaction-level
-- advisory lock on (source, machine) with ON CONFLICT DO NOTHING. Every new table is a tenant
-- table (organization, plant, audit users, RLS through mes.protect_tenant_table).

-- Schedules ---------------------------------------------------------------------------------

-- A schedule targets one machine, or every machine of a kind in its plant.
ALTER TABLE mes.pm_schedules ALTER COLUMN machine_id DROP NOT NULL;
ALTER TABLE mes.pm_schedules
    ADD COLUMN machine_kind text CHECK (length(machine_kind) BETWEEN 1 AND 64),
    ADD CONSTRAINT pm_schedules_target_check CHECK (
        (machine_id IS NULL) <> (machine_kind IS NULL)
        AND (machine_kind IS NULL OR plant_id IS NOT NULL));

-- Triggers. `trigger_kind` says which parts a schedule has: the calendar part (`calendar_every`
-- `calendar_unit`, or `cron`; `lead_time` raises early) and the meter part (`interval_value`
-- hours or counts of `meter_kind`, which is the trigger kind itself unless it is `combined`;
-- `lead_value` in the same unit). 0003's calendar schedules counted `interval_value` days:
-- they are carried over to `calendar_every` days.
ALTER TABLE mes.pm_schedules DROP CONSTRAINT pm_schedules_trigger_kind_check;
ALTER TABLE mes.pm_schedules DROP CONSTRAINT pm_schedules_check;
ALTER TABLE mes.pm_schedules DROP CONSTRAINT pm_schedules_check1;
ALTER TABLE mes.pm_schedules ALTER COLUMN interval_value DROP NOT NULL;
ALTER TABLE mes.pm_schedules
    ADD COLUMN calendar_every integer CHECK (calendar_every > 0),
    ADD COLUMN calendar_unit text CHECK (calendar_unit IN ('days', 'weeks', 'months')),
    ADD COLUMN cron text CHECK (length(cron) BETWEEN 9 AND 200),
    ADD COLUMN meter_kind text CHECK (meter_kind IN ('runtime_hours', 'cycles')),
    ADD COLUMN lead_time interval NOT NULL DEFAULT '0' CHECK (lead_time >= interval '0'),
    -- How late a task may be done and still count on time, in % of its interval.
    ADD COLUMN tolerance_pct numeric(5, 2) NOT NULL DEFAULT 0
        CHECK (tolerance_pct BETWEEN 0 AND 100),
    -- After the engine was down across several due times: 'one' overdue task, or 'all'.
    ADD COLUMN catch_up text NOT NULL DEFAULT 'one' CHECK (catch_up IN ('one', 'all')),
    ADD COLUMN checklist jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(checklist) = 'array'),
    ADD COLUMN priority text NOT NULL DEFAULT 'normal'
        CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    ADD COLUMN estimated_minutes integer CHECK (estimated_minutes > 0),
    ADD COLUMN default_assignee_id uuid,
    ADD FOREIGN KEY (organization_id, default_assignee_id)
        REFERENCES mes.users (organization_id, id);
UPDATE mes.pm_schedules
    SET calendar_every = greatest(1, ceil(interval_value))::integer, calendar_unit = 'days',
        lead_time = lead_value * interval '1 day', interval_value = NULL, lead_value = 0
    WHERE trigger_kind = 'calendar';
ALTER TABLE mes.pm_schedules
    ADD CONSTRAINT pm_schedules_trigger_kind_check
        CHECK (trigger_kind IN ('calendar', 'runtime_hours', 'cycles', 'combined')),
    ADD CONSTRAINT pm_schedules_calendar_check CHECK (
        (trigger_kind IN ('calendar', 'combined')) = (calendar_every IS NOT NULL OR cron IS NOT NULL)
        AND NOT (calendar_every IS NOT NULL AND cron IS NOT NULL)
        AND (calendar_every IS NULL) = (calendar_unit IS NULL)),
    ADD CONSTRAINT pm_schedules_meter_check CHECK (
        (trigger_kind <> 'calendar') = (interval_value IS NOT NULL)
        AND (trigger_kind = 'combined') = (meter_kind IS NOT NULL)
        AND (coalesce(meter_kind, trigger_kind) = 'cycles') = (counter_tag IS NOT NULL)
        AND (interval_value IS NULL OR lead_value < interval_value));
CREATE INDEX pm_schedules_machine_kind_idx ON mes.pm_schedules (plant_id, machine_kind)
    WHERE machine_kind IS NOT NULL;

-- Condition rules --------------------------------------------------------------------------

-- A rule on a machine's telemetry ("spindle_temp > 60 for 300 s", cleared below
-- `clear_threshold`: the hysteresis) or on its states ("5 or more `fault` rows with reason F12
-- within 8 hours", cleared when the window holds fewer than `clear_count`). Each episode
-- (trip to clear) raises one inspection task; rows before `active_from` are not looked at.
CREATE TABLE mes.pm_condition_rules (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id     uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id            uuid,
    machine_id          uuid,
    machine_kind        text CHECK (length(machine_kind) BETWEEN 1 AND 64),
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    instructions        text NOT NULL DEFAULT '',
    rule_kind           text NOT NULL CHECK (rule_kind IN ('telemetry', 'state_count')),
    tag                 text,
    comparison          text CHECK (comparison IN ('above', 'below')),
    threshold           double precision,
    clear_threshold     double precision,
    for_seconds         double precision NOT NULL DEFAULT 0 CHECK (for_seconds >= 0),
    state               text CHECK (state IN ('running', 'idle', 'starved', 'blocked', 'setup',
                            'planned_stop', 'fault', 'offline')),
    reason_code         text,
    count_threshold     integer CHECK (count_threshold > 0),
    clear_count         integer CHECK (clear_count > 0),
    window_seconds      double precision CHECK (window_seconds > 0),
    active_from         timestamptz NOT NULL DEFAULT now(),
    checklist           jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(checklist) = 'array'),
    priority            text NOT NULL DEFAULT 'high'
                            CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    estimated_minutes   integer CHECK (estimated_minutes > 0),
    default_assignee_id uuid,
    is_active           boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    created_by          uuid DEFAULT mes.tenant_user(),
    updated_by          uuid DEFAULT mes.tenant_user(),
    CHECK ((machine_id IS NULL) <> (machine_kind IS NULL)
           AND (machine_kind IS NULL OR plant_id IS NOT NULL)),
    CHECK (rule_kind <> 'telemetry' OR (tag IS NOT NULL AND comparison IS NOT NULL
           AND threshold IS NOT NULL AND clear_threshold IS NOT NULL
           AND CASE comparison WHEN 'above' THEN clear_threshold <= threshold
                               ELSE clear_threshold >= threshold END)),
    CHECK (rule_kind <> 'state_count' OR (state IS NOT NULL AND count_threshold IS NOT NULL
           AND window_seconds IS NOT NULL
           AND (clear_count IS NULL OR clear_count <= count_threshold))),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, machine_id) REFERENCES mes.machines (organization_id, id),
    FOREIGN KEY (organization_id, default_assignee_id) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX pm_condition_rules_organization_id_idx ON mes.pm_condition_rules (organization_id);
CREATE INDEX pm_condition_rules_plant_id_idx ON mes.pm_condition_rules (plant_id);
CREATE INDEX pm_condition_rules_machine_id_idx ON mes.pm_condition_rules (machine_id);
CALL mes.protect_tenant_table('mes.pm_condition_rules');

-- One row per episode of a rule on a machine: when it tripped, when it cleared (NULL: still
-- on), and the rows that tripped it.
CREATE TABLE mes.pm_condition_episodes (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id        uuid,
    rule_id         uuid NOT NULL,
    machine_id      uuid NOT NULL,
    episode         integer NOT NULL CHECK (episode > 0),
    started_at      timestamptz NOT NULL,
    tripped_at      timestamptz NOT NULL,
    cleared_at      timestamptz,
    evidence        jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(evidence) = 'array'),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid DEFAULT mes.tenant_user(),
    updated_by      uuid DEFAULT mes.tenant_user(),
    CHECK (tripped_at >= started_at AND (cleared_at IS NULL OR cleared_at >= tripped_at)),
    UNIQUE (rule_id, machine_id, episode),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, rule_id) REFERENCES mes.pm_condition_rules (organization_id, id),
    FOREIGN KEY (organization_id, machine_id) REFERENCES mes.machines (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX pm_condition_episodes_organization_id_idx
    ON mes.pm_condition_episodes (organization_id);
CREATE INDEX pm_condition_episodes_plant_id_idx ON mes.pm_condition_episodes (plant_id);
CALL mes.protect_tenant_table('mes.pm_condition_episodes');

-- Corrective rules: a downtime event in one of `states` that lasted (or, still open, has lasted)
-- at least `min_duration_s`, or whose reason is in `reason_codes`, opens a corrective task.
CREATE TABLE mes.pm_corrective_rules (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id     uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id            uuid,
    name                text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    states              text[] NOT NULL DEFAULT ARRAY['fault'] CHECK (cardinality(states) >= 1),
    min_duration_s      double precision CHECK (min_duration_s >= 0),
    reason_codes        text[],
    active_from         timestamptz NOT NULL DEFAULT now(),
    checklist           jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(checklist) = 'array'),
    priority            text NOT NULL DEFAULT 'high'
                            CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    default_assignee_id uuid,
    is_active           boolean NOT NULL DEFAULT true,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    created_by          uuid DEFAULT mes.tenant_user(),
    updated_by          uuid DEFAULT mes.tenant_user(),
    CHECK (min_duration_s IS NOT NULL OR reason_codes IS NOT NULL),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, default_assignee_id) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX pm_corrective_rules_organization_id_idx ON mes.pm_corrective_rules (organization_id);
CREATE INDEX pm_corrective_rules_plant_id_idx ON mes.pm_corrective_rules (plant_id);
CALL mes.protect_tenant_table('mes.pm_corrective_rules');

-- Tasks -------------------------------------------------------------------------------------

-- A task comes from a schedule (occurrence n), a condition rule (episode n) or a downtime
-- event (once per event); kind-targeted schedules and rules raise one per machine, so the
-- machine joins the unique key. Lifecycle: open -> acknowledged -> in_progress -> done or
-- skipped (a reason is required), each step with who and when. Meters (`due_meter`,
-- `meter_at_raise`, `meter_at_completion`) are in the schedule's frame: hours or counts since
-- its baseline (the anchor, or the last completion of a floating schedule).
ALTER TABLE mes.pm_tasks DROP CONSTRAINT pm_tasks_schedule_id_occurrence_key;
ALTER TABLE mes.pm_tasks DROP CONSTRAINT pm_tasks_status_check;
ALTER TABLE mes.pm_tasks ALTER COLUMN schedule_id DROP NOT NULL;
ALTER TABLE mes.pm_tasks
    ADD COLUMN task_kind text NOT NULL DEFAULT 'preventive'
        CHECK (task_kind IN ('preventive', 'condition', 'corrective')),
    ADD COLUMN title text NOT NULL DEFAULT '' CHECK (length(title) <= 200),
    ADD COLUMN condition_rule_id uuid,
    ADD COLUMN corrective_rule_id uuid,
    ADD COLUMN downtime_event_id uuid,
    ADD COLUMN raised_by text CHECK (raised_by IN ('calendar', 'meter', 'condition',
                                                   'downtime')),
    ADD COLUMN meter_at_raise double precision,
    ADD COLUMN overdue_at timestamptz,
    ADD COLUMN overdue_meter double precision,
    ADD COLUMN missed_occurrences integer NOT NULL DEFAULT 0 CHECK (missed_occurrences >= 0),
    ADD COLUMN priority text NOT NULL DEFAULT 'normal'
        CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    ADD COLUMN checklist jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(checklist) = 'array'),
    ADD COLUMN estimated_minutes integer CHECK (estimated_minutes > 0),
    ADD COLUMN evidence jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(evidence) = 'array'),
    ADD COLUMN acknowledged_by_user_id uuid,
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN started_by_user_id uuid,
    ADD COLUMN started_at timestamptz,
    ADD COLUMN skipped_by_user_id uuid,
    ADD COLUMN skipped_at timestamptz,
    ADD COLUMN skip_reason text CHECK (length(skip_reason) BETWEEN 1 AND 1000),
    ADD CONSTRAINT pm_tasks_status_check CHECK (status IN
        ('open', 'acknowledged', 'in_progress', 'done', 'skipped', 'cancelled')),
    ADD CONSTRAINT pm_tasks_source_check CHECK (CASE task_kind
        WHEN 'preventive' THEN schedule_id IS NOT NULL AND condition_rule_id IS NULL
                               AND downtime_event_id IS NULL
        WHEN 'condition' THEN condition_rule_id IS NOT NULL AND schedule_id IS NULL
                              AND downtime_event_id IS NULL
        ELSE downtime_event_id IS NOT NULL AND schedule_id IS NULL
             AND condition_rule_id IS NULL END),
    ADD CONSTRAINT pm_tasks_acknowledged_check
        CHECK ((acknowledged_by_user_id IS NULL) = (acknowledged_at IS NULL)),
    ADD CONSTRAINT pm_tasks_started_check
        CHECK ((started_by_user_id IS NULL) = (started_at IS NULL)),
    ADD CONSTRAINT pm_tasks_skipped_check CHECK ((status = 'skipped')
        = (skipped_at IS NOT NULL AND skipped_by_user_id IS NOT NULL AND skip_reason IS NOT NULL)),
    ADD CONSTRAINT pm_tasks_schedule_occurrence_key UNIQUE (schedule_id, machine_id, occurrence),
    ADD CONSTRAINT pm_tasks_condition_episode_key
        UNIQUE (condition_rule_id, machine_id, occurrence),
    ADD CONSTRAINT pm_tasks_downtime_event_key UNIQUE (downtime_event_id),
    ADD FOREIGN KEY (organization_id, condition_rule_id)
        REFERENCES mes.pm_condition_rules (organization_id, id),
    ADD FOREIGN KEY (organization_id, corrective_rule_id)
        REFERENCES mes.pm_corrective_rules (organization_id, id),
    ADD FOREIGN KEY (organization_id, acknowledged_by_user_id)
        REFERENCES mes.users (organization_id, id),
    ADD FOREIGN KEY (organization_id, started_by_user_id)
        REFERENCES mes.users (organization_id, id),
    ADD FOREIGN KEY (organization_id, skipped_by_user_id)
        REFERENCES mes.users (organization_id, id);
-- The open-task index of 0003 covered open and in_progress; acknowledged is open work too.
DROP INDEX mes.pm_tasks_open_idx;
CREATE INDEX pm_tasks_open_idx ON mes.pm_tasks (status, due_at)
    WHERE status IN ('open', 'acknowledged', 'in_progress');

-- History: one row per raise and per change of status, assignee or checklist, written by a
-- trigger so that no writer (engine, CLI, API) can forget it. It is also the notification
-- outbox: `published_at` is set once MQTT acknowledged the row's message, and webhook
-- deliveries are made from it.
CREATE TABLE mes.pm_task_history (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id        uuid,
    task_id         uuid NOT NULL,
    event           text NOT NULL CHECK (event IN ('raised', 'status', 'updated')),
    status          text NOT NULL,
    actor_id        uuid,
    at              timestamptz NOT NULL DEFAULT clock_timestamp(),
    published_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid DEFAULT mes.tenant_user(),
    updated_by      uuid DEFAULT mes.tenant_user(),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, actor_id) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id),
    UNIQUE (organization_id, id)
);
CREATE INDEX pm_task_history_organization_id_idx ON mes.pm_task_history (organization_id);
CREATE INDEX pm_task_history_plant_id_idx ON mes.pm_task_history (plant_id);
CREATE INDEX pm_task_history_task_id_idx ON mes.pm_task_history (task_id, at);
CREATE INDEX pm_task_history_unpublished_idx ON mes.pm_task_history (at)
    WHERE published_at IS NULL;
-- The application may mark rows published; it never deletes history.
CALL mes.protect_tenant_table('mes.pm_task_history', 'SELECT, INSERT, UPDATE');
ALTER TABLE mes.pm_tasks ADD UNIQUE (organization_id, id);
ALTER TABLE mes.pm_task_history ADD FOREIGN KEY (organization_id, task_id)
    REFERENCES mes.pm_tasks (organization_id, id);

CREATE FUNCTION mes.record_task_history() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO mes.pm_task_history (organization_id, plant_id, task_id, event, status,
                                         actor_id)
        VALUES (NEW.organization_id, NEW.plant_id, NEW.id, 'raised', NEW.status,
                mes.tenant_user());
    ELSIF NEW.status IS DISTINCT FROM OLD.status THEN
        INSERT INTO mes.pm_task_history (organization_id, plant_id, task_id, event, status,
                                         actor_id)
        VALUES (NEW.organization_id, NEW.plant_id, NEW.id, 'status', NEW.status,
                mes.tenant_user());
    ELSIF NEW.assignee_id IS DISTINCT FROM OLD.assignee_id
          OR NEW.checklist IS DISTINCT FROM OLD.checklist
          OR NEW.notes IS DISTINCT FROM OLD.notes THEN
        INSERT INTO mes.pm_task_history (organization_id, plant_id, task_id, event, status,
                                         actor_id)
        VALUES (NEW.organization_id, NEW.plant_id, NEW.id, 'updated', NEW.status,
                mes.tenant_user());
    END IF;
    RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION mes.record_task_history() FROM PUBLIC;
CREATE TRIGGER record_task_history AFTER INSERT OR UPDATE ON mes.pm_tasks
    FOR EACH ROW EXECUTE FUNCTION mes.record_task_history();

-- Webhooks ----------------------------------------------------------------------------------

-- A plant's (or, plant NULL, an organization's) CMMS endpoint. The secret signs each body
-- (HMAC-SHA256, header X-MES-Signature); it must be readable to sign, so it is stored as is:
-- treat database backups accordingly.
CREATE TABLE mes.pm_webhooks (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id        uuid,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    url             text NOT NULL CHECK (url ~ '^https?://'),
    secret          text NOT NULL CHECK (length(secret) >= 16),
    is_active       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid DEFAULT mes.tenant_user(),
    updated_by      uuid DEFAULT mes.tenant_user(),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX pm_webhooks_organization_id_idx ON mes.pm_webhooks (organization_id);
CREATE INDEX pm_webhooks_plant_id_idx ON mes.pm_webhooks (plant_id);
CALL mes.protect_tenant_table('mes.pm_webhooks');

-- The delivery log: one row per (webhook, history row). `delivered` once a receiver answered
-- 2xx; until then retried with backoff (`attempts`, `next_attempt_at`, the last answer).
CREATE TABLE mes.pm_webhook_deliveries (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id         uuid,
    webhook_id       uuid NOT NULL,
    history_id       uuid NOT NULL,
    status           text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts         integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status_code integer,
    last_error       text,
    delivered_at     timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    created_by       uuid DEFAULT mes.tenant_user(),
    updated_by       uuid DEFAULT mes.tenant_user(),
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL)),
    UNIQUE (webhook_id, history_id),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, webhook_id) REFERENCES mes.pm_webhooks (organization_id, id),
    FOREIGN KEY (organization_id, history_id)
        REFERENCES mes.pm_task_history (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX pm_webhook_deliveries_organization_id_idx
    ON mes.pm_webhook_deliveries (organization_id);
CREATE INDEX pm_webhook_deliveries_plant_id_idx ON mes.pm_webhook_deliveries (plant_id);
CREATE INDEX pm_webhook_deliveries_due_idx ON mes.pm_webhook_deliveries (next_attempt_at)
    WHERE status = 'pending';
CALL mes.protect_tenant_table('mes.pm_webhook_deliveries', 'SELECT, INSERT, UPDATE');

-- Identity lookup before any tenant is known: the plants the engine works for, with their
-- organization and time zone (the standalone engine's list of tenant contexts).
CREATE FUNCTION mes.maintenance_plants()
    RETURNS TABLE (organization_id uuid, plant_id uuid, organization_code text,
                   plant_code text, timezone text)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT p.organization_id, p.id, o.code, p.code, p.timezone
        FROM mes.plants p JOIN mes.organizations o ON o.id = p.organization_id
        WHERE p.is_active
        ORDER BY o.code, p.code
    $$;
REVOKE ALL ON FUNCTION mes.maintenance_plants() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mes.maintenance_plants() TO mes_app;
