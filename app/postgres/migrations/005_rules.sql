-- Decision rules (docs/rules.md): the current version of each rule, the audit of every
-- change, and one change counter that processes poll to know when to reload.

CREATE TABLE rules (
    id           text PRIMARY KEY,
    name         text    NOT NULL,
    expression   text    NOT NULL,
    action       text    NOT NULL CHECK (action IN ('approve', 'review', 'decline', 'reason')),
    reason_code  text    NOT NULL,
    priority     integer NOT NULL,
    enabled      boolean NOT NULL,
    version      integer NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);

-- One row per change: who (an API key's name, "admin", or "file:<name>") and the change as
-- {field: [old, new]} (a creation has old null, a deletion new null). Kept after a deletion.
CREATE TABLE rule_versions (
    seq          bigserial PRIMARY KEY,
    rule_id      text    NOT NULL,
    version      integer NOT NULL,
    changed_at   timestamptz NOT NULL DEFAULT now(),
    changed_by   text    NOT NULL,
    change       jsonb   NOT NULL
);
CREATE INDEX rule_versions_rule ON rule_versions (rule_id, seq);

-- Bumped in the transaction of every change (so it moves in commit order, unlike a serial).
CREATE TABLE rules_state (
    only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    version   bigint  NOT NULL
);
INSERT INTO rules_state (version) VALUES (0);
