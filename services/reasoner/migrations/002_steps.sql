-- The recorded steps of unfinished tool loops, keyed by the input event, the model call and the tool call
-- (empty for the model call itself). A redelivered input resumes after the last recorded step: no finished
-- model call is paid twice and no finished tool call is run twice.
CREATE TABLE steps (
    input_event_id uuid NOT NULL,
    n int NOT NULL,
    call_id text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('llm', 'tool')),
    data jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (input_event_id, n, call_id)
);
