-- Tokens besides the configured admin token (docs/api.md "Tokens"): only the SHA-256 of a
-- token is kept; a revoked token keeps its row (the audit log names it) with `revoked_at` set.
CREATE TABLE api_tokens (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    scope       TEXT NOT NULL,
    merchant_id TEXT,
    digest      TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);

-- When an inbox item was dead-lettered (docs/api.md "Dead letters"); rows dead before this
-- migration take the time they were received.
ALTER TABLE inbox ADD COLUMN dead_at BIGINT;
UPDATE inbox SET dead_at = received_at WHERE dead;
CREATE INDEX inbox_dead ON inbox (connection_id, id) WHERE dead;
