-- Time in each state per machine and UTC hour, for the tenant, over the aggregate of 0005
-- (continuous aggregate or plain view). Each bucket's summary covers the spans between its own
-- samples; the span from the hour's start to its first sample is in the previous bucket's last
-- state, and the span from its last sample to the hour's end (or now) in its own last state, but
-- only where the neighbouring hour has data: a gap with no samples at all is unknown time, not
-- time in some state (DESIGN.md: offline is a data gap).

CREATE VIEW mes.v_machine_state_hourly WITH (security_barrier) AS
    WITH agg AS (
        SELECT bucket, organization_id, plant_id, machine_id,
               (summary).seconds AS seconds, (summary).first_ts AS first_ts,
               (summary).last_ts AS last_ts, (summary).last_state AS last_state,
               lag((summary).last_state) OVER w AS prev_last_state,
               lag(bucket) OVER w AS prev_bucket,
               lead(bucket) OVER w AS next_bucket
        FROM mes.machine_state_hourly_agg
        WHERE mes.tenant_allows(organization_id, plant_id)
        WINDOW w AS (PARTITION BY machine_id ORDER BY bucket)
    )
    SELECT agg.bucket, agg.organization_id, agg.plant_id, agg.machine_id, part.state,
           sum(part.seconds)::double precision AS seconds
    FROM agg
    CROSS JOIN LATERAL (
        SELECT key AS state, value::text::double precision AS seconds
        FROM jsonb_each(agg.seconds)
        UNION ALL
        SELECT agg.prev_last_state, extract(epoch FROM agg.first_ts - agg.bucket)::double precision
        WHERE agg.prev_bucket = agg.bucket - INTERVAL '1 hour'
        UNION ALL
        SELECT agg.last_state,
               extract(epoch FROM least(agg.bucket + INTERVAL '1 hour', now()) - agg.last_ts)
                   ::double precision
        WHERE agg.next_bucket = agg.bucket + INTERVAL '1 hour'
           OR (agg.next_bucket IS NULL AND now() < agg.bucket + INTERVAL '1 hour')
    ) part
    WHERE part.seconds > 0
    GROUP BY agg.bucket, agg.organization_id, agg.plant_id, agg.machine_id, part.state;

REVOKE ALL ON mes.v_machine_state_hourly FROM PUBLIC;
GRANT SELECT ON mes.v_machine_state_hourly TO mes_app;
