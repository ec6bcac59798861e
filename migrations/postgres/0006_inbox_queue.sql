-- The inbox is a queue: a row lives from the webhook's commit to its apply, milliseconds
-- under load, so its indexes hold far more dead entries than live ones until a vacuum. The
-- actors' query (a connection's pending rows in id order) gets an index of exactly that, and
-- the table is vacuumed after a fixed number of dead rows instead of a fifth of the table.
DROP INDEX inbox_connection;
CREATE INDEX inbox_pending ON inbox (connection_id, id) WHERE dead = FALSE;
ALTER TABLE inbox SET (
    autovacuum_vacuum_scale_factor = 0,
    autovacuum_vacuum_threshold = 2000,
    autovacuum_vacuum_cost_delay = 0
);
