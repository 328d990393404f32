-- mes:as-connecting-user
-- Roles and extensions. Runs as the user `mes db migrate` connects with (an administrator
-- with CREATEROLE, or a superuser in development); every later file runs as mes_owner.
--
-- mes_owner: owns the schema, runs migrations, owns the views and SECURITY DEFINER functions.
--            NOLOGIN: nobody connects as it; administrators are granted membership.
-- mes_app:   what the ingest and the API connect as. Owns nothing, no BYPASSRLS, no CREATE
--            anywhere; gets only the grants of later files.

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mes_owner') THEN
        CREATE ROLE mes_owner NOLOGIN NOSUPERUSER NOBYPASSRLS;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'mes_app') THEN
        CREATE ROLE mes_app LOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
    END IF;
    -- The migrating user must be able to SET ROLE mes_owner.
    IF NOT pg_has_role(session_user, 'mes_owner', 'MEMBER') THEN
        EXECUTE format('GRANT mes_owner TO %I', session_user);
    END IF;
END
$$;

-- The roles are cluster-wide; make sure they were not given powers elsewhere.
ALTER ROLE mes_app NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE NOINHERIT;
ALTER ROLE mes_owner NOSUPERUSER NOBYPASSRLS;

DO $$
BEGIN
    EXECUTE format('GRANT CONNECT, TEMPORARY ON DATABASE %I TO mes_owner, mes_app',
                   current_database());
END
$$;

-- PostgreSQL 15 already refuses PUBLIC the CREATE privilege on schema public; older clusters
-- and upgraded ones do not: the application role must not be able to create anything.
REVOKE CREATE ON SCHEMA public FROM PUBLIC;

-- TimescaleDB when the server has it loaded (the migration runner chooses the time-series path
-- from the same test).
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND current_setting('shared_preload_libraries') LIKE '%timescaledb%' THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
    END IF;
END
$$;

CREATE SCHEMA IF NOT EXISTS mes AUTHORIZATION mes_owner;
REVOKE ALL ON SCHEMA mes FROM PUBLIC;
GRANT USAGE ON SCHEMA mes TO mes_app;
