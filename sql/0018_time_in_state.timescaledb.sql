-- Time in state of one machine over a range (TimescaleDB path): the same function as the
-- plain path's 0018, over mes.v_machine_state_hourly, whose hours the continuous aggregate
-- stores (0005), so nothing is recomputed from the samples here. Seconds per state over the
-- hours with range_start <= bucket < range_end.
--
-- Security definer (the owner's, fixed search_path): called by the application role, a SQL
-- function over the view is refused the continuous aggregate behind it ("permission denied
-- for materialized view"), which a direct query of the view is not. The view still applies the
-- caller's tenant context (session settings, not roles).
CREATE FUNCTION mes.machine_time_in_state(machine uuid, range_start timestamptz,
                                          range_end timestamptz)
    RETURNS TABLE (state text, seconds double precision)
    LANGUAGE sql STABLE SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        SELECT v.state, sum(v.seconds)::double precision
        FROM mes.v_machine_state_hourly v
        WHERE v.machine_id = machine AND v.bucket >= range_start AND v.bucket < range_end
        GROUP BY v.state
    $$;
REVOKE ALL ON FUNCTION mes.machine_time_in_state(uuid, timestamptz, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mes.machine_time_in_state(uuid, timestamptz, timestamptz) TO mes_app;
