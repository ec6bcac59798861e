-- The spine: connections, immutable raw events, the inbox, versioned objects, the change feed.
-- Times are microseconds since the Unix epoch (BIGINT) in both stores.

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE connections (
    id                      TEXT PRIMARY KEY,
    merchant_id             TEXT NOT NULL,
    provider                TEXT NOT NULL,
    account_id              TEXT NOT NULL,
    sealed_webhook_secrets  BLOB NOT NULL,
    sealed_api_key          BLOB,
    api_base_url            TEXT,
    rate_limit_per_sec      BIGINT,
    reconcile_interval_secs BIGINT,
    api_version             TEXT,
    state                   TEXT NOT NULL DEFAULT 'active',
    lease_epoch             BIGINT NOT NULL DEFAULT 1,
    created_at              BIGINT NOT NULL,
    updated_at              BIGINT NOT NULL,
    last_applied_at         BIGINT
);
CREATE INDEX connections_merchant ON connections (merchant_id, id);

CREATE TABLE raw_events (
    id                INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id     TEXT NOT NULL REFERENCES connections (id),
    provider_event_id TEXT NOT NULL,
    event_type        TEXT NOT NULL,
    source            TEXT NOT NULL,
    received_at       BIGINT NOT NULL,
    body_zstd         BLOB NOT NULL,
    body_sha256       TEXT NOT NULL,
    UNIQUE (connection_id, provider_event_id)
);
CREATE TRIGGER raw_events_no_update BEFORE UPDATE ON raw_events
BEGIN SELECT RAISE(ABORT, 'raw_events is append-only'); END;
CREATE TRIGGER raw_events_no_delete BEFORE DELETE ON raw_events
BEGIN SELECT RAISE(ABORT, 'raw_events is append-only'); END;

CREATE TABLE inbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    connection_id   TEXT NOT NULL,
    raw_event_id    BIGINT NOT NULL REFERENCES raw_events (id),
    received_at     BIGINT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    dead            BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX inbox_connection ON inbox (connection_id, id);
CREATE INDEX inbox_due ON inbox (next_attempt_at) WHERE dead = FALSE;

CREATE TABLE objects (
    connection_id       TEXT NOT NULL,
    object_type         TEXT NOT NULL,
    provider_id         TEXT NOT NULL,
    id                  TEXT NOT NULL,
    merchant_id         TEXT NOT NULL,
    version             BIGINT NOT NULL,
    status              TEXT NOT NULL,
    deleted             BOOLEAN NOT NULL,
    data                TEXT NOT NULL,
    content_hash        TEXT NOT NULL,
    order_key           BIGINT NOT NULL,
    tie_rank            BIGINT NOT NULL,
    provider_updated_at BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL,
    lease_epoch         BIGINT NOT NULL,
    PRIMARY KEY (connection_id, object_type, provider_id)
);
CREATE INDEX objects_by_id ON objects (merchant_id, object_type, id);
CREATE INDEX objects_by_update ON objects (merchant_id, object_type, updated_at, id);

CREATE TABLE object_versions (
    connection_id       TEXT NOT NULL,
    object_type         TEXT NOT NULL,
    provider_id         TEXT NOT NULL,
    version             BIGINT NOT NULL,
    id                  TEXT NOT NULL,
    merchant_id         TEXT NOT NULL,
    status              TEXT NOT NULL,
    deleted             BOOLEAN NOT NULL,
    data                TEXT NOT NULL,
    provider_updated_at BIGINT NOT NULL,
    recorded_at         BIGINT NOT NULL,
    source              TEXT NOT NULL,
    reason              TEXT NOT NULL,
    PRIMARY KEY (connection_id, object_type, provider_id, version)
);
CREATE INDEX object_versions_by_id ON object_versions (merchant_id, object_type, id, version);
CREATE TRIGGER object_versions_no_update BEFORE UPDATE ON object_versions
BEGIN SELECT RAISE(ABORT, 'object_versions is append-only'); END;
CREATE TRIGGER object_versions_no_delete BEFORE DELETE ON object_versions
BEGIN SELECT RAISE(ABORT, 'object_versions is append-only'); END;

CREATE TABLE merchant_seqs (
    merchant_id TEXT PRIMARY KEY,
    last_seq    BIGINT NOT NULL
);

CREATE TABLE changes (
    merchant_id   TEXT NOT NULL,
    seq           BIGINT NOT NULL,
    connection_id TEXT NOT NULL,
    object_type   TEXT NOT NULL,
    id            TEXT NOT NULL,
    version       BIGINT NOT NULL,
    deleted       BOOLEAN NOT NULL,
    recorded_at   BIGINT NOT NULL,
    PRIMARY KEY (merchant_id, seq)
);

CREATE TABLE audit_log (
    id     INTEGER PRIMARY KEY AUTOINCREMENT,
    at     BIGINT NOT NULL,
    actor  TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
