-- A person's id is whatever the platform (or a signed webhook) gives, and PostgreSQL text cannot hold every
-- string (a NUL): the ids are kept as their UTF-8 bytes, so any sender can have a key.
ALTER TABLE user_keys ALTER COLUMN user_id TYPE bytea USING convert_to(user_id, 'UTF8');
ALTER TABLE forgotten_keys ALTER COLUMN user_id TYPE bytea USING convert_to(user_id, 'UTF8');
