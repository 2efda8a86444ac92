-- webhooks: per-organization subscriptions to job events, and the delivery log (one row per subscription
-- and event, one row per attempt). See docs/webhooks.md.

CREATE TABLE webhook_subscriptions (
    subscription_id  text PRIMARY KEY,
    org_id           text NOT NULL REFERENCES organizations (org_id) ON DELETE CASCADE,
    url              text NOT NULL,
    -- the shared HMAC secret, which the platform must read back to sign: encrypted (AES-256-GCM) under the
    -- storage master keyring, bound to subscription_id (connectors/webhooks/sealing.py); never a hash
    secret_sealed    text NOT NULL,
    secret_hint      text NOT NULL,
    events           text[] NOT NULL CHECK (cardinality(events) > 0),
    description      text,
    active           boolean NOT NULL DEFAULT true,
    created_by       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_subscriptions_org ON webhook_subscriptions (org_id, created_at);

CREATE TABLE webhook_deliveries (
    delivery_id      text PRIMARY KEY,
    subscription_id  text NOT NULL REFERENCES webhook_subscriptions (subscription_id) ON DELETE CASCADE,
    org_id           text NOT NULL,
    -- deterministic per pipeline event (connectors/webhooks/events.py): a redelivered Kafka event finds its
    -- row already here and adds nothing
    event_id         text NOT NULL,
    event_type       text NOT NULL,
    job_id           text,
    revision         integer,
    payload          jsonb NOT NULL,
    -- pending: not tried yet; failed: the last attempt failed and another is scheduled; delivered: a 2xx;
    -- gave_up: every attempt of the retry schedule failed
    status           text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'delivered', 'failed', 'gave_up')),
    attempts         integer NOT NULL DEFAULT 0,
    last_status      integer,
    last_error       text,
    next_attempt_at  timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (subscription_id, event_id)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status IN ('pending', 'failed');
CREATE INDEX webhook_deliveries_subscription ON webhook_deliveries (subscription_id, created_at DESC);
CREATE INDEX webhook_deliveries_job ON webhook_deliveries (job_id);

CREATE TABLE webhook_attempts (
    delivery_id  text NOT NULL REFERENCES webhook_deliveries (delivery_id) ON DELETE CASCADE,
    attempt      integer NOT NULL,
    started_at   timestamptz NOT NULL,
    duration_ms  integer,
    http_status  integer,
    error        text,
    PRIMARY KEY (delivery_id, attempt)
);
