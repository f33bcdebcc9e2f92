-- Shadow rules (issue 30): a rule with shadow = true (and enabled = false) runs on live traffic
-- and counts what it would have decided without deciding. Its hits are stored with each
-- scored record as the comma-separated ids of the shadow rules that matched (NULL, so no
-- bytes, when none did), which is what `GET /v1/rules/{id}/shadow` counts over a window and
-- joins to labels for precision: the same figures as a backtest of that window.
ALTER TABLE rules ADD COLUMN shadow boolean NOT NULL DEFAULT false;
ALTER TABLE rules ADD CONSTRAINT rules_shadow_not_enabled CHECK (NOT (shadow AND enabled));
ALTER TABLE scored_transactions ADD COLUMN shadow_hits text;
