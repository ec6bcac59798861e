-- Data-quality findings: checks that failed on a stored version (the version is kept).

CREATE TABLE quality_findings (
    connection_id TEXT NOT NULL,
    object_type   TEXT NOT NULL,
    provider_id   TEXT NOT NULL,
    version       BIGINT NOT NULL,
    id            TEXT NOT NULL,
    merchant_id   TEXT NOT NULL,
    code          TEXT NOT NULL,
    message       TEXT NOT NULL,
    recorded_at   BIGINT NOT NULL,
    PRIMARY KEY (connection_id, object_type, provider_id, version, code)
);
CREATE INDEX quality_findings_by_merchant ON quality_findings (merchant_id, recorded_at);
