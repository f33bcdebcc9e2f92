-- The analysts' console (README, "Console").
--
-- scored_transactions_card: a review item shows its card's recent stored transactions (the
--   newest few at or before the item's event time). One more index entry per stored row: the
--   one write-path cost of the console, paid so that an item page stays an index probe however
--   many days are stored (without it, every day partition in range would be read whole). A
--   hash index (a 4-byte hash per row: ~25 B per transaction against ~80 B for a b-tree on
--   (card_id, event_time), measured by bench/storage.py) finds a card's rows; the newest few
--   are then sorted from those, a few hundred at most for the busiest card.
-- scored_transactions_decided: the rules page counts the transactions each rule decided per
--   day. Partial: only rows a rule or a list decided (a small share of traffic) are indexed,
--   so the count reads a few index pages and the model-decided majority costs nothing.
CREATE INDEX scored_transactions_card ON scored_transactions USING hash (card_id);
CREATE INDEX scored_transactions_decided ON scored_transactions (decided, event_time)
    WHERE decided IS NOT NULL;
