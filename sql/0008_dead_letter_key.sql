-- One dead letter per bad message. The broker delivers QoS 1 at least once: an ingest killed
-- after it recorded a dead letter but before its acknowledgement reached the broker gets the
-- message again and, with a plain INSERT, recorded it twice (seen: 78 rows for 76 messages).
-- The natural key is the topic and the SHA-256 of the whole payload (the stored payload may be
-- cut at ingest.dead_letter_payload_max); a repeat counts in times_seen and last_seen_at.
-- MQTT gives no message identity that survives a session, so the same bytes published twice on
-- one topic are one letter seen twice, like a redelivery: both say "this payload was refused",
-- and our agents never send the same bytes twice (seq and sent_at differ per message).

ALTER TABLE mes.dead_letters
    ADD COLUMN payload_sha256 bytea,
    ADD COLUMN times_seen     integer NOT NULL DEFAULT 1,
    ADD COLUMN last_seen_at   timestamptz;

-- Letters recorded before this migration: hashed from what was stored (a cut payload then
-- keys differently from its full-length repeat, which is recorded as a new letter), and
-- duplicates merged into the oldest, keeping its replay state.
UPDATE mes.dead_letters SET payload_sha256 = sha256(payload), last_seen_at = received_at;
WITH grouped AS (
    SELECT id, min(id) OVER k AS keep, count(*) OVER k AS seen,
           max(received_at) OVER k AS last_seen
    FROM mes.dead_letters
    WINDOW k AS (PARTITION BY topic, payload_sha256)
), merged AS (
    UPDATE mes.dead_letters d SET times_seen = g.seen, last_seen_at = g.last_seen
    FROM grouped g WHERE d.id = g.id AND g.id = g.keep AND g.seen > 1
)
DELETE FROM mes.dead_letters d USING grouped g WHERE d.id = g.id AND g.id <> g.keep;

ALTER TABLE mes.dead_letters
    ALTER COLUMN payload_sha256 SET NOT NULL,
    ALTER COLUMN last_seen_at SET NOT NULL,
    ALTER COLUMN last_seen_at SET DEFAULT now(),
    ADD CONSTRAINT dead_letters_topic_payload_key UNIQUE (topic, payload_sha256);

-- The application role records letters only through this function: insert, or count a repeat.
-- A repeat takes the latest reason and detail (the registry may have changed since) and, if the
-- letter had been replayed, waits again: it was refused again, so the replay did not hold.
-- Returns how many times the letter has now been seen.
CREATE FUNCTION mes.record_dead_letter(topic text, gateway_code text, reason text,
                                       detail text, payload bytea, payload_size integer,
                                       payload_sha256 bytea) RETURNS integer
    LANGUAGE sql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
    AS $$
        INSERT INTO mes.dead_letters AS d
            (topic, gateway_code, reason, detail, payload, payload_size, payload_sha256)
        VALUES (topic, gateway_code, reason, detail, payload, payload_size, payload_sha256)
        ON CONFLICT ON CONSTRAINT dead_letters_topic_payload_key DO UPDATE
            SET times_seen = d.times_seen + 1,
                last_seen_at = now(),
                gateway_code = excluded.gateway_code,
                reason = excluded.reason,
                detail = excluded.detail,
                replayed_at = NULL
        RETURNING d.times_seen
    $$;
REVOKE ALL ON FUNCTION mes.record_dead_letter(text, text, text, text, bytea, integer, bytea)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mes.record_dead_letter(text, text, text, text, bytea, integer, bytea)
    TO mes_app;
REVOKE INSERT ON mes.dead_letters FROM mes_app;
