-- The working mark shown on the person's message while the reply is written (Feishu: a reaction's id), so
-- whichever replica pushes the reply can take it away.
ALTER TABLE progress_messages ADD COLUMN typing_id text;
