-- Promotions are requests the leading learner applies (README, "Models").
--
-- A promotion may be asked of any process, a scorer included, but only the learner owns the
-- champion: a scorer's own pool is replaced by the next bundle. So the route records a
-- request here and the leader applies it, in order, writing the audit row in the same fenced
-- transaction that settles the request: one request, at most one audit row (request_id is
-- unique in the audit), and a stale leader writes neither.
CREATE TABLE promotion_requests (
    id              bigserial   PRIMARY KEY,
    to_model        text        NOT NULL,
    reason          text        NOT NULL,
    requested_by    text        NOT NULL DEFAULT '',
    requested_at    timestamptz NOT NULL DEFAULT now(),
    status          text        NOT NULL DEFAULT 'pending'
                                CHECK (status IN ('pending', 'applied', 'refused')),
    outcome         text,                               -- why refused (already champion, ...)
    settled_at      timestamptz,
    epoch           bigint                              -- the learner epoch that settled it
);
CREATE INDEX promotion_requests_pending ON promotion_requests (id) WHERE status = 'pending';

ALTER TABLE promotions ADD COLUMN request_id bigint UNIQUE REFERENCES promotion_requests (id);
