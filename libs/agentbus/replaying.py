"""The replay rule: what handling an event may touch, decided in one place for every service.

A replayed event (``event.replay`` set) belongs to a shadow run. It flows through the same handlers as a
live one, so each handler asks here what it may do instead of testing ``event.replay`` in its own way:
a shadow run never changes what live conversations remember, never pays for an LLM call unless the run
asked for it, never writes the ledgers, never runs a tool with side effects (tools without them only when
the run asked for it; recorded results are reused), and never reaches a chat.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentbus.events import Event


@dataclass(frozen=True)
class Effects:
    remember: bool  # write the service's own state: turns, vectors, the inference ledger, delivery rows
    call_llm: bool  # call a model (live: always; a replay: only with --rerun-llm)
    reuse_inference: bool  # answer from a finished inference in the ledger when there is one
    push: bool  # push to a chat platform
    run_tools: bool = True  # run a tool call that has no recorded result (a replay: only with --rerun-tools)
    run_side_effect_tools: bool = True  # ... and one with side effects (never in a replay)
    model: str | None = None  # a replay's model instead of the agent's chain
    system_prompt: str | None = None  # a replay's system prompt instead of the agent's


LIVE = Effects(remember=True, call_llm=True, reuse_inference=True, push=True)


def effects_of(event: Event) -> Effects:
    """What handling ``event`` may touch."""
    run = event.replay
    if run is None:
        return LIVE
    return Effects(
        remember=False,
        call_llm=run.rerun_llm,
        reuse_inference=not run.rerun_llm,
        push=False,
        run_tools=run.rerun_llm and run.rerun_tools,
        run_side_effect_tools=False,
        model=run.model if run.rerun_llm else None,
        system_prompt=run.system_prompt if run.rerun_llm else None,
    )
