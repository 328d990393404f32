-- The tenant context and the one rule every tenant table and view applies (DESIGN.md,
-- "Tenancy and the database").
--
-- The context is three transaction-local settings, set with set_config(..., true) by
-- core.tenancy: app.org_id, app.plant_id, app.user_id. An unset or reset setting reads as NULL
-- (missing_ok = true, then nullif ''), which matches no row: no context, no rows, no error.
-- These are SQL functions without SET clauses, so the planner inlines them into policies and
-- views and can still use the organization and plant indexes.

CREATE FUNCTION mes.tenant_org() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.org_id', true), '')::uuid $$;

CREATE FUNCTION mes.tenant_plant() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.plant_id', true), '')::uuid $$;

CREATE FUNCTION mes.tenant_user() RETURNS uuid
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$ SELECT nullif(current_setting('app.user_id', true), '')::uuid $$;

-- The rule: the row's organization is the context's, and (no plant in the context, or the row
-- is organization-wide, or it is the context's plant).
CREATE FUNCTION mes.tenant_allows(row_org uuid, row_plant uuid) RETURNS boolean
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $$
        SELECT row_org = mes.tenant_org()
           AND (mes.tenant_plant() IS NULL OR row_plant IS NULL OR row_plant = mes.tenant_plant())
    $$;

REVOKE ALL ON FUNCTION mes.tenant_org(), mes.tenant_plant(), mes.tenant_user(),
    mes.tenant_allows(uuid, uuid) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mes.tenant_org(), mes.tenant_plant(), mes.tenant_user(),
    mes.tenant_allows(uuid, uuid) TO mes_app;

-- updated_at / updated_by on every change, from the acting user of the unit of work.
CREATE FUNCTION mes.touch_row() RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    NEW.updated_at := now();
    NEW.updated_by := coalesce(mes.tenant_user(), NEW.updated_by);
    RETURN NEW;
END
$$;
REVOKE ALL ON FUNCTION mes.touch_row() FROM PUBLIC;

-- Applied to every relational tenant table (a procedure, so that no table is set up by a
-- slightly different copy): RLS enabled AND forced (the owner is bound too), one policy for
-- reading and writing with the rule above, the touch trigger, and the application role's
-- ordinary grants.
CREATE PROCEDURE mes.protect_tenant_table(tbl regclass, app_privileges text
                                          DEFAULT 'SELECT, INSERT, UPDATE, DELETE')
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
    AS $$
BEGIN
    EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', tbl);
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tbl);
    EXECUTE format(
        'CREATE POLICY tenant_isolation ON %s AS PERMISSIVE FOR ALL TO PUBLIC '
        'USING (mes.tenant_allows(organization_id, plant_id)) '
        'WITH CHECK (mes.tenant_allows(organization_id, plant_id))', tbl);
    EXECUTE format(
        'CREATE TRIGGER touch_row BEFORE UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION mes.touch_row()',
        tbl);
    EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', tbl);
    EXECUTE format('GRANT %s ON %s TO mes_app', app_privileges, tbl);
END
$$;
REVOKE ALL ON PROCEDURE mes.protect_tenant_table(regclass, text) FROM PUBLIC;
