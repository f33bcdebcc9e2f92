-- Console sessions held server-side (README, "Console"): a sign-out deletes the row, so the
-- session ends in every process at once; a session names its key by fingerprint (a keyed MAC
-- of the key's digest, never the key or its name), so a key rotated or removed refuses its
-- sessions. The id is stored hashed: reading this table yields no usable session. Rows past
-- expires_at are refused on read and deleted at the next sign-in (a few rows per analyst).
CREATE TABLE console_sessions (
    id_hash     bytea PRIMARY KEY,
    fingerprint text NOT NULL,
    csrf        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL
);
