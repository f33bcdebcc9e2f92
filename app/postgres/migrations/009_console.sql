-- The analysts' console (README, "Console").
--
-- scored_transactions_card: a review item shows its card's recent stored transactions (the
--   newest few at or before the item's event time). One more b-tree per stored row: the one
--   write-path cost of the console, paid so that an item page stays an index probe however
--   many days are stored (without it, every day partition in range would be read whole).
-- scored_transactions_decided: the rules page counts the transactions each rule decided per
--   day. Partial: only rows a rule or a list decided (a small share of traffic) are indexed,
--   so the count reads a few index pages and the model-decided majority costs nothing.
CREATE INDEX scored_transactions_card ON scored_transactions (card_id, event_time);
CREATE INDEX scored_transactions_decided ON scored_transactions (decided, event_time)
    WHERE decided IS NOT NULL;
