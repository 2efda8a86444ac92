-- privacy: originals of redacted segments (read only with pii:read); search: full text over segments;
-- files: stored recordings with their metadata; jobs: tags, priority, cancellation.

ALTER TABLE transcript_segments ADD COLUMN original_text text;
ALTER TABLE transcript_segments ADD COLUMN original_words jsonb;
ALTER TABLE transcript_segments ADD COLUMN redactions jsonb NOT NULL DEFAULT '[]'::jsonb;
ALTER TABLE transcript_segments ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('english', text)) STORED;
CREATE INDEX transcript_segments_search ON transcript_segments USING gin (search);

ALTER TABLE speaker_profiles ADD COLUMN user_id text;

CREATE TABLE files (
    file_id       text PRIMARY KEY,
    org_id        text NOT NULL REFERENCES organizations (org_id) ON DELETE CASCADE,
    user_id       text,
    object_key    text NOT NULL,
    filename      text,
    content_type  text,
    size_bytes    bigint NOT NULL,
    duration      double precision,
    codec         text,
    container     text,
    sample_rate   integer,
    channels      integer,
    probe_error   text,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX files_org ON files (org_id, created_at DESC);

ALTER TABLE jobs ADD COLUMN file_id text;
ALTER TABLE jobs ADD COLUMN tags text[] NOT NULL DEFAULT '{}';
ALTER TABLE jobs ADD COLUMN priority text NOT NULL DEFAULT 'normal';
ALTER TABLE jobs DROP CONSTRAINT jobs_status_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_status_check
    CHECK (status IN ('queued', 'running', 'completed', 'failed', 'cancelled'));
CREATE INDEX jobs_tags ON jobs USING gin (tags);
