-- Reconciliation sweeps: per connection, what changed at the provider since the last sweep
-- (minus an overlap) is pulled and compared, so changes no webhook announced still arrive.

CREATE TABLE sweeps (
    connection_id TEXT PRIMARY KEY REFERENCES connections (id),
    position      BIGINT NOT NULL,
    next_run_at   BIGINT NOT NULL,
    last_run_at   BIGINT,
    last_found    BIGINT NOT NULL DEFAULT 0,
    total_found   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sweeps_due ON sweeps (next_run_at);
