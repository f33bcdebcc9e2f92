-- Cases (docs/cases.md): the alerts of one card grouped into one case an analyst team works.
--
-- An alert is a stored transaction decided review or carrying a watch-list hit (reason code
-- list_watch). It joins its card's open case (one not closed: a partial unique index) or opens
-- one, in the statement that stores the record: an AFTER INSERT trigger on scored_transactions
-- whose WHEN clause keeps every other row (most traffic) at one comparison, and which leaves the
-- hot insert statement alone. priority: 1 high, 2 medium, 3 low, from the alert's score
-- (>= 0.9, >= 0.5, below); an alert with a higher priority raises its case's, never lowers it.
-- opened_at is wall-clock: the SLA age of a case is how long analysts have had it.
-- assignee / claimed_until: the claim, a lock that expires (a claim is live while
-- claimed_until > now). Every analyst's action on a case is one case_audit row (who = the key's
-- name); an alert joining is its case_alerts row (added_at), shown in the audit as riverguard's.
CREATE TABLE cases (
    id             bigserial PRIMARY KEY,
    card_id        text        NOT NULL,
    status         text        NOT NULL DEFAULT 'open'
                               CHECK (status IN ('open', 'investigating', 'closed')),
    outcome        text        CHECK (outcome IN ('fraud', 'legitimate', 'inconclusive')),
    priority       smallint    NOT NULL CHECK (priority BETWEEN 1 AND 3),
    opened_at      timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    assignee       text,
    claimed_until  timestamptz,
    closed_at      timestamptz,
    closed_by      text,
    CHECK ((status = 'closed') = (outcome IS NOT NULL)),
    CHECK ((assignee IS NULL) = (claimed_until IS NULL))
);
CREATE UNIQUE INDEX cases_open_card ON cases (card_id) WHERE status <> 'closed';
CREATE INDEX cases_inbox ON cases (priority, opened_at, id) WHERE status <> 'closed';
CREATE INDEX cases_closed ON cases (closed_at DESC) WHERE status = 'closed';

CREATE TABLE case_alerts (
    transaction_id  text PRIMARY KEY,
    case_id         bigint      NOT NULL REFERENCES cases (id),
    event_time      timestamptz NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('review', 'watch')),
    score           double precision NOT NULL,
    added_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX case_alerts_case ON case_alerts (case_id, event_time);

CREATE TABLE case_notes (
    id       bigserial PRIMARY KEY,
    case_id  bigint      NOT NULL REFERENCES cases (id),
    author   text        NOT NULL,
    at       timestamptz NOT NULL,
    body     text        NOT NULL
);
CREATE INDEX case_notes_case ON case_notes (case_id, id);

CREATE TABLE case_audit (
    id       bigserial PRIMARY KEY,
    case_id  bigint      NOT NULL REFERENCES cases (id),
    at       timestamptz NOT NULL,
    who      text        NOT NULL,
    action   text        NOT NULL,
    detail   jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX case_audit_case ON case_audit (case_id, id);

-- The usual alert joins an open case at a priority it does not raise: one index probe and a
-- share lock (no new row version, no index entries: an upsert would write both every time, and
-- doubled the cost of an alert). The lock makes a concurrent close wait for this record's
-- commit, so the close labels it too. An alert's own row is its audit entry (case_alerts).
CREATE FUNCTION case_alert() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    rank smallint := CASE WHEN NEW.score >= 0.9 THEN 1 WHEN NEW.score >= 0.5 THEN 2 ELSE 3 END;
    kind text := CASE WHEN NEW.decision = 'review' THEN 'review' ELSE 'watch' END;
    joined bigint;
    current smallint;
BEGIN
    SELECT id, priority INTO joined, current FROM cases
    WHERE card_id = NEW.card_id AND status <> 'closed' FOR SHARE;
    IF joined IS NULL THEN
        INSERT INTO cases (card_id, priority) VALUES (NEW.card_id, rank)
        ON CONFLICT (card_id) WHERE status <> 'closed'
        DO UPDATE SET priority = least(cases.priority, EXCLUDED.priority), updated_at = now()
        RETURNING id INTO joined;
    ELSIF rank < current THEN
        UPDATE cases SET priority = rank, updated_at = now() WHERE id = joined;
    END IF;
    INSERT INTO case_alerts (transaction_id, case_id, event_time, kind, score)
    VALUES (NEW.transaction_id, joined, NEW.event_time, kind, NEW.score)
    ON CONFLICT (transaction_id) DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER scored_transactions_case_alert AFTER INSERT ON scored_transactions
    FOR EACH ROW WHEN (NEW.decision = 'review' OR NEW.reasons LIKE '%"list_watch"%')
    EXECUTE FUNCTION case_alert();
