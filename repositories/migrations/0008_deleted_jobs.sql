-- deleted jobs: the ids of jobs deleted or erased (DELETE /v1/jobs/{id}, an organization's or user's erasure,
-- retention). Results of a deleted job still in flight keep arriving from the pipeline; the materializer makes a
-- job row for a stream it has not seen (a stream produced straight to Kafka), and without this it made one for
-- the deleted job too, bringing it back as a running "producer" job with whatever results followed.

CREATE TABLE deleted_jobs (
    job_id text PRIMARY KEY,
    deleted_at timestamptz NOT NULL DEFAULT now()
);
