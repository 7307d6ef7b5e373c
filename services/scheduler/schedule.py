"""What a firing publishes. When a job is next due is computed in ``agentbus.schedules`` (the agent's
schedule tool tells the asker the same time the scheduler will fire at). Pure functions: the job store uses
them inside its transaction, and so do the tests' fakes.
"""

from __future__ import annotations

from datetime import datetime

from agentbus.events import Chat, JobTriggered, JobTriggeredData
from agentbus.ids import conversation_key, firing_id
from agentbus.schedules import first_due, next_cron, next_due
from agentbus.services.scheduler.ports import JobSpec


def firing_event(job: JobSpec, due: datetime, now: datetime) -> JobTriggered:
    """The event of one firing; its id (and correlation id) is the firing's, so a re-publish is a repeat."""
    event_id = firing_id(job.job_id, due)
    return JobTriggered(
        id=event_id,
        type=JobTriggered.TYPE,
        version=JobTriggered.VERSION,
        source="scheduler",
        occurred_at=now,
        tenant=job.tenant,
        conversation=conversation_key(job.tenant, job.channel, job.chat_id),
        correlation_id=event_id,
        data=JobTriggeredData(
            job_id=job.job_id, due_at=due, agent=job.agent, channel=job.channel,
            chat=Chat(id=job.chat_id, type=job.chat_type), prompt=job.prompt, reply_route=job.reply_route,
        ),
    )


__all__ = ["first_due", "firing_event", "next_cron", "next_due"]
