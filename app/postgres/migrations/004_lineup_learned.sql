-- A model's version is "<definition>.<labels learned>" and changes with every label: kept in
-- the lineup, it made a new lineup row per learned label (an unbounded table). The lineup
-- now keeps the definition version, and each row the labels learned, one per lineup entry.
ALTER TABLE scored_transactions ADD COLUMN learned int[];
