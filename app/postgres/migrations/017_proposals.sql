-- Four-eyes (docs/decisions.md, "Four-eyes"): with RIVERGUARD_DECISIONS__FOUR_EYES=true a rule
-- change (create, update — enabling and disabling are updates — or delete) or a list change
-- (add, remove) by one key is a proposal until a second key, with the approve scope and
-- another name, approves it. Every proposal stays: approved, rejected, or failed (approved,
-- but the change could no longer be applied: the rule now exists, the entry is gone...).
-- before: what the change replaces, at proposal time (the diff is before -> payload);
-- backtest: a rule's backtest over the last 7 days, at proposal time.
CREATE TABLE proposals (
    id           bigserial PRIMARY KEY,
    kind         text        NOT NULL CHECK (kind IN ('rule_create', 'rule_update', 'rule_delete',
                                                      'list_add', 'list_remove')),
    target       text        NOT NULL,
    payload      jsonb       NOT NULL,
    before       jsonb,
    backtest     jsonb,
    proposed_by  text        NOT NULL,
    proposed_at  timestamptz NOT NULL,
    status       text        NOT NULL DEFAULT 'pending'
                             CHECK (status IN ('pending', 'approved', 'rejected', 'failed')),
    decided_by   text,
    decided_at   timestamptz,
    outcome      text,
    CHECK ((status = 'pending') = (decided_by IS NULL)),
    -- no self-approval, whatever the code above does; a proposer may withdraw (reject) their own
    CHECK (status NOT IN ('approved', 'failed') OR decided_by <> proposed_by)
);
CREATE INDEX proposals_pending ON proposals (id) WHERE status = 'pending';
