-- An actor reads its connection's due confirmations (`connection_id = $1 AND due_at <= $2
-- ORDER BY due_at`). With only the primary key and `refetches_due`, Postgres without fresh
-- statistics combined both in a bitmap scan of every due row on the node: 3.7 ms per actor
-- with 48,000 connections each holding one pending read (EXPLAIN ANALYZE), the whole of a
-- scan over all of them. This index answers the query alone whatever the statistics say.
CREATE INDEX refetches_by_connection ON refetches (connection_id, due_at);
