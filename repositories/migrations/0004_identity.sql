-- identity and access: organisations, users, API keys, refresh tokens, and the audit log.
-- Every tenant-owned row carries org_id; queries filter on it.

CREATE TABLE organizations (
    org_id          text PRIMARY KEY,
    name            text NOT NULL,
    retention_days  integer CHECK (retention_days IS NULL OR retention_days > 0),
    created_at      timestamptz NOT NULL DEFAULT now()
);
INSERT INTO organizations (org_id, name) VALUES ('default', 'Default organisation');

CREATE TABLE users (
    user_id        text PRIMARY KEY,
    org_id         text NOT NULL REFERENCES organizations (org_id) ON DELETE CASCADE,
    email          text NOT NULL UNIQUE,
    password_hash  text NOT NULL,
    role           text NOT NULL CHECK (role IN ('admin', 'org_admin', 'user')),
    disabled       boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX users_org ON users (org_id);

CREATE TABLE api_keys (
    key_id        text PRIMARY KEY,
    org_id        text NOT NULL REFERENCES organizations (org_id) ON DELETE CASCADE,
    user_id       text REFERENCES users (user_id) ON DELETE CASCADE,
    name          text NOT NULL,
    secret_hash   text NOT NULL,
    role          text NOT NULL CHECK (role IN ('admin', 'org_admin', 'user', 'api_client')),
    scopes        text[] NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_used_at  timestamptz,
    revoked_at    timestamptz
);
CREATE INDEX api_keys_org ON api_keys (org_id);

CREATE TABLE refresh_tokens (
    token_id     text PRIMARY KEY,
    user_id      text NOT NULL REFERENCES users (user_id) ON DELETE CASCADE,
    secret_hash  text NOT NULL,
    family       text NOT NULL,
    expires_at   timestamptz NOT NULL,
    used_at      timestamptz,
    revoked_at   timestamptz,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family);

ALTER TABLE jobs ADD COLUMN org_id text NOT NULL DEFAULT 'default' REFERENCES organizations (org_id) ON DELETE CASCADE;
ALTER TABLE jobs ADD COLUMN user_id text;
ALTER TABLE jobs ADD COLUMN key_id text;
CREATE INDEX jobs_org_created ON jobs (org_id, created_at DESC);

CREATE TABLE audit_log (
    id          bigserial PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    org_id      text,
    actor       text NOT NULL,
    action      text NOT NULL,
    resource    text,
    details     jsonb NOT NULL DEFAULT '{}'::jsonb,
    ip          text
);
CREATE INDEX audit_log_org_at ON audit_log (org_id, at DESC);
