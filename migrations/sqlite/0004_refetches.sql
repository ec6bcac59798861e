-- Pending confirmations: every object a webhook changed is read back from the provider API
-- until the API agrees or shows something newer. Durable, so restarts keep them.

CREATE TABLE refetches (
    connection_id TEXT NOT NULL,
    object_type   TEXT NOT NULL,
    provider_id   TEXT NOT NULL,
    due_at        BIGINT NOT NULL,
    attempts      BIGINT NOT NULL DEFAULT 0,
    first_seen_at BIGINT NOT NULL,
    PRIMARY KEY (connection_id, object_type, provider_id)
);
CREATE INDEX refetches_due ON refetches (due_at);
