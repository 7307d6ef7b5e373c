CREATE TABLE turns (
    event_id uuid PRIMARY KEY,
    tenant text NOT NULL,
    conversation text NOT NULL,
    role text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    sender text,
    text text NOT NULL,
    at timestamptz NOT NULL,
    seq bigserial NOT NULL
);
CREATE INDEX turns_conversation_at ON turns (conversation, at DESC, seq DESC);
