-- The relational tables: organizations, plants, users, machines, gateways, materials,
-- work orders, quality, shifts, preventive maintenance. Mirrored one-to-one by core/models.
--
-- Every tenant table: organization_id NOT NULL, plant_id NULL (= organization-wide), both
-- indexed, created_by / updated_by -> users. References between tenant tables are composite,
-- (organization_id, x_id) -> x (organization_id, id), so that a row can never point at another
-- organization's machine, user or order, whatever the application sends.

CREATE TABLE mes.organizations (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    code        text NOT NULL UNIQUE CHECK (code ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    created_by  uuid DEFAULT mes.tenant_user(),
    updated_by  uuid DEFAULT mes.tenant_user()
);

CREATE TABLE mes.plants (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES mes.organizations (id),
    code            text NOT NULL CHECK (code ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    timezone        text NOT NULL DEFAULT 'UTC',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid DEFAULT mes.tenant_user(),
    updated_by      uuid DEFAULT mes.tenant_user(),
    UNIQUE (organization_id, code),
    UNIQUE (organization_id, id)
);
CREATE INDEX plants_organization_id_idx ON mes.plants (organization_id);

-- The columns and constraints every other tenant table shares, spelled out per table below.
CREATE TABLE mes.users (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id        uuid,
    email           text NOT NULL CHECK (email ~ '^[^@[:space:]]+@[^@[:space:]]+$'),
    display_name    text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    role            text NOT NULL DEFAULT 'operator' CHECK (role IN
                        ('admin', 'engineer', 'supervisor', 'technician', 'operator', 'viewer')),
    is_active       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid DEFAULT mes.tenant_user(),
    updated_by      uuid DEFAULT mes.tenant_user(),
    UNIQUE (organization_id, email),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX users_organization_id_idx ON mes.users (organization_id);
CREATE INDEX users_plant_id_idx ON mes.users (plant_id);

ALTER TABLE mes.organizations
    ADD FOREIGN KEY (created_by) REFERENCES mes.users (id),
    ADD FOREIGN KEY (updated_by) REFERENCES mes.users (id);
ALTER TABLE mes.plants
    ADD FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    ADD FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id);

CREATE TABLE mes.machines (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id        uuid,
    code            text NOT NULL CHECK (length(code) BETWEEN 1 AND 64),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    kind            text,
    is_active       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid DEFAULT mes.tenant_user(),
    updated_by      uuid DEFAULT mes.tenant_user(),
    UNIQUE (organization_id, code),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX machines_organization_id_idx ON mes.machines (organization_id);
CREATE INDEX machines_plant_id_idx ON mes.machines (plant_id);

-- A gateway is trusted for exactly one organization and plant: the ingest refuses a topic
-- naming any other (DESIGN.md, "Wire contract"). Codes are unique across organizations
-- because the broker ACL and the topic identify a gateway by its code alone.
CREATE TABLE mes.gateways (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id        uuid,
    code            text NOT NULL UNIQUE CHECK (code ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    is_active       boolean NOT NULL DEFAULT true,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid DEFAULT mes.tenant_user(),
    updated_by      uuid DEFAULT mes.tenant_user(),
    CHECK (plant_id IS NOT NULL),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX gateways_organization_id_idx ON mes.gateways (organization_id);
CREATE INDEX gateways_plant_id_idx ON mes.gateways (plant_id);

CREATE TABLE mes.materials (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id        uuid,
    code            text NOT NULL CHECK (length(code) BETWEEN 1 AND 64),
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    unit            text NOT NULL DEFAULT 'pcs',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid DEFAULT mes.tenant_user(),
    updated_by      uuid DEFAULT mes.tenant_user(),
    UNIQUE (organization_id, code),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX materials_organization_id_idx ON mes.materials (organization_id);
CREATE INDEX materials_plant_id_idx ON mes.materials (plant_id);

CREATE TABLE mes.work_orders (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id        uuid,
    number          text NOT NULL CHECK (length(number) BETWEEN 1 AND 64),
    material_id     uuid,
    quantity        numeric(14, 3) NOT NULL DEFAULT 0 CHECK (quantity >= 0),
    status          text NOT NULL DEFAULT 'planned' CHECK (status IN
                        ('planned', 'released', 'in_progress', 'completed', 'closed', 'cancelled')),
    planned_start   timestamptz,
    planned_end     timestamptz,
    actual_start    timestamptz,
    actual_end      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid DEFAULT mes.tenant_user(),
    updated_by      uuid DEFAULT mes.tenant_user(),
    UNIQUE (organization_id, number),
    UNIQUE (organization_id, id),
    CHECK (planned_end IS NULL OR planned_start IS NULL OR planned_end >= planned_start),
    CHECK (actual_end IS NULL OR actual_start IS NULL OR actual_end >= actual_start),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, material_id) REFERENCES mes.materials (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX work_orders_organization_id_idx ON mes.work_orders (organization_id);
CREATE INDEX work_orders_plant_id_idx ON mes.work_orders (plant_id);
CREATE INDEX work_orders_material_id_idx ON mes.work_orders (material_id);

-- Which machines a work order ran on, and when.
CREATE TABLE mes.work_order_machines (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id        uuid,
    work_order_id   uuid NOT NULL,
    machine_id      uuid NOT NULL,
    assigned_at     timestamptz NOT NULL DEFAULT now(),
    released_at     timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid DEFAULT mes.tenant_user(),
    updated_by      uuid DEFAULT mes.tenant_user(),
    CHECK (released_at IS NULL OR released_at >= assigned_at),
    UNIQUE (work_order_id, machine_id, assigned_at),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, work_order_id) REFERENCES mes.work_orders (organization_id, id),
    FOREIGN KEY (organization_id, machine_id) REFERENCES mes.machines (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX work_order_machines_organization_id_idx ON mes.work_order_machines (organization_id);
CREATE INDEX work_order_machines_plant_id_idx ON mes.work_order_machines (plant_id);
CREATE INDEX work_order_machines_machine_id_idx ON mes.work_order_machines (machine_id);

-- Non-conformance reports. Lifecycle: open -> investigating -> contained -> resolved -> closed
-- (or cancelled); resolved and closed reports carry who resolved them and when.
CREATE TABLE mes.ncr (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id     uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id            uuid,
    number              text NOT NULL CHECK (length(number) BETWEEN 1 AND 64),
    work_order_id       uuid,
    material_id         uuid,
    title               text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
    description         text NOT NULL DEFAULT '',
    severity            text NOT NULL DEFAULT 'minor' CHECK (severity IN ('minor', 'major', 'critical')),
    status              text NOT NULL DEFAULT 'open' CHECK (status IN
                            ('open', 'investigating', 'contained', 'resolved', 'closed', 'cancelled')),
    assignee_id         uuid,
    resolved_by_user_id uuid,
    resolved_at         timestamptz,
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    created_by          uuid DEFAULT mes.tenant_user(),
    updated_by          uuid DEFAULT mes.tenant_user(),
    UNIQUE (organization_id, number),
    CHECK ((status IN ('resolved', 'closed'))
           = (resolved_by_user_id IS NOT NULL AND resolved_at IS NOT NULL)),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, work_order_id) REFERENCES mes.work_orders (organization_id, id),
    FOREIGN KEY (organization_id, material_id) REFERENCES mes.materials (organization_id, id),
    FOREIGN KEY (organization_id, assignee_id) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, resolved_by_user_id) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX ncr_organization_id_idx ON mes.ncr (organization_id);
CREATE INDEX ncr_plant_id_idx ON mes.ncr (plant_id);
CREATE INDEX ncr_work_order_id_idx ON mes.ncr (work_order_id);

CREATE TABLE mes.inspection_logs (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id        uuid,
    work_order_id   uuid,
    material_id     uuid,
    inspector_id    uuid,
    inspected_at    timestamptz NOT NULL DEFAULT now(),
    characteristic  text NOT NULL DEFAULT '',
    result          text NOT NULL CHECK (result IN ('pass', 'fail', 'conditional')),
    measured_value  double precision,
    notes           text NOT NULL DEFAULT '',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid DEFAULT mes.tenant_user(),
    updated_by      uuid DEFAULT mes.tenant_user(),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, work_order_id) REFERENCES mes.work_orders (organization_id, id),
    FOREIGN KEY (organization_id, material_id) REFERENCES mes.materials (organization_id, id),
    FOREIGN KEY (organization_id, inspector_id) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX inspection_logs_organization_id_idx ON mes.inspection_logs (organization_id);
CREATE INDEX inspection_logs_plant_id_idx ON mes.inspection_logs (plant_id);
CREATE INDEX inspection_logs_work_order_id_idx ON mes.inspection_logs (work_order_id);

CREATE TABLE mes.shifts (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id        uuid,
    name            text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    starts_at       timestamptz NOT NULL,
    ends_at         timestamptz NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid DEFAULT mes.tenant_user(),
    updated_by      uuid DEFAULT mes.tenant_user(),
    CHECK (ends_at > starts_at),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX shifts_organization_id_idx ON mes.shifts (organization_id);
CREATE INDEX shifts_plant_id_idx ON mes.shifts (plant_id);
CREATE INDEX shifts_starts_at_idx ON mes.shifts (starts_at);

CREATE TABLE mes.shift_handovers (
    id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id         uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id                uuid,
    shift_id                uuid NOT NULL,
    logged_by_user_id       uuid NOT NULL,
    logged_at               timestamptz NOT NULL DEFAULT now(),
    notes                   text NOT NULL DEFAULT '',
    acknowledged_by_user_id uuid,
    acknowledged_at         timestamptz,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now(),
    created_by              uuid DEFAULT mes.tenant_user(),
    updated_by              uuid DEFAULT mes.tenant_user(),
    CHECK ((acknowledged_by_user_id IS NULL) = (acknowledged_at IS NULL)),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, shift_id) REFERENCES mes.shifts (organization_id, id),
    FOREIGN KEY (organization_id, logged_by_user_id) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, acknowledged_by_user_id)
        REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX shift_handovers_organization_id_idx ON mes.shift_handovers (organization_id);
CREATE INDEX shift_handovers_plant_id_idx ON mes.shift_handovers (plant_id);
CREATE INDEX shift_handovers_shift_id_idx ON mes.shift_handovers (shift_id);

-- Preventive maintenance. A schedule triggers on the calendar, on runtime hours or on cycles
-- (a counter tag of the machine); `interval_value` is in days, hours or cycles accordingly and
-- `lead_value` (same unit) is how early the task is raised. Fixed schedules fall due on the
-- anchor's grid; floating ones count from the last completion.
CREATE TABLE mes.pm_schedules (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id  uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id         uuid,
    machine_id       uuid NOT NULL,
    name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    instructions     text NOT NULL DEFAULT '',
    trigger_kind     text NOT NULL CHECK (trigger_kind IN ('calendar', 'runtime_hours', 'cycles')),
    interval_value   numeric(14, 3) NOT NULL CHECK (interval_value > 0),
    lead_value       numeric(14, 3) NOT NULL DEFAULT 0 CHECK (lead_value >= 0),
    schedule_mode    text NOT NULL DEFAULT 'fixed' CHECK (schedule_mode IN ('fixed', 'floating')),
    counter_tag      text,
    anchor_at        timestamptz NOT NULL DEFAULT now(),
    anchor_meter     double precision NOT NULL DEFAULT 0,
    is_active        boolean NOT NULL DEFAULT true,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    created_by       uuid DEFAULT mes.tenant_user(),
    updated_by       uuid DEFAULT mes.tenant_user(),
    CHECK (trigger_kind = 'calendar' OR counter_tag IS NOT NULL),
    CHECK (lead_value < interval_value),
    UNIQUE (organization_id, id),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, machine_id) REFERENCES mes.machines (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX pm_schedules_organization_id_idx ON mes.pm_schedules (organization_id);
CREATE INDEX pm_schedules_plant_id_idx ON mes.pm_schedules (plant_id);
CREATE INDEX pm_schedules_machine_id_idx ON mes.pm_schedules (machine_id);

-- The generated work: occurrence n of a schedule exists at most once, so a maintenance engine
-- that runs twice (or in two processes) cannot raise the same task twice.
CREATE TABLE mes.pm_tasks (
    id                   uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id      uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id             uuid,
    schedule_id          uuid NOT NULL,
    machine_id           uuid NOT NULL,
    occurrence           integer NOT NULL CHECK (occurrence > 0),
    due_at               timestamptz,
    due_meter            double precision,
    status               text NOT NULL DEFAULT 'open' CHECK (status IN
                             ('open', 'in_progress', 'done', 'skipped', 'cancelled')),
    assignee_id          uuid,
    completed_by_user_id uuid,
    completed_at         timestamptz,
    meter_at_completion  double precision,
    notes                text NOT NULL DEFAULT '',
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    created_by           uuid DEFAULT mes.tenant_user(),
    updated_by           uuid DEFAULT mes.tenant_user(),
    UNIQUE (schedule_id, occurrence),
    CHECK (due_at IS NOT NULL OR due_meter IS NOT NULL),
    CHECK ((status = 'done') = (completed_at IS NOT NULL AND completed_by_user_id IS NOT NULL)),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, schedule_id) REFERENCES mes.pm_schedules (organization_id, id),
    FOREIGN KEY (organization_id, machine_id) REFERENCES mes.machines (organization_id, id),
    FOREIGN KEY (organization_id, assignee_id) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, completed_by_user_id)
        REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX pm_tasks_organization_id_idx ON mes.pm_tasks (organization_id);
CREATE INDEX pm_tasks_plant_id_idx ON mes.pm_tasks (plant_id);
CREATE INDEX pm_tasks_machine_id_idx ON mes.pm_tasks (machine_id);
CREATE INDEX pm_tasks_open_idx ON mes.pm_tasks (status, due_at) WHERE status IN ('open', 'in_progress');

-- Row-level security. The organization and plant tables are the tenant roots: an organization
-- is its own tenant, a plant is its own plant.
ALTER TABLE mes.organizations ENABLE ROW LEVEL SECURITY;
ALTER TABLE mes.organizations FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mes.organizations
    USING (id = mes.tenant_org()) WITH CHECK (id = mes.tenant_org());
CREATE TRIGGER touch_row BEFORE UPDATE ON mes.organizations
    FOR EACH ROW EXECUTE FUNCTION mes.touch_row();
REVOKE ALL ON mes.organizations FROM PUBLIC;
-- Organizations are provisioned by setting the context to the new id; never deleted online.
GRANT SELECT, INSERT, UPDATE ON mes.organizations TO mes_app;

ALTER TABLE mes.plants ENABLE ROW LEVEL SECURITY;
ALTER TABLE mes.plants FORCE ROW LEVEL SECURITY;
CREATE POLICY tenant_isolation ON mes.plants
    USING (mes.tenant_allows(organization_id, id))
    WITH CHECK (mes.tenant_allows(organization_id, id));
CREATE TRIGGER touch_row BEFORE UPDATE ON mes.plants
    FOR EACH ROW EXECUTE FUNCTION mes.touch_row();
REVOKE ALL ON mes.plants FROM PUBLIC;
GRANT SELECT, INSERT, UPDATE, DELETE ON mes.plants TO mes_app;

CALL mes.protect_tenant_table('mes.users');
CALL mes.protect_tenant_table('mes.machines');
CALL mes.protect_tenant_table('mes.gateways');
CALL mes.protect_tenant_table('mes.materials');
CALL mes.protect_tenant_table('mes.work_orders');
CALL mes.protect_tenant_table('mes.work_order_machines');
CALL mes.protect_tenant_table('mes.ncr');
CALL mes.protect_tenant_table('mes.inspection_logs');
CALL mes.protect_tenant_table('mes.shifts');
CALL mes.protect_tenant_table('mes.shift_handovers');
CALL mes.protect_tenant_table('mes.pm_schedules');
CALL mes.protect_tenant_table('mes.pm_tasks');

-- Identity lookups that must happen before a tenant is known run as the owner inside narrow
-- SECURITY DEFINER functions (0004). FORCE binds the owner too, so the owner alone may read
-- the gateway and user registries without a context; nobody logs in as the owner.
CREATE POLICY owner_identity_lookup ON mes.gateways FOR SELECT TO mes_owner USING (true);
CREATE POLICY owner_identity_lookup ON mes.users FOR SELECT TO mes_owner USING (true);
CREATE POLICY owner_identity_lookup ON mes.organizations FOR SELECT TO mes_owner USING (true);
CREATE POLICY owner_identity_lookup ON mes.plants FOR SELECT TO mes_owner USING (true);
