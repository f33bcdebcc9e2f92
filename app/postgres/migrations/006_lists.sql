-- Allow / block / watch lists (README, "Lists"). Every entry ever made stays: a removal sets
-- removed_at / removed_by. One active (not removed) entry per (entity, value, kind).
-- list_version moves with every change, in the changing transaction: processes poll it (one
-- row) and reload their in-memory index when it moved. A counter row rather than max(id):
-- ids are handed out before commit, so a later id can commit first and an earlier one be missed.
CREATE TABLE list_entries (
    id          bigserial PRIMARY KEY,
    entity      text        NOT NULL CHECK (entity IN ('card', 'merchant', 'device', 'country')),
    value       text        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('allow', 'block', 'watch')),
    reason      text        NOT NULL,
    expires_at  timestamptz,
    created_at  timestamptz NOT NULL,
    created_by  text        NOT NULL,
    removed_at  timestamptz,
    removed_by  text,
    CHECK ((removed_at IS NULL) = (removed_by IS NULL))
);
CREATE UNIQUE INDEX list_entries_active ON list_entries (entity, value, kind)
    WHERE removed_at IS NULL;
-- prefix search on values (GET /v1/lists?prefix=)
CREATE INDEX list_entries_value ON list_entries (value text_pattern_ops);

CREATE TABLE list_version (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version   bigint NOT NULL
);
INSERT INTO list_version (version) VALUES (0);
