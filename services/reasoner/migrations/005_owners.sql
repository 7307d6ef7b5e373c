-- Whose text each inference and each recorded step carries (the person asking, and the people whose turns and
-- memories its context holds), so forgetting a person deletes every prompt and answer with their words.
-- Rows from before have none and are not found by an erasure.
ALTER TABLE inferences ADD COLUMN owners text[] NOT NULL DEFAULT '{}';
CREATE INDEX inferences_owners ON inferences USING gin (owners);
ALTER TABLE steps ADD COLUMN tenant text;
ALTER TABLE steps ADD COLUMN owners text[] NOT NULL DEFAULT '{}';
CREATE INDEX steps_owners ON steps USING gin (owners);
