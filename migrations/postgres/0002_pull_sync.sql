-- Pull sync: jobs (backfill, resync) split into windows per list endpoint, each checkpointed
-- in the same transaction as the objects of the page it follows.

CREATE TABLE sync_jobs (
    connection_id TEXT NOT NULL REFERENCES connections (id),
    job           TEXT NOT NULL,
    state         TEXT NOT NULL,
    since         BIGINT NOT NULL,
    until         BIGINT NOT NULL,
    started_at    BIGINT NOT NULL,
    finished_at   BIGINT,
    error         TEXT,
    PRIMARY KEY (connection_id, job)
);

CREATE TABLE sync_windows (
    connection_id TEXT NOT NULL,
    job           TEXT NOT NULL,
    stream        TEXT NOT NULL,
    window_start  BIGINT NOT NULL,
    window_end    BIGINT NOT NULL,
    cursor        TEXT,
    reached       BIGINT,
    done          BOOLEAN NOT NULL DEFAULT FALSE,
    objects       BIGINT NOT NULL DEFAULT 0,
    pages         BIGINT NOT NULL DEFAULT 0,
    requests      BIGINT NOT NULL DEFAULT 0,
    updated_at    BIGINT NOT NULL,
    PRIMARY KEY (connection_id, job, stream, window_start)
);
