-- Cluster membership and shard ownership (DESIGN "Modes", docs/cluster.md). Every node of a
-- cluster heartbeats into `nodes`; connections hash to 256 shards, each with one lease row.
-- `epoch` rises on every change of owner: the fencing token every write of an actor carries
-- (src/store/postgres_coordination.rs). Times are the database's clock, never a node's, so
-- nodes with skewed clocks agree on who holds what.
CREATE TABLE nodes (
    node_id    TEXT PRIMARY KEY,
    started_at TIMESTAMPTZ NOT NULL,
    last_seen  TIMESTAMPTZ NOT NULL
);

CREATE TABLE shard_leases (
    shard       INTEGER PRIMARY KEY,
    owner       TEXT,
    epoch       BIGINT NOT NULL DEFAULT 0,
    expires_at  TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
    acquired_at TIMESTAMPTZ
);

INSERT INTO shard_leases (shard) SELECT generate_series(0, 255);
