-- speakers: enrolled voice profiles, the speakers of each transcript revision, and diarization turns.

CREATE TABLE speaker_profiles (
    profile_id      text PRIMARY KEY,
    org_id          text NOT NULL DEFAULT 'default',
    name            text NOT NULL,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'ready', 'failed')),
    embedding       real[],
    voiced_seconds  double precision,
    backend         text,
    samples         integer NOT NULL DEFAULT 0,
    object_keys     text[] NOT NULL DEFAULT '{}',
    error           text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX speaker_profiles_org ON speaker_profiles (org_id, status);

CREATE TABLE transcript_speakers (
    job_id         text NOT NULL,
    revision       integer NOT NULL,
    speaker_id     text NOT NULL,
    label          text NOT NULL,
    name           text,
    renamed        boolean NOT NULL DEFAULT false,
    channel        integer,
    talk_time      double precision NOT NULL DEFAULT 0,
    identified_as  text,
    similarity     double precision,
    PRIMARY KEY (job_id, revision, speaker_id),
    FOREIGN KEY (job_id, revision) REFERENCES transcripts (job_id, revision) ON DELETE CASCADE
);

CREATE TABLE speaker_turns (
    job_id      text NOT NULL,
    revision    integer NOT NULL,
    idx         integer NOT NULL,
    start_s     double precision NOT NULL,
    end_s       double precision NOT NULL,
    speaker_id  text NOT NULL,
    PRIMARY KEY (job_id, revision, idx),
    FOREIGN KEY (job_id) REFERENCES jobs (job_id) ON DELETE CASCADE
);
