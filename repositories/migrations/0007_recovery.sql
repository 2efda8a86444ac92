-- recovery: the reconciler (streamscribe.recovery) runs a stuck request again as a new revision and counts the
-- runs of one request (attempt 1 is the first); recovered_at is when it last acted on a revision (a live session
-- it closed), from when the revision is given time again. See docs/recovery.md.

ALTER TABLE revisions ADD COLUMN attempt integer NOT NULL DEFAULT 1;
ALTER TABLE revisions ADD COLUMN recovered_at timestamptz;
CREATE INDEX jobs_in_flight ON jobs (created_at) WHERE status IN ('queued', 'running');
