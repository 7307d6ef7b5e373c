"""Reasoner's handler: context.assembled → inference.completed + reply.generated.

An input that already has a finished inference in the ledger is answered from it, with no second LLM call.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import structlog

from agentbus.bus import PermanentError
from agentbus.config import Agent, PlatformConfig
from agentbus.durable import until_recorded
from agentbus.events import (
    Event,
    InferenceCompleted,
    InferenceCompletedDataV2,
    ReplyGenerated,
    ReplyGeneratedData,
    Usage,
)
from agentbus.services.reasoner.ledger import Ledger
from agentbus.services.reasoner.llm import ECHO, ChatClient, Completion, Endpoint
from agentbus.services.reasoner.prompt import build_messages
from agentbus.settings import Settings

log = structlog.get_logger("agentbus.reasoner")
SOURCE = "reasoner"


def resolve_chain(agent: Agent, config: PlatformConfig, settings: Settings) -> list[Endpoint]:
    chain: list[Endpoint] = []
    for name in (agent.model, *agent.fallback_models):
        if name == ECHO:
            chain.append(Endpoint(ECHO, ECHO, None))
        elif name == "default":
            if settings.llm_base_url:
                key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
                chain.append(
                    Endpoint("default", settings.llm_model or "default", settings.llm_base_url, key,
                             settings.llm_timeout_s)
                )
            else:
                chain.append(Endpoint(ECHO, ECHO, None))
        else:
            m = config.model_named(name)
            if m is None:
                raise PermanentError(f"unknown model {name!r}")
            chain.append(
                Endpoint(m.name, m.model, m.base_url, m.api_key.resolve() if m.api_key else None, m.timeout_s,
                         dict(m.headers))
            )
    return chain


@dataclass
class Reasoner:
    config: PlatformConfig
    settings: Settings
    ledger: Ledger
    llm: ChatClient

    async def answer(self, event: Event) -> Sequence[Event]:
        previous, recorded = await self.ledger.lookup(event)
        if previous is not None:
            return previous
        ctx = event.data
        agent = self.config.agent(ctx.agent)
        if agent is None:
            raise PermanentError(f"unknown agent {ctx.agent!r}")
        replay = event.replay
        messages = build_messages(agent, ctx, replay.system_prompt if replay is not None else None)
        # a shadow run never writes the ledger: the live answer stays what it was
        store = replay is None
        if ctx.refusal is not None:
            c = Completion(ctx.refusal, "policy", "agentbus", None, None, "refused", 0.0, 0, ())
            reused, store = False, False
        else:
            found = None if replay is not None and replay.rerun_llm else recorded
            if found is not None:
                c, reused = found, True
            elif replay is not None and not replay.rerun_llm:
                return await self._no_recorded_inference(event, agent.id)
            else:
                chain = resolve_chain(agent, self.config, self.settings)
                if replay is not None and replay.model:
                    chain = resolve_chain(agent.model_copy(update={"model": replay.model, "fallback_models": ()}),
                                          self.config, self.settings)
                c = await self.llm.complete(
                    chain, messages, temperature=agent.temperature, max_tokens=agent.max_tokens,
                )
                reused = False
        inference = event.follow(
            InferenceCompleted,
            InferenceCompletedDataV2(
                agent=agent.id,
                model=c.model,
                provider=c.provider,
                models_tried=c.models_tried,
                attempts=c.attempts,
                usage=Usage(input_tokens=c.prompt_tokens, output_tokens=c.completion_tokens),
                finish_reason=c.finish_reason,
                latency_ms=c.latency_ms,
                reused=reused,
                output_text=c.text,
            ),
            source=SOURCE,
            step="inference",
        )
        reply = event.follow(
            ReplyGenerated,
            ReplyGeneratedData(
                agent=agent.id,
                channel=ctx.channel,
                channel_type=ctx.channel_type,
                chat=ctx.chat,
                text=c.text,
                format=agent.reply_format,
                model=c.model,
                reply_route=ctx.reply_route,
                in_reply_to=ctx.in_reply_to,
            ),
            source=SOURCE,
            step="reply",
        )
        outputs = await until_recorded(
            lambda: self.ledger.record(event, event.id, agent.id, messages, c, [inference, reply], store),
            what="inference",
        )
        log.info("inference_completed", model=c.model, reused=reused, latency_ms=round(c.latency_ms, 1))
        return outputs

    async def _no_recorded_inference(self, event: Event, agent_id: str) -> list[Event]:
        failed = event.follow(
            InferenceCompleted,
            InferenceCompletedDataV2(
                agent=agent_id, model="none", provider="agentbus", attempts=0, reused=False, outcome="failed",
                error="no recorded inference for this input to reuse; replay with --rerun-llm to call the model",
            ),
            source=SOURCE,
            step="inference",
        )
        c = Completion("", "none", "agentbus", None, None, None, 0.0, 0, ())
        return await self.ledger.record(event, event.id, agent_id, [], c, [failed], store_inference=False)
