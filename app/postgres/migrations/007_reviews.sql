-- The review queue (README, "Review queue"): one row per transaction whose stored decision is
-- review, written in the statement that stores the scored record (so an item exists exactly
-- when its record does). opened_at is wall-clock (event time says nothing about how long an
-- item has waited on a replay). A verdict closes the item once; fraud / legitimate verdicts
-- also record a label (source review) in the same transaction: label_seq is that label.
CREATE TABLE review_queue (
    transaction_id  text PRIMARY KEY,
    event_time      timestamptz NOT NULL,
    score           double precision NOT NULL,
    opened_at       timestamptz NOT NULL DEFAULT now(),
    verdict         text CHECK (verdict IN ('fraud', 'legitimate', 'unsure')),
    note            text,
    analyst         text,
    decided_at      timestamptz,
    label_seq       bigint,
    CHECK ((verdict IS NULL) = (decided_at IS NULL) AND (verdict IS NULL) = (analyst IS NULL))
);
CREATE INDEX review_queue_open_score ON review_queue (score DESC, transaction_id)
    WHERE verdict IS NULL;
CREATE INDEX review_queue_open_age ON review_queue (opened_at, transaction_id)
    WHERE verdict IS NULL;
