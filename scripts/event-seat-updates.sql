-- The set-up of scripts/event-seat-updates.sh: what `event_seats`' indexes cost the seat updates of a
-- storm, old set against new (migration 15).
--
-- Builds two copies of a 100,000-seat inventory (10 events of 10,000 seats) in a scratch schema, one
-- with the five indexes of migration 4 and one with the partial indexes of migration 15, then holds and
-- sells every seat in batches of 350 the way the seat and checkout lanes do (`= ANY` of the batch,
-- guarded by status). No foreign keys or triggers: only the index writes differ.
\set ON_ERROR_STOP on
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS seat_update_bench CASCADE;
CREATE SCHEMA seat_update_bench;
SET search_path = seat_update_bench;

CREATE TABLE five_indexes (
    event_id uuid, seat_id uuid, section_id uuid, tier_id uuid, status text NOT NULL,
    hold_id uuid, order_id uuid, version bigint NOT NULL, PRIMARY KEY (event_id, seat_id)
);
CREATE TABLE partial_indexes (LIKE five_indexes INCLUDING ALL);
CREATE INDEX ON five_indexes (event_id, section_id, status);
CREATE INDEX ON five_indexes (event_id, tier_id, status);
CREATE INDEX ON five_indexes (hold_id);
CREATE INDEX ON five_indexes (order_id);
CREATE INDEX ON partial_indexes (event_id, section_id, tier_id) WHERE status = 'available';
CREATE INDEX ON partial_indexes (hold_id) WHERE hold_id IS NOT NULL;
CREATE INDEX ON partial_indexes (order_id) WHERE order_id IS NOT NULL;
INSERT INTO five_indexes
SELECT event, gen_random_uuid(), section, tier, 'available', NULL, NULL, 0
FROM (SELECT gen_random_uuid() AS event FROM generate_series(1, 10)) events,
     LATERAL (SELECT gen_random_uuid() AS section, gen_random_uuid() AS tier
              FROM generate_series(1, 4)) sections,
     generate_series(1, 2500);
INSERT INTO partial_indexes SELECT * FROM five_indexes;

CREATE FUNCTION hold_and_sell_all(target text) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    spent interval := '0';
    started timestamptz;
    event uuid;
    batch uuid[];
BEGIN
    FOR event IN SELECT DISTINCT event_id FROM five_indexes LOOP
        FOR i IN 0..28 LOOP
            batch := ARRAY(SELECT seat_id FROM five_indexes WHERE event_id = event
                           ORDER BY seat_id OFFSET i * 350 LIMIT 350);
            started := clock_timestamp();
            EXECUTE format('UPDATE %I SET status = ''held'', hold_id = gen_random_uuid(),
                                version = version + 1
                            WHERE event_id = $1 AND seat_id = ANY($2) AND status = ''available''',
                           target) USING event, batch;
            EXECUTE format('UPDATE %I SET status = ''sold'', hold_id = NULL,
                                order_id = gen_random_uuid(), version = version + 1
                            WHERE event_id = $1 AND seat_id = ANY($2) AND status = ''held''',
                           target) USING event, batch;
            spent := spent + (clock_timestamp() - started);
        END LOOP;
    END LOOP;
    RETURN (extract(epoch FROM spent) * 1000)::bigint;
END $$;
