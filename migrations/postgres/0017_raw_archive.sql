-- The raw archive (docs/archive.md): closed time partitions of raw_events are written to S3 as
-- segments (compressed JSON lines and a manifest per segment, chained by hash), recorded here,
-- and trimmed from the database past the hot window.
--
-- raw_events stays append-only with exactly two exceptions, both checked by its guard:
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
CREATE TRIGGER archive_segments_append_only BEFORE UPDATE OR DELETE ON archive_segments
FOR EACH ROW EXECUTE FUNCTION billsync_refuse_change();

ALTER TABLE raw_events ADD COLUMN archive_segment BIGINT;
CREATE INDEX raw_events_unarchived ON raw_events (received_at) WHERE archive_segment IS NULL;
CREATE INDEX raw_events_archived ON raw_events (received_at) WHERE archive_segment IS NOT NULL;

CREATE FUNCTION billsync_raw_events_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        IF OLD.archive_segment IS NULL AND NEW.archive_segment IS NOT NULL
           AND NEW.id = OLD.id AND NEW.connection_id = OLD.connection_id
           AND NEW.provider_event_id = OLD.provider_event_id AND NEW.event_type = OLD.event_type
           AND NEW.source = OLD.source AND NEW.received_at = OLD.received_at
           AND NEW.body_sha256 = OLD.body_sha256 AND NEW.body_zstd = OLD.body_zstd
           AND EXISTS (SELECT 1 FROM archive_segments s WHERE s.seq = NEW.archive_segment) THEN
            RETURN NEW;
        END IF;
    ELSIF OLD.archive_segment IS NOT NULL THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'raw_events is append-only: a row is only marked archived once, and only an archived row is trimmed';
END;
$$;
DROP TRIGGER raw_events_append_only ON raw_events;
CREATE TRIGGER raw_events_append_only BEFORE UPDATE OR DELETE ON raw_events
FOR EACH ROW EXECUTE FUNCTION billsync_raw_events_guard();
