-- The raw archive (docs/archive.md): closed time partitions of raw_events are written to S3 as
-- segments (compressed JSON lines and a manifest per segment, chained by hash), recorded here,
-- and trimmed from the database past the hot window.
--
-- raw_events stays append-only with exactly two exceptions, both checked by its guards:
--   * an UPDATE that only sets archive_segment, once, to a recorded segment;
--   * a DELETE of a row whose archive_segment is set (the archive write was confirmed first).

CREATE TABLE archive_segments (
    seq             BIGINT PRIMARY KEY,
    partition_start BIGINT NOT NULL,
    partition_end   BIGINT NOT NULL,
    manifest_key    TEXT NOT NULL,
    manifest_sha256 TEXT NOT NULL,
    events          BIGINT NOT NULL,
    recorded_at     BIGINT NOT NULL
);
CREATE INDEX archive_segments_partition ON archive_segments (partition_start, partition_end);
CREATE TRIGGER archive_segments_no_update BEFORE UPDATE ON archive_segments
BEGIN SELECT RAISE(ABORT, 'archive_segments is append-only'); END;
CREATE TRIGGER archive_segments_no_delete BEFORE DELETE ON archive_segments
BEGIN SELECT RAISE(ABORT, 'archive_segments is append-only'); END;

ALTER TABLE raw_events ADD COLUMN archive_segment BIGINT;
CREATE INDEX raw_events_unarchived ON raw_events (received_at) WHERE archive_segment IS NULL;
CREATE INDEX raw_events_archived ON raw_events (received_at) WHERE archive_segment IS NOT NULL;

DROP TRIGGER raw_events_no_update;
DROP TRIGGER raw_events_no_delete;
CREATE TRIGGER raw_events_no_update BEFORE UPDATE ON raw_events
WHEN NOT (OLD.archive_segment IS NULL AND NEW.archive_segment IS NOT NULL
    AND NEW.id = OLD.id AND NEW.connection_id = OLD.connection_id
    AND NEW.provider_event_id = OLD.provider_event_id AND NEW.event_type = OLD.event_type
    AND NEW.source = OLD.source AND NEW.received_at = OLD.received_at
    AND NEW.body_sha256 = OLD.body_sha256 AND NEW.body_zstd = OLD.body_zstd
    AND EXISTS (SELECT 1 FROM archive_segments s WHERE s.seq = NEW.archive_segment))
BEGIN SELECT RAISE(ABORT, 'raw_events is append-only: a row is only marked archived once'); END;
CREATE TRIGGER raw_events_no_delete BEFORE DELETE ON raw_events
WHEN OLD.archive_segment IS NULL
BEGIN SELECT RAISE(ABORT, 'raw_events is append-only: only an archived row is trimmed'); END;
