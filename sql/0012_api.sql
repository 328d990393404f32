-- What the API adds: the reasons people give to stops.
--
-- A downtime event is the edge's record (its natural key is the edge-made event_id) and the
-- application role cannot write the time series at all (0004). A person correcting a stop's
-- reason, adding a comment or splitting a stop in two does not rewrite the edge's row: each
-- such decision is a row here, a segment of the event from `segment_start` to the next
-- segment's start (or the event's end) with its reason and comment, audited like every tenant
-- row (created_by / updated_by from the unit of work). Setting the reason of a whole stop is the
-- segment at the event's start; splitting a stop at t adds the segment at t.
CREATE TABLE mes.downtime_reasons (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id        uuid,
    machine_id      uuid NOT NULL,
    event_id        uuid NOT NULL,
    segment_start   timestamptz NOT NULL,
    reason_code     text CHECK (reason_code IS NULL OR length(reason_code) BETWEEN 1 AND 64),
    comment         text NOT NULL DEFAULT '' CHECK (length(comment) <= 2000),
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid DEFAULT mes.tenant_user(),
    updated_by      uuid DEFAULT mes.tenant_user(),
    UNIQUE (event_id, segment_start),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, machine_id) REFERENCES mes.machines (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX downtime_reasons_organization_id_idx ON mes.downtime_reasons (organization_id);
CREATE INDEX downtime_reasons_plant_id_idx ON mes.downtime_reasons (plant_id);
CREATE INDEX downtime_reasons_machine_id_idx ON mes.downtime_reasons (machine_id);
CALL mes.protect_tenant_table('mes.downtime_reasons', 'SELECT, INSERT, UPDATE');

-- Resolving an NCR decides what happens to the material (its disposition) and says why
-- (resolution). The API requires a disposition to resolve; there is no CHECK tying it to the
-- status because reports resolved before this migration have none, and a NOT VALID check is
-- reflected by SQLAlchemy with options it cannot validate (the schema test fails on it).
ALTER TABLE mes.ncr
    ADD COLUMN disposition text CHECK (disposition IN
        ('use_as_is', 'rework', 'repair', 'scrap', 'return_to_supplier')),
    ADD COLUMN resolution text NOT NULL DEFAULT '' CHECK (length(resolution) <= 4000);
