-- Sweeps of providers whose events list is walked by cursor rather than by time (Paddle's
-- `/events?after=<event id>`) resume where the previous sweep ended, instead of re-reading
-- every retained event (src/actors/sweep.rs). NULL: the sweep starts from `position`.
ALTER TABLE sweeps ADD COLUMN resume_cursor TEXT;
