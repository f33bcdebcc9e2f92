-- Decisions published outward (issue 30): an outbox row per decision, written in the statement
-- that stores the scored record (app.postgres.scored), and one per review verdict, written in
-- the verdict's transaction (app.postgres.reviews). A relay publishes rows to the `decisions`
-- topic keyed by card, in seq order, and deletes them once the broker has acknowledged: a row
-- exists exactly while its event may not have reached the topic (at least once; consumers
-- dedupe by transaction id and kind). The row names its record instead of copying it (the
-- relay joins): ≈ 50 B a decision, gone within a second.
-- kind: NULL for a decision (no bytes for the common case), 'verdict' for a review verdict.
CREATE TABLE decision_outbox (
    seq             bigserial PRIMARY KEY,
    transaction_id  text NOT NULL,
    event_time      timestamptz NOT NULL,
    kind            text CHECK (kind IN ('verdict'))
);

-- Optional webhooks: the relay copies each event it publishes into one delivery per configured
-- endpoint (in the transaction that deletes its outbox row), so an endpoint that is down holds
-- back only its own deliveries. A delivery that fails max_attempts times moves to the dead
-- letters with its last error (status or exception name; never the body of a response).
CREATE TABLE webhook_deliveries (
    id          bigserial PRIMARY KEY,
    endpoint    text NOT NULL,
    card_id     text NOT NULL,
    body        bytea NOT NULL,
    attempts    int NOT NULL DEFAULT 0,
    next_at     timestamptz NOT NULL DEFAULT now(),
    last_error  text
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (endpoint, next_at, id);

CREATE TABLE webhook_dead_letters (
    id          bigint PRIMARY KEY,
    endpoint    text NOT NULL,
    card_id     text NOT NULL,
    body        bytea NOT NULL,
    attempts    int NOT NULL,
    last_error  text,
    failed_at   timestamptz NOT NULL DEFAULT now()
);
