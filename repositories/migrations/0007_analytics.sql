-- analytics: each organization's phrase lists, the analytics of every call revision (projected from
-- analytics.calls) and the windows of the live aggregates (projected from analytics.windows).

CREATE TABLE analytics_phrases (
    phrase_id   text PRIMARY KEY,
    org_id      text NOT NULL REFERENCES organizations (org_id) ON DELETE CASCADE,
    phrase      text NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('required', 'watched')),
    speaker     text,
    threshold   integer NOT NULL DEFAULT 85 CHECK (threshold BETWEEN 50 AND 100),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX analytics_phrases_unique ON analytics_phrases (org_id, lower(phrase), lower(COALESCE(speaker, '')));

CREATE TABLE analytics_calls (
    job_id            text NOT NULL REFERENCES jobs (job_id) ON DELETE CASCADE,
    revision          integer NOT NULL,
    org_id            text NOT NULL,
    stream_id         text NOT NULL,
    completed_at      timestamptz NOT NULL,
    duration          double precision NOT NULL,
    speech_time       double precision NOT NULL,
    overlap_time      double precision NOT NULL,
    silence_total     double precision NOT NULL,
    turns             integer NOT NULL,
    interruptions     integer NOT NULL,
    words             integer NOT NULL,
    sentiment         double precision,
    phrase_hits       integer NOT NULL,
    required_missing  integer NOT NULL,
    metrics           jsonb NOT NULL,
    produced_at       timestamptz NOT NULL,
    PRIMARY KEY (job_id, revision)
);
CREATE INDEX analytics_calls_org ON analytics_calls (org_id, completed_at DESC);

CREATE TABLE analytics_windows (
    org_id            text NOT NULL REFERENCES organizations (org_id) ON DELETE CASCADE,
    granularity       text NOT NULL CHECK (granularity IN ('hour', 'day')),
    speaker           text NOT NULL DEFAULT '',
    window_start      timestamptz NOT NULL,
    window_end        timestamptz NOT NULL,
    calls             integer NOT NULL,
    audio_ms          bigint NOT NULL,
    speech_ms         bigint NOT NULL,
    talk_ms           bigint NOT NULL,
    talk_share_bp     bigint NOT NULL,
    interruptions     integer NOT NULL,
    interrupted       integer NOT NULL,
    overlap_ms        bigint NOT NULL,
    silence_ms        bigint NOT NULL,
    words             bigint NOT NULL,
    required_missing  integer NOT NULL,
    phrase_hits       jsonb NOT NULL DEFAULT '{}'::jsonb,
    version           bigint NOT NULL,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, granularity, speaker, window_start)
);
