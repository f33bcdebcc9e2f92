-- One learner at a time, fenced: the lease names the current leader's epoch. Every learner
-- write checks its epoch against this row in the same transaction (FOR SHARE), and a new
-- leader bumps the epoch (which waits for those writes), so a paused, stale learner writes
-- nothing once another has taken over.
CREATE TABLE learner_lease (
    id          int PRIMARY KEY CHECK (id = 1),
    epoch       bigint      NOT NULL,
    holder      text        NOT NULL DEFAULT '',
    holder_pid  int,                                   -- the leader's lock session (backend pid)
    renewed_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO learner_lease (id, epoch) VALUES (1, 0);

-- The learning log is gapless: the one learner assigns seq = last + 1 (a bigserial is not
-- assigned in commit order, so a follower reading "seq > n" could skip a late commit).
ALTER TABLE learn_log ALTER COLUMN seq DROP DEFAULT;
ALTER TABLE learn_log ADD COLUMN epoch bigint NOT NULL DEFAULT 0;

-- Labels are first recorded as received (by any process) and claimed by the learner in order.
CREATE INDEX labels_received ON labels (seq) WHERE status = 'received';
