-- A row queued by `replay` re-derives an event already applied once: where its snapshot ties
-- with the stored one (same provider time and lifecycle stage), the re-derived content wins,
-- since it is the same event read by the current mapping (src/actors/apply.rs).
ALTER TABLE inbox ADD COLUMN replay BOOLEAN NOT NULL DEFAULT FALSE;
