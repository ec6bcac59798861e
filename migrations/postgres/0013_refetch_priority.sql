-- Confirmation reads of webhook changes (and the reads thin webhooks need) come before the
-- reads of objects a sweep found: real-time confirmations must not queue behind a growing
-- reconciliation backlog (src/actors/confirm.rs). 0 = real time, 1 = reconciliation; rows
-- from before this migration are webhooks' or sweeps', and are all read as real time.
ALTER TABLE refetches ADD COLUMN priority BIGINT NOT NULL DEFAULT 0;
CREATE INDEX refetches_by_connection_priority ON refetches (connection_id, priority, due_at);
