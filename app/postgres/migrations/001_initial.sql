-- riverguard durable record: one row per transaction id, the label log, the learning log,
-- model snapshots and the promotions audit.

CREATE TABLE transactions (
    transaction_id  text PRIMARY KEY,
    card_id         text        NOT NULL,
    merchant_id     text        NOT NULL,
    event_time      timestamptz NOT NULL,
    payload         jsonb       NOT NULL,
    payload_digest  text        NOT NULL,
    features        jsonb       NOT NULL,
    feature_set     text        NOT NULL,
    feature_status  text        NOT NULL,
    scores          jsonb       NOT NULL,
    score           double precision NOT NULL,
    decision        text        NOT NULL,
    response        jsonb       NOT NULL,
    source          text        NOT NULL,
    scored_at       timestamptz NOT NULL,
    label_is_fraud  boolean,
    label_seq       bigint
);
CREATE INDEX transactions_card_time ON transactions (card_id, event_time);
CREATE INDEX transactions_event_time ON transactions (event_time);

-- Every accepted label, in arrival order. status: learned, parked, duplicate, relabeled, expired.
CREATE TABLE labels (
    seq             bigserial PRIMARY KEY,
    transaction_id  text        NOT NULL,
    is_fraud        boolean     NOT NULL,
    labeled_at      timestamptz NOT NULL,
    source          text        NOT NULL,
    status          text        NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX labels_transaction ON labels (transaction_id);
CREATE INDEX labels_parked ON labels (transaction_id) WHERE status = 'parked';

-- What the models learned, in learning order: checkpoints record the last seq they include,
-- and a restart re-learns everything after it.
CREATE TABLE learn_log (
    seq             bigserial PRIMARY KEY,
    transaction_id  text        NOT NULL REFERENCES transactions (transaction_id),
    is_fraud        boolean     NOT NULL,
    label_seq       bigint      NOT NULL,
    evaluate        boolean     NOT NULL,
    learned_at      timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE model_snapshots (
    id              bigserial PRIMARY KEY,
    model_name      text        NOT NULL,
    model_version   text        NOT NULL,
    learn_seq       bigint      NOT NULL,
    feature_set     text        NOT NULL,
    metadata        jsonb       NOT NULL,
    blob            bytea       NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX model_snapshots_latest ON model_snapshots (model_name, id DESC);

CREATE TABLE promotions (
    id              bigserial PRIMARY KEY,
    from_model      text        NOT NULL,
    to_model        text        NOT NULL,
    reason          text        NOT NULL,
    automatic       boolean     NOT NULL,
    record          jsonb       NOT NULL,
    promoted_at     timestamptz NOT NULL DEFAULT now()
);
