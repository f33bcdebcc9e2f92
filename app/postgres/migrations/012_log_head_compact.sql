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
