-- The learning log's head (issue 26): the last seq ever assigned, which only moves forward.
-- The learner used to take max(seq) + 1, and pruning deletes the log rows of the days it
-- drops: when those were the newest rows (labels arrive late, so the newest rows are often of
-- old transactions) the next labels got numbers already used, below the leader's position and
-- its checkpoints, and a restart from a checkpoint skipped them. The head is read and moved in
-- the learner's fenced transaction (its row lock also serialises two writers); pruning never
-- touches it.
CREATE TABLE learn_log_head (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    seq       bigint  NOT NULL
);
-- from the log as it is; a database pruned before this migration may already have reused
-- numbers — the head is at least the newest checkpoint's position, so nothing learned after
-- it is numbered below it again
INSERT INTO learn_log_head (seq)
SELECT greatest((SELECT coalesce(max(seq), 0) FROM learn_log),
                (SELECT coalesce(max(learn_seq), 0) FROM model_snapshots));

-- Storage per transaction (bench/storage.py; BENCHMARKS.md, "Storage"). Nothing here rewrites
-- a table or rebuilds an index: a big database migrates at once, and the older rows keep
-- their format (they read as before) until retention drops them.
-- learned_packed: the labels learned per lineup entry as 4-byte big-endian integers
--   (int4send's bytes, app.postgres.codec.pack_learned), written instead of learned int[]:
--   1 + 4n bytes where the array took 24 + 4n (≈ 20 B a transaction). A row has one of the
--   two (neither: written before 004).
-- payload_rest: new rows hold the payload's other fields as a JSON array in a fixed order
--   (app.postgres.codec.REST_FIELDS) instead of an object naming each one (≈ 85 B); an
--   older row's object still reads. No DDL: the column stays text.
ALTER TABLE scored_transactions ADD COLUMN learned_packed bytea;

-- Indexes of the day partitions created from now on, filled to 100 % (existing partitions
-- keep theirs: rebuilding them would lock writes for as long; they age out with retention).
-- scored_transactions_card: the console's hash index on card_id (default fill factor 75). A
--   hash index splits a bucket once the buckets are that full on average and allocates
--   buckets in batches, so at 75 most of a day partition's index was empty bucket pages
--   (≈ 20 B a transaction at 2,500 a day); a card's rows are still one bucket away, with an
--   overflow page now and then. A hash index keeps the fill factor it was built with and a
--   partitioned index's options cannot be altered: each new partition's index is set and
--   rebuilt at once, while it is empty.
-- scored_transactions_event_time: rows arrive in about event-time order, so its leaf pages
--   split at the right edge, which leaves them at the fill factor (default 90; ≈ 2.5 B).
CREATE FUNCTION riverguard_fill_indexes(part regclass) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    idx     regclass;
    parent  regclass;
BEGIN
    FOR idx, parent IN
        SELECT i.indexrelid::regclass, h.inhparent::regclass
        FROM pg_inherits h JOIN pg_index i ON i.indexrelid = h.inhrelid
        WHERE i.indrelid = part AND h.inhparent IN (
            'scored_transactions_card'::regclass, 'scored_transactions_event_time'::regclass)
    LOOP
        EXECUTE format('ALTER INDEX %s SET (fillfactor = 100)', idx);
        IF parent = 'scored_transactions_card'::regclass THEN
            EXECUTE format('REINDEX INDEX %s', idx);  -- empty: instant
        END IF;
    END LOOP;
END;
$$;

-- As in 002, plus the fill factors of each new partition's indexes (above).
CREATE OR REPLACE FUNCTION riverguard_ensure_partitions(days date[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    day      date;
    horizon  date;
    name     text;
    created  integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(5392942, 1);
    SELECT oldest_day INTO horizon FROM storage_horizon;
    FOREACH day IN ARRAY days LOOP
        CONTINUE WHEN day IS NULL OR (horizon IS NOT NULL AND day < horizon);
        name := 'scored_transactions_p' || to_char(day, 'YYYYMMDD');
        CONTINUE WHEN to_regclass(quote_ident(name)) IS NOT NULL;
        BEGIN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF scored_transactions FOR VALUES FROM (%L) TO (%L)',
                name, (day::timestamp AT TIME ZONE 'UTC'),
                ((day + 1)::timestamp AT TIME ZONE 'UTC'));
            PERFORM riverguard_fill_indexes(quote_ident(name)::regclass);
            created := created + 1;
        EXCEPTION WHEN check_violation THEN
            NULL;  -- the default partition holds rows of that day: they stay there
        END;
    END LOOP;
    RETURN created;
END;
$$;
