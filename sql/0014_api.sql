-- What the API adds (2): dead letters for organization administrators (docs/api.md, "Dead
-- letters"), and an index for the task list.
--
-- mes.dead_letters is not a tenant table (a message may name no known tenant) and the
-- application role has no privilege on it (0004, 0008). These narrow SECURITY DEFINER functions
-- show, hand over for replay and mark as replayed only the letters of the request's tenant
-- context (core.tenancy: app.org_id, app.plant_id, app.user_id), and only to an active
-- administrator (org_admin, plant_admin) of that context: the API checks the role first, this
-- holds even if it did not.
--
-- Whose letter is it? Only the topic can tell: `mes/v1/<organization code>/<plant code>/...`.
-- A letter belongs to the organization its topic names, unless its gateway is registered to
-- another organization (a wrong_tenant letter is not the claimed organization's to read: the
-- payload came from someone else's gateway). Its plant is the topic's plant when that is a
-- plant of the organization, else none (organization-wide). The usual tenant rule (0002) then
-- applies: a plant administrator sees its plant's letters and the organization-wide ones.
-- Letters whose topic names no organization of ours (bad_topic, another root, an unknown code)
-- belong to nobody: only the operator sees them (`mes ingest dead-letters`, owner's URL).

CREATE FUNCTION mes._tenant_dead_letters()
    RETURNS TABLE (letter_id bigint, plant_id uuid)
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT d.id, p.id
        FROM mes.dead_letters d
        JOIN mes.organizations o ON o.code = split_part(d.topic, '/', 3)
        LEFT JOIN mes.plants p ON p.organization_id = o.id
                              AND p.code = split_part(d.topic, '/', 4)
        WHERE d.topic LIKE 'mes/v1/%'
          AND o.id = mes.tenant_org()
          AND mes.tenant_allows(o.id, p.id)
          AND NOT EXISTS (SELECT 1 FROM mes.gateways g
                          WHERE g.code = d.gateway_code AND g.organization_id <> o.id)
          -- The caller is an active administrator of the context it claims.
          AND EXISTS (SELECT 1 FROM mes.users u
                      WHERE u.id = mes.tenant_user() AND u.organization_id = o.id
                        AND u.is_active AND u.roles && ARRAY['org_admin', 'plant_admin']
                        AND u.plant_id IS NOT DISTINCT FROM mes.tenant_plant())
    $$;
REVOKE ALL ON FUNCTION mes._tenant_dead_letters() FROM PUBLIC;

-- A page of the tenant's letters, newest first: those of `of_reason` (NULL: any), waiting
-- (`replayed` false), replayed (true) or both (NULL), with an id below `before_id` (the cursor).
CREATE FUNCTION mes.api_dead_letters(of_reason text, replayed boolean, before_id bigint,
                                     page_size integer)
    RETURNS TABLE (id bigint, plant_id uuid, topic text, gateway_code text, reason text,
                   detail text, payload_size integer, received_at timestamptz,
                   times_seen integer, last_seen_at timestamptz, replayed_at timestamptz)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT d.id, t.plant_id, d.topic, d.gateway_code, d.reason, d.detail, d.payload_size,
               d.received_at, d.times_seen, d.last_seen_at, d.replayed_at
        FROM mes._tenant_dead_letters() t
        JOIN mes.dead_letters d ON d.id = t.letter_id
        WHERE (of_reason IS NULL OR d.reason = of_reason)
          AND (replayed IS NULL OR (d.replayed_at IS NOT NULL) = replayed)
          AND (before_id IS NULL OR d.id < before_id)
        ORDER BY d.id DESC
        LIMIT page_size
    $$;

-- The tenant's waiting letters among `ids`, with their payloads, for the replay
-- (core/intake/replay.py) to run through the ingest's checks and writer again.
CREATE FUNCTION mes.api_waiting_dead_letters(ids bigint[])
    RETURNS TABLE (id bigint, topic text, payload bytea, payload_size integer)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT d.id, d.topic, d.payload, d.payload_size
        FROM mes._tenant_dead_letters() t
        JOIN mes.dead_letters d ON d.id = t.letter_id
        WHERE d.id = ANY (ids) AND d.replayed_at IS NULL
        ORDER BY d.id
    $$;

-- Mark the tenant's letters among `ids` replayed (the replay wrote them); returns their ids.
CREATE FUNCTION mes.api_mark_dead_letters_replayed(ids bigint[])
    RETURNS SETOF bigint
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        UPDATE mes.dead_letters d SET replayed_at = now()
        FROM mes._tenant_dead_letters() t
        WHERE d.id = t.letter_id AND d.id = ANY (ids) AND d.replayed_at IS NULL
        RETURNING d.id
    $$;

REVOKE ALL ON FUNCTION mes.api_dead_letters(text, boolean, bigint, integer),
    mes.api_waiting_dead_letters(bigint[]), mes.api_mark_dead_letters_replayed(bigint[])
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mes.api_dead_letters(text, boolean, bigint, integer),
    mes.api_waiting_dead_letters(bigint[]), mes.api_mark_dead_letters_replayed(bigint[])
    TO mes_app;

-- The API's task list (`GET /v1/pm/tasks?status=open`, ordered by created_at then id) reads
-- its page straight from this index instead of sorting every task of the status
-- (`mes bench api`, docs/api.md "Performance").
CREATE INDEX pm_tasks_status_created_idx ON mes.pm_tasks (status, created_at, id);
