-- The references between objects of a connection (`customer_id`, `invoice_id`,
-- `subscription_id`), kept by the cross-object quality checks so that the objects naming one
-- that just arrived or changed are found by index, not by reading every object's data.

CREATE TABLE quality_references (
    connection_id TEXT NOT NULL,
    target_id     TEXT NOT NULL,
    target_type   TEXT NOT NULL,
    object_type   TEXT NOT NULL,
    provider_id   TEXT NOT NULL,
    PRIMARY KEY (connection_id, target_id, object_type, provider_id)
);
CREATE INDEX quality_references_by_source ON quality_references (connection_id, object_type, provider_id);
