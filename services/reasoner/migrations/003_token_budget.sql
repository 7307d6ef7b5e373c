-- LLM tokens (input + output) used per tenant per UTC day, for quotas.llm_tokens_per_day; each inference is
-- counted once (by its inference.completed id), so a redelivered or re-recorded answer adds nothing.
CREATE TABLE token_usage (
    tenant text NOT NULL,
    day date NOT NULL,
    tokens bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant, day)
);
CREATE TABLE token_usage_counted (
    inference_id uuid PRIMARY KEY,
    counted_at timestamptz NOT NULL DEFAULT now()
);
