-- Progress shown for a reply being written (keyed by the message answered): the highest progress sequence
-- applied, the platform message a streamed answer is edited in, and whether the reply itself went out
-- (a progress arriving after that is dropped).
CREATE TABLE progress_messages (
    channel text NOT NULL,
    in_reply_to text NOT NULL,
    seq int NOT NULL,
    platform_message_id text,
    finished boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (channel, in_reply_to)
);
CREATE INDEX progress_messages_updated ON progress_messages (updated_at);
