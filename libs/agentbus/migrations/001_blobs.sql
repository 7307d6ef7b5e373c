-- Content-addressed blobs (media sent to the bot): written once by ingress, read by the reasoner.
CREATE TABLE blobs (
    ref text PRIMARY KEY,           -- "sha256:<hex>" of data
    content_type text NOT NULL,
    size integer NOT NULL,
    data bytea NOT NULL,
    stored_at timestamptz NOT NULL DEFAULT now()
);
