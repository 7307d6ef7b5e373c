CREATE TABLE jobs (
    job_id text PRIMARY KEY,
    source text NOT NULL CHECK (source IN ('yaml', 'api')),
    kind text NOT NULL CHECK (kind IN ('cron', 'at', 'every')),
    expr text NOT NULL,
    timezone text NOT NULL DEFAULT 'UTC',
    tenant text NOT NULL,
    agent text NOT NULL,
    channel text NOT NULL,
    chat_id text NOT NULL,
    chat_type text NOT NULL DEFAULT 'group',
    prompt text NOT NULL,
    reply_route jsonb NOT NULL DEFAULT '{}'::jsonb,
    enabled boolean NOT NULL DEFAULT true,
    next_due timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX jobs_due ON jobs (next_due) WHERE enabled;

-- One row per (job, due time): the primary key is what makes a due time fire once across replicas.
CREATE TABLE firings (
    job_id text NOT NULL,
    due_at timestamptz NOT NULL,
    event_id uuid NOT NULL,
    event jsonb NOT NULL,
    published boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, due_at)
);
CREATE INDEX firings_unpublished ON firings (created_at) WHERE NOT published;
