-- The decision layer (README, "Decisions").
--
-- decided: who decided when the other columns cannot tell: 'rule:<id>' (a rule) or 'list' (an
--   allow/block list entry); NULL when the model or the warm-up decided (the reasons say which).
--   A NULL costs nothing but its bit in the row's null bitmap.
-- scored_transactions_scored_at: a BRIN index (a few pages for millions of rows: rows arrive in
--   scored_at order) for the budget window, which reads the scores stored since it last looked.
ALTER TABLE scored_transactions ADD COLUMN decided text;
CREATE INDEX scored_transactions_scored_at ON scored_transactions USING brin (scored_at);
