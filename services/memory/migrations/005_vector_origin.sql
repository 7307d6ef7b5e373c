-- Who said each memory, where, and whose it is, so recall filters by scope inside the vector store and the
-- prompt can attribute what it recalls. Rows stored before have no owner: only a tenant-wide or a
-- conversation's recall finds them (a person's recall cannot tell whether they are theirs).
ALTER TABLE vectors ADD COLUMN owner text;
ALTER TABLE vectors ADD COLUMN sender text;
ALTER TABLE vectors ADD COLUMN sender_name text;
ALTER TABLE vectors ADD COLUMN channel text;
ALTER TABLE vectors ADD COLUMN chat text;
ALTER TABLE vectors ADD COLUMN chat_name text;
ALTER TABLE vectors ADD COLUMN chat_type text CHECK (chat_type IN ('direct', 'group'));

-- Turns whose vector could not be made when they were remembered (the embeddings server was away): the
-- conversation was answered with its history only, and a background task indexes these once it is back.
CREATE TABLE deferred_vectors (
    id uuid PRIMARY KEY,
    tenant text NOT NULL,
    conversation text NOT NULL,
    role text NOT NULL,
    text text NOT NULL,
    at timestamptz NOT NULL,
    owner text,
    sender text,
    sender_name text,
    channel text,
    chat text,
    chat_name text,
    chat_type text,
    deferred_at timestamptz NOT NULL DEFAULT now(),
    claimed_until timestamptz NOT NULL DEFAULT '-infinity'
);
CREATE INDEX deferred_vectors_claim ON deferred_vectors (claimed_until, deferred_at);
