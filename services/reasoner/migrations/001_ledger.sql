-- One row per finished inference, keyed by the input (context.assembled) event: a redelivered or
-- replayed input reuses it instead of paying for a second LLM call.
CREATE TABLE inferences (
    input_event_id uuid PRIMARY KEY,
    correlation_id uuid NOT NULL,
    agent text NOT NULL,
    model text NOT NULL,
    provider text NOT NULL,
    models_tried text[] NOT NULL,
    attempts int NOT NULL,
    request jsonb NOT NULL,
    output_text text NOT NULL,
    prompt_tokens int,
    completion_tokens int,
    finish_reason text,
    latency_ms double precision NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX inferences_correlation ON inferences (correlation_id);
