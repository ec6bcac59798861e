-- Every webhook inserted a raw event and an inbox row, and each foreign key on them made
-- Postgres lock the referenced row FOR KEY SHARE: the connection's row (hot: all of its
-- webhooks, and the applies that fence on its lease epoch, meet there) and the raw event the
-- inbox row was inserted beside in the same transaction (a second write to a fresh tuple).
-- Neither reference can break: connections are never deleted, raw events are append-only
-- (raw_events_append_only), and the inbox row is written in the raw event's transaction.
ALTER TABLE raw_events DROP CONSTRAINT raw_events_connection_id_fkey;
ALTER TABLE inbox DROP CONSTRAINT inbox_raw_event_id_fkey;
