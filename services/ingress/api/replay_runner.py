"""Ingress's consumer of ``replay.requested``: selects the live events of the run and republishes them with the
run in their envelope, beside a ``replay.selected`` that lists them.

The work is a consumed command, not a task of the replica that took the HTTP request: the offset is committed
only once the selection and every copy are acknowledged, so a replica that dies mid-selection leaves the
command to the replica the group gives it to next, which selects again (``until`` was fixed when the run was
asked for, so the same events) and republishes (same ids and run: consumers ignore what they already did).
Until then the run's status is ``selecting``; a selection that keeps failing is dead-lettered, and the status
says ``failed``.
"""

from __future__ import annotations

import structlog

from agentbus.eventlog import Filter
from agentbus.events import (
    Event,
    Replay,
    ReplayEntry,
    ReplayRequested,
    ReplayRequestedData,
    ReplaySelected,
    ReplaySelectedData,
    derive_id,
)
from agentbus.services.ingress.api.eventlog import EntrySource

log = structlog.get_logger("agentbus.ingress.replay")
SELECTED_STEP = "replay-selected"


def run_of(data: ReplayRequestedData) -> Replay:
    return Replay(run=data.run, rerun_llm=data.rerun_llm, model=data.model, system_prompt=data.system_prompt,
                  rerun_tools=data.rerun_tools)


async def select_replay(event: ReplayRequested, entries: EntrySource) -> list[Event]:
    """The run's ``replay.selected`` and its replayed copies (published together by the consumer)."""
    d = event.data
    keep = Filter(tenant=event.tenant, conversation=d.conversation, correlation=d.correlation, since=d.since,
                  until=d.until, include_replays=False)
    chosen, truncated, expired = await entries.select(d.entry_type, keep, d.limit)
    run = run_of(d)
    selected = ReplaySelected(  # byte-identical when the command is handled again
        id=derive_id(event.id, SELECTED_STEP), type=ReplaySelected.TYPE,
        version=ReplaySelected.VERSION, source="ingress", occurred_at=event.occurred_at, tenant=event.tenant,
        conversation=event.conversation, correlation_id=event.correlation_id, causation_id=event.id,
        data=ReplaySelectedData(run=d.run, request_id=event.id, entry_type=d.entry_type, truncated=truncated,
                                expired=expired,
                                entries=[ReplayEntry(id=e.id, conversation=e.conversation) for e in chosen]),
    )
    log.info("replay_selected", run=d.run, tenant=event.tenant, selected=len(chosen), truncated=truncated,
             expired=expired)
    return [selected, *(e.model_copy(update={"replay": run}) for e in chosen)]


class ReplayRunner:
    def __init__(self, entries: EntrySource) -> None:
        self._entries = entries

    async def select_replay(self, event: ReplayRequested) -> list[Event]:
        return await select_replay(event, self._entries)
