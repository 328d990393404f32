-- The registry (`mes registry apply`): what a registry file describes that the tables lacked,
-- user roles with a plant scope, API tokens, and the broker credentials of each gateway.

-- Plants and machines as the registry file describes them. `is_active`: an entity pruned from
-- the file is deactivated, never dropped (its history and references stay valid). A plant's
-- time zone is an IANA name, checked by the registry loader (a CHECK cannot consult the
-- server's time zone list: it is not immutable).
ALTER TABLE mes.plants ADD COLUMN is_active boolean NOT NULL DEFAULT true;
-- Free labels of a machine (line, cell, ...), not PLC tags.
ALTER TABLE mes.machines ADD COLUMN tags jsonb NOT NULL DEFAULT '{}'
    CHECK (jsonb_typeof(tags) = 'object');

-- Roles. A user holds one or more roles within one scope: its plant (`plant_id`) or, when that
-- is NULL, the whole organization; the tenant context made from a user is that scope, so RLS
-- confines a plant's people to their plant. An organization admin is organization-wide by
-- definition, a plant admin administers one plant. The single `role` of 0003 becomes `roles`;
-- old values map to the nearest new role without granting more than before.
ALTER TABLE mes.users DROP CONSTRAINT users_role_check;
ALTER TABLE mes.users ALTER COLUMN role DROP DEFAULT;
ALTER TABLE mes.users ALTER COLUMN role TYPE text[] USING (CASE role
    WHEN 'admin' THEN CASE WHEN plant_id IS NULL THEN ARRAY['org_admin'] ELSE ARRAY['plant_admin'] END
    WHEN 'engineer' THEN ARRAY['maintenance']
    WHEN 'technician' THEN ARRAY['maintenance']
    WHEN 'supervisor' THEN ARRAY['operator']
    WHEN 'operator' THEN ARRAY['operator']
    ELSE ARRAY['viewer'] END);
ALTER TABLE mes.users RENAME COLUMN role TO roles;
ALTER TABLE mes.users ALTER COLUMN roles SET DEFAULT ARRAY['viewer'];
ALTER TABLE mes.users ADD CONSTRAINT users_roles_check CHECK (
    cardinality(roles) >= 1
    AND roles <@ ARRAY['viewer', 'operator', 'quality', 'maintenance', 'plant_admin', 'org_admin']
    AND NOT ('org_admin' = ANY (roles) AND plant_id IS NOT NULL)
    AND NOT ('plant_admin' = ANY (roles) AND plant_id IS NULL));

-- API tokens. Only an HMAC-SHA256 of the token, keyed with a server secret that is not in the
-- database, is stored (core/tokens.py says why not a password hash). `plant_id` is the user's
-- scope when the token was made, so that a plant's admins see their plant's tokens; a token
-- always acts with its user's roles and scope as they are now. Revoking is an update, never a
-- delete: the application role gets no DELETE.
CREATE TABLE mes.api_tokens (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    organization_id uuid NOT NULL REFERENCES mes.organizations (id),
    plant_id        uuid,
    user_id         uuid NOT NULL,
    name            text NOT NULL DEFAULT '' CHECK (length(name) <= 200),
    token_hash      bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    expires_at      timestamptz,
    revoked_at      timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    created_by      uuid DEFAULT mes.tenant_user(),
    updated_by      uuid DEFAULT mes.tenant_user(),
    FOREIGN KEY (organization_id, plant_id) REFERENCES mes.plants (organization_id, id),
    FOREIGN KEY (organization_id, user_id) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, created_by) REFERENCES mes.users (organization_id, id),
    FOREIGN KEY (organization_id, updated_by) REFERENCES mes.users (organization_id, id)
);
CREATE INDEX api_tokens_organization_id_idx ON mes.api_tokens (organization_id);
CREATE INDEX api_tokens_plant_id_idx ON mes.api_tokens (plant_id);
CREATE INDEX api_tokens_user_id_idx ON mes.api_tokens (user_id);
CALL mes.protect_tenant_table('mes.api_tokens', 'SELECT, INSERT, UPDATE');
CREATE POLICY owner_identity_lookup ON mes.api_tokens FOR SELECT TO mes_owner USING (true);

-- Equality of two digests that takes the same time wherever they differ: every byte is
-- compared, so the time of a refusal tells nothing about how much of a digest was right.
CREATE FUNCTION mes.digests_equal(a bytea, b bytea) RETURNS boolean
    LANGUAGE sql IMMUTABLE STRICT
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT length(a) = length(b)
           AND (SELECT coalesce(bit_or(get_byte(a, i) # get_byte(b, i)), 0)
                FROM generate_series(0, length(a) - 1) AS i) = 0
    $$;
REVOKE ALL ON FUNCTION mes.digests_equal(bytea, bytea) FROM PUBLIC;

-- Identity lookup before any tenant is known: an API token's owner. The caller (core/tokens.py)
-- sends the token's id and its keyed digest; the function returns just the identity of a live
-- token (not revoked, not expired, its user active): user, organization, plant scope, roles.
CREATE FUNCTION mes.resolve_api_token(token_id uuid, digest bytea)
    RETURNS TABLE (user_id uuid, organization_id uuid, plant_id uuid, roles text[])
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT u.id, u.organization_id, u.plant_id, u.roles
        FROM mes.api_tokens t
        JOIN mes.users u ON u.id = t.user_id AND u.organization_id = t.organization_id
        WHERE t.id = token_id
          AND mes.digests_equal(t.token_hash, digest)
          AND t.revoked_at IS NULL
          AND (t.expires_at IS NULL OR t.expires_at > now())
          AND u.is_active
    $$;
REVOKE ALL ON FUNCTION mes.resolve_api_token(uuid, bytea) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mes.resolve_api_token(uuid, bytea) TO mes_app;

-- Identity lookup before any tenant is known: an organization's id by its code, so that
-- `mes registry apply` can set the tenant context of an organization it did not create.
CREATE FUNCTION mes.lookup_organization(organization_code text) RETURNS uuid
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$ SELECT id FROM mes.organizations WHERE code = organization_code $$;
REVOKE ALL ON FUNCTION mes.lookup_organization(text) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mes.lookup_organization(text) TO mes_app;

-- Broker accounts: the mosquitto password hash (PBKDF2-SHA512, mosquitto's `$7$` format) of
-- each gateway and service account; the secrets themselves are handed out once and kept
-- nowhere. Broker-wide, not a tenant's: only the owner reads and writes it
-- (`mes registry broker-config`), the application role has no privilege at all.
CREATE TABLE mes.broker_credentials (
    username      text PRIMARY KEY CHECK (username ~ '^[a-z0-9][a-z0-9-]{0,62}$'),
    gateway_id    uuid UNIQUE REFERENCES mes.gateways (id),
    password_hash text NOT NULL CHECK (password_hash LIKE '$7$%'),
    rotated_at    timestamptz NOT NULL DEFAULT now()
);
REVOKE ALL ON mes.broker_credentials FROM PUBLIC;
