-- Job states: paused (schedule kept), cancelled (a tombstone: the row stays, nothing brings it back),
-- removed from agentbus.yaml. A job fires only while none of them holds and it has a next due time, so
-- `enabled` is computed from them and cannot disagree. `last_command_at` is the issue time of the last
-- command applied to the job: an older command (a redriven dead letter) is ignored.
ALTER TABLE jobs
    ADD COLUMN paused_at timestamptz,
    ADD COLUMN cancelled_at timestamptz,
    ADD COLUMN removed_at timestamptz,
    ADD COLUMN last_command_at timestamptz,
    ADD COLUMN requested_by text;

-- rows disabled before states existed: an api job by a delete command, a yaml job by leaving agentbus.yaml
UPDATE jobs SET cancelled_at = updated_at WHERE NOT enabled AND next_due IS NOT NULL AND source = 'api';
UPDATE jobs SET removed_at = updated_at WHERE NOT enabled AND next_due IS NOT NULL AND source = 'yaml';

DROP INDEX jobs_due;
ALTER TABLE jobs DROP COLUMN enabled;
ALTER TABLE jobs ADD COLUMN enabled boolean GENERATED ALWAYS AS (
    paused_at IS NULL AND cancelled_at IS NULL AND removed_at IS NULL AND next_due IS NOT NULL) STORED;
CREATE INDEX jobs_due ON jobs (next_due) WHERE enabled;
CREATE INDEX jobs_conversation ON jobs (tenant, channel, chat_id);
