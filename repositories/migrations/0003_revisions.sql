-- revisions: every run of a job's audio through the pipeline (the first run and each replay), with the
-- model and options that define it; a replay with the same model and options is the same revision.

CREATE TABLE revisions (
    job_id        text NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    revision      integer NOT NULL,
    model         text NOT NULL,
    options       jsonb NOT NULL DEFAULT '{}'::jsonb,
    request_key   text NOT NULL,
    replay_id     text,
    status        text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'completed', 'failed')),
    error         text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    completed_at  timestamptz,
    PRIMARY KEY (job_id, revision)
);
CREATE INDEX revisions_request ON revisions (job_id, request_key);

INSERT INTO revisions (job_id, revision, model, options, request_key, status, created_at, completed_at)
SELECT job_id, revision, COALESCE(model, ''), options, 'r' || revision, status, created_at, completed_at FROM jobs;
