-- streamscribe: jobs, their per-stage progress, and transcripts by revision.

CREATE TABLE jobs (
    job_id        text PRIMARY KEY,
    stream_id     text NOT NULL UNIQUE,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    source        text NOT NULL DEFAULT 'upload',
    filename      text,
    content_type  text,
    size_bytes    bigint,
    object_key    text,
    model         text,
    language      text,
    options       jsonb NOT NULL DEFAULT '{}'::jsonb,
    duration      double precision,
    error         text,
    error_stage   text,
    revision      integer NOT NULL DEFAULT 1,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    completed_at  timestamptz
);
CREATE INDEX jobs_created_at ON jobs (created_at DESC);
CREATE INDEX jobs_status ON jobs (status);

CREATE TABLE job_stages (
    job_id      text NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    revision    integer NOT NULL,
    stage       text NOT NULL,
    state       text NOT NULL,
    progress    double precision,
    message     text,
    error       text,
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, revision, stage)
);

CREATE TABLE transcripts (
    job_id            text NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    revision          integer NOT NULL,
    stream_id         text NOT NULL,
    status            text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    model             text NOT NULL,
    pipeline_version  text NOT NULL,
    language          text,
    duration          double precision,
    segment_count     integer,
    text              text,
    error             text,
    created_at        timestamptz NOT NULL DEFAULT now(),
    completed_at      timestamptz,
    PRIMARY KEY (job_id, revision)
);

CREATE TABLE transcript_segments (
    job_id            text NOT NULL,
    revision          integer NOT NULL,
    segment_id        text NOT NULL,
    idx               integer NOT NULL,
    start_s           double precision NOT NULL,
    end_s             double precision NOT NULL,
    text              text NOT NULL,
    speaker           text,
    channel           integer,
    confidence        double precision,
    words             jsonb NOT NULL DEFAULT '[]'::jsonb,
    model             text NOT NULL,
    pipeline_version  text NOT NULL,
    created_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, revision, segment_id),
    FOREIGN KEY (job_id, revision) REFERENCES transcripts (job_id, revision) ON DELETE CASCADE
);
CREATE INDEX transcript_segments_time ON transcript_segments (job_id, revision, start_s, idx);
