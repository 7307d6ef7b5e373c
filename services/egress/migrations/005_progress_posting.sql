-- When a streamed answer's first partial is being sent: the final reply arriving meanwhile waits for that
-- message's id (and edits it) instead of sending a second message beside it.
ALTER TABLE progress_messages ADD COLUMN posting_since timestamptz;
