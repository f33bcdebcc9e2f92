-- Compact, day-partitioned storage of scored transactions (README, "Storage").
--
-- scored_transactions: one row per stored transaction, partitioned by event time (one
--   partition per UTC day, scored_transactions_pYYYYMMDD, plus a default partition). The
--   feature snapshot is real[] in the order feature_sets.names gives for the row's
--   feature_set; the model scores are float8[] in the order of the row's model lineup. The
--   canonical payload, its digest and the answer are rebuilt from the columns when that is
--   byte-identical (the repository checks it before writing) and stored verbatim otherwise
--   (payload, digest, response: NULL when rebuilt).
-- transaction_ids: one row per transaction id, unpartitioned: the global "one id is one
--   record, forever" guarantee (its primary key), where the record is (event_time, the
--   partition key) and its current label.
-- transactions: a view with the columns of migration 001 (scores as JSON), for ad-hoc SQL.

ALTER TABLE learn_log DROP CONSTRAINT IF EXISTS learn_log_transaction_id_fkey;
ALTER TABLE transactions RENAME TO transactions_v1;

CREATE TABLE feature_sets (
    id     text PRIMARY KEY,
    names  text[] NOT NULL
);

CREATE TABLE model_lineups (
    id      serial PRIMARY KEY,
    models  jsonb NOT NULL UNIQUE  -- [[name, version, role], ...], champion first
);

-- Set by pruning: partitions are not created for days before it (their rows go to default).
CREATE TABLE storage_horizon (
    only_row     boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    oldest_day   date NOT NULL
);

CREATE TABLE transaction_ids (
    transaction_id  text PRIMARY KEY,
    event_time      timestamptz NOT NULL,
    label_is_fraud  boolean,
    label_seq       bigint
);

CREATE TABLE scored_transactions (
    event_time      timestamptz NOT NULL,
    scored_at       timestamptz NOT NULL,
    score           double precision NOT NULL,
    lineup          integer     NOT NULL,
    transaction_id  text        NOT NULL,
    card_id         text        NOT NULL,
    merchant_id     text        NOT NULL,
    feature_set     text        NOT NULL,
    feature_status  text        NOT NULL,
    decision        text        NOT NULL,
    source          text        NOT NULL,
    scores          double precision[] NOT NULL,
    features        real[]      NOT NULL,  -- float4: what the learner reads back (rounded)
    payload_rest    text,  -- canonical payload without the id, card, merchant, timestamp keys
    reasons         text,  -- the answer's reasons as JSON, NULL when there are none
    payload         text,  -- verbatim payload, only when payload_rest cannot rebuild it
    digest          text,  -- verbatim digest, only when it is not sha256(payload)
    response        text,  -- verbatim answer, only when the columns cannot rebuild it
    CHECK ((payload_rest IS NULL) <> (payload IS NULL))
) PARTITION BY RANGE (event_time);
-- Lookups come through transaction_ids (event_time, transaction_id): this one index serves
-- them (the id is checked on the few rows of one instant) and the event-ordered history scan.
CREATE INDEX scored_transactions_event_time ON scored_transactions (event_time);
CREATE TABLE scored_transactions_default PARTITION OF scored_transactions DEFAULT;

-- Create the day partitions of ``days`` that do not exist (UTC days). Days before the pruning
-- horizon are skipped (their rows go to the default partition), and so is a day whose rows
-- are already in the default partition. Serialised by an advisory lock; returns how many
-- partitions were created.
CREATE FUNCTION riverguard_ensure_partitions(days date[]) RETURNS integer
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
            created := created + 1;
        EXCEPTION WHEN check_violation THEN
            NULL;  -- the default partition holds rows of that day: they stay there
        END;
    END LOOP;
    RETURN created;
END;
$$;

-- Upgrade: the rows of migration 001 move over. Their payload (jsonb text), digest and
-- answer are kept verbatim (jsonb does not keep the canonical text the digest was taken of).
INSERT INTO feature_sets (id, names)
SELECT DISTINCT ON (feature_set) feature_set, ARRAY(SELECT jsonb_object_keys(features))
FROM transactions_v1 ORDER BY feature_set, scored_at DESC;

INSERT INTO model_lineups (models)
SELECT DISTINCT (SELECT jsonb_agg(jsonb_build_array(s ->> 'name', s ->> 'version', s ->> 'role')
                                  ORDER BY n)
                 FROM jsonb_array_elements(scores) WITH ORDINALITY AS e(s, n))
FROM transactions_v1;

SELECT riverguard_ensure_partitions(
    coalesce(array_agg(DISTINCT (event_time AT TIME ZONE 'UTC')::date), '{}'))
FROM transactions_v1;

INSERT INTO transaction_ids (transaction_id, event_time, label_is_fraud, label_seq)
SELECT transaction_id, event_time, label_is_fraud, label_seq FROM transactions_v1;

INSERT INTO scored_transactions (event_time, scored_at, score, lineup, transaction_id, card_id,
    merchant_id, feature_set, feature_status, decision, source, scores, features, payload,
    digest, response)
SELECT t.event_time, t.scored_at, t.score, l.id, t.transaction_id, t.card_id, t.merchant_id,
    t.feature_set, t.feature_status, t.decision, t.source,
    ARRAY(SELECT (s ->> 'score')::double precision
          FROM jsonb_array_elements(t.scores) WITH ORDINALITY AS e(s, n) ORDER BY n),
    ARRAY(SELECT (t.features ->> f)::real
          FROM unnest(fs.names) WITH ORDINALITY AS u(f, n) ORDER BY n),
    t.payload::text, t.payload_digest, t.response::text
FROM transactions_v1 t
JOIN feature_sets fs ON fs.id = t.feature_set
JOIN model_lineups l ON l.models = (
    SELECT jsonb_agg(jsonb_build_array(s ->> 'name', s ->> 'version', s ->> 'role') ORDER BY n)
    FROM jsonb_array_elements(t.scores) WITH ORDINALITY AS e(s, n));

DROP TABLE transactions_v1;

CREATE VIEW transactions AS
SELECT t.transaction_id, t.card_id, t.merchant_id, t.event_time, t.feature_set,
    t.feature_status, t.score, t.decision, t.source, t.scored_at, t.features,
    (SELECT jsonb_agg(jsonb_build_object('name', m ->> 0, 'version', m ->> 1, 'role', m ->> 2,
                                         'score', t.scores[n]) ORDER BY n)
     FROM jsonb_array_elements(l.models) WITH ORDINALITY AS e(m, n)) AS scores,
    i.label_is_fraud, i.label_seq
FROM scored_transactions t
JOIN transaction_ids i ON i.transaction_id = t.transaction_id
JOIN model_lineups l ON l.id = t.lineup;
