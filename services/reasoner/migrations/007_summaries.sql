-- A conversation's running summary (an agent's memory.summary_after): the turns that fell out of the history
-- window, folded by the model into a few sentences the later prompts carry. covers_until is the time of the
-- newest turn folded in (a fold never goes back); owners are the people whose words it holds, so forgetting
-- one of them deletes it.
CREATE TABLE summaries (
    conversation text PRIMARY KEY,
    tenant text NOT NULL,
    agent text NOT NULL,
    text text NOT NULL,
    covers_until timestamptz NOT NULL,
    turns integer NOT NULL,
    owners text[] NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX summaries_owners ON summaries USING gin (owners);
CREATE INDEX summaries_tenant_updated ON summaries (tenant, updated_at);
