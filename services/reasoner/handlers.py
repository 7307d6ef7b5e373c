"""Reasoner's handler: context.assembled → tool.called* + inference.completed + reply.generated (+ commands).

An input that already has a finished inference in the ledger is answered from it, with no second LLM call;
an unfinished tool loop resumes after its last recorded step (``loop.ToolLoop``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import orjson
import structlog

from agentbus.bus import PermanentError
from agentbus.config import Agent, PlatformConfig
from agentbus.durable import until_recorded
from agentbus.events import (
    ContextAssembled,
    Event,
    InferenceCompleted,
    InferenceCompletedDataV3,
    ReplyGenerated,
    ReplyGeneratedData,
    ToolCalled,
    ToolCalledData,
    Turn,
    Usage,
)
from agentbus.ids import Step
from agentbus.replaying import effects_of
from agentbus.services.reasoner.loop import Answer, ToolLoop, ToolOutcome, recorded_outcomes
from agentbus.services.reasoner.masking import masked
from agentbus.services.reasoner.parts import reply_parts
from agentbus.services.reasoner.ports import (
    ECHO,
    BlobReader,
    Budget,
    ChatModel,
    Completion,
    Endpoint,
    InferenceLedger,
    Record,
    Toolbox,
)
from agentbus.services.reasoner.progress import ProgressSink, Reporter
from agentbus.services.reasoner.prompt import Images, build_messages, wants_image, without_image_data
from agentbus.services.reasoner.summaries import (
    FOLD_MAX_TOKENS,
    Summary,
    SummaryStore,
    fold_messages,
    folded,
    uncovered,
)
from agentbus.settings import Settings

log = structlog.get_logger("agentbus.reasoner")
SOURCE = "reasoner"
APOLOGY_STEP = "apology"  # the reply said when an answer cannot be made (a different id from the answer's)


def resolve_chain(agent: Agent, config: PlatformConfig, settings: Settings) -> list[Endpoint]:
    chain: list[Endpoint] = []
    for name in (agent.model, *agent.fallback_models):
        if name == ECHO:
            chain.append(Endpoint(ECHO, ECHO, None))
        elif name == "default":
            if settings.llm_base_url:
                key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
                chain.append(Endpoint("default", settings.llm_model or "default", settings.llm_base_url, key,
                                      settings.llm_timeout_s))
            else:
                chain.append(Endpoint(ECHO, ECHO, None))
        else:
            m = config.model_named(name)
            if m is None:
                raise PermanentError(f"unknown model {name!r}")
            chain.append(Endpoint(m.name, m.model, m.base_url, m.api_key.resolve() if m.api_key else None,
                                  m.timeout_s, dict(m.headers), m.max_context_tokens, m.tools, m.vision))
    return chain


def _owner(event: ContextAssembled) -> str | None:
    """The person an answer is for: their key seals its text (none for a job's)."""
    return event.data.asker.id if event.data.asker is not None else None


def _tool_event(event: ContextAssembled, agent: str, o: ToolOutcome) -> ToolCalled:
    try:
        arguments: dict[str, object] | str = orjson.loads(o.call.arguments)
        if not isinstance(arguments, dict):
            arguments = o.call.arguments
    except orjson.JSONDecodeError:
        arguments = o.call.arguments
    data = ToolCalledData(agent=agent, step=o.n, call_id=o.call.id, tool=o.call.name, arguments=arguments,
                          side_effects=o.side_effects, idempotency_key=o.key,
                          outcome="error" if o.is_error else "ok", result=o.content, reused=o.reused,
                          latency_ms=o.latency_ms, commands=tuple(c.id for c in o.commands), owner=_owner(event))
    return event.follow(ToolCalled, data, source=SOURCE, step=f"{ToolCalled.TYPE}:{o.n}:{o.call.id}")


@dataclass
class Reasoner:
    config: PlatformConfig
    settings: Settings
    ledger: InferenceLedger
    llm: ChatModel
    tools: Toolbox | None = None
    tool_timeout_s: float = 60.0
    progress: ProgressSink | None = None  # where reply.progress goes (published at once, best effort)
    blobs: BlobReader | None = None
    budget: Budget | None = None  # the tenants' LLM tokens per day
    summaries: SummaryStore | None = None  # the conversations' running summaries (memory.summary_after)

    async def _images(self, event: ContextAssembled, chain: Sequence[Endpoint]) -> Images:
        """The images of the question, read from the blob store, when every model of the chain accepts them
        (a fallback without vision would refuse image parts); a blob that is gone leaves a note."""
        wanted = [a.ref for a in event.data.input.attachments if wants_image(a) and a.ref]
        if not wanted or self.blobs is None or not chain or not all(e.vision for e in chain):
            return {}
        images: dict[str, tuple[bytes, str]] = {}
        for ref in dict.fromkeys(wanted):
            found = await self.blobs.get(ref)
            if found is None:
                log.warning("image_blob_missing", ref=ref[:20])
            else:
                images[ref] = found
        return images

    def _agent(self, agent_id: str) -> Agent:
        agent = self.config.agent(agent_id)
        if agent is None:
            raise PermanentError(f"unknown agent {agent_id!r}")
        return agent

    async def answer(self, event: ContextAssembled) -> Sequence[Event]:
        found = await self.ledger.lookup(event)
        if found.outputs is not None:
            if self.budget is not None:  # counted once by id: this adds what a failed count left out
                await self.budget.count(found.outputs)
            return found.outputs
        ctx = event.data
        agent = self._agent(ctx.agent)
        fx = effects_of(event)
        summary = await self.summaries.get(event.conversation) if self.summaries is not None and ctx.earlier else None
        pending = uncovered(summary, ctx.earlier)
        messages = build_messages(agent, ctx, fx.system_prompt, summary=summary.text if summary else None,
                                  earlier=pending)
        if ctx.refusal is not None:
            refused = Completion(text=ctx.refusal, model="policy", provider="agentbus", finish_reason="refused",
                                 latency_ms=0.0, attempts=0)
            return await self._finish(event, agent, Answer(refused, steps=0, request=messages), reused=False,
                                      store=False)
        if found.inference is not None and fx.reuse_inference:
            done = Answer(found.inference, steps=1 + sum(s.kind == "llm" for s in found.steps), request=messages,
                          tools=recorded_outcomes(event, found.steps))
            return await self._finish(event, agent, done, reused=True, store=fx.remember)
        if not fx.call_llm:
            return await self._no_recorded_inference(event, agent.id)
        if self.budget is not None and (used_up := await self.budget.used_up(event.tenant)) is not None:
            spent = Completion(text=used_up, model="budget", provider="agentbus", finish_reason="budget",
                               latency_ms=0.0, attempts=0)
            return await self._finish(event, agent, Answer(spent, steps=0, request=messages), reused=False,
                                      store=False)
        chain = resolve_chain(agent, self.config, self.settings)
        if fx.model:
            chain = resolve_chain(agent.model_copy(update={"model": fx.model, "fallback_models": ()}), self.config,
                                  self.settings)
        images = await self._images(event, chain)
        # one masking context per inference: the model reads placeholders, everything else the real values
        model = masked(self.llm, self.config.masked_kinds(event.tenant))
        fold: list[Event] = []
        if fx.remember and agent.memory.summary_after and len(pending) >= agent.memory.summary_after:
            made = await self._fold(event, agent, chain, summary, pending)
            if made is not None:
                summary, pending, fold = made[0], [], [made[1]]
        if images or fold:
            messages = build_messages(agent, ctx, fx.system_prompt, images, summary.text if summary else None,
                                      pending)
        tools = list(self.tools.for_agent(agent)) if self.tools is not None else []
        reporter = self._reporter(event, fx.push)
        loop = ToolLoop(model, self.ledger, self.tool_timeout_s, reporter)
        done = await loop.run(event, agent, chain, messages, tools, found.steps, fx)
        if done.stopped:
            note = f"(I stopped after {done.steps - 1} tool steps, the most I may take for one answer.)"
            done.completion = replace(done.completion, text=f"{done.completion.text}\n\n{note}".strip())
        if not done.completion.text.strip():
            done.completion = replace(done.completion, text=agent.apology)
        return await self._finish(event, agent, done, reused=False, store=fx.remember,
                                  streamed=reporter is not None and reporter.streamed, before=fold)

    async def _fold(self, event: ContextAssembled, agent: Agent, chain: Sequence[Endpoint], summary: Summary | None,
                    turns: Sequence[Turn]) -> tuple[Summary, InferenceCompleted] | None:
        """The turns folded into the conversation's summary by the model, kept, and the model call as an
        ``inference.completed`` of its own; None when the call fails (the turns are sent as they are, and the
        next message tries again)."""
        store = self.summaries
        assert store is not None
        model = masked(self.llm, self.config.masked_kinds(event.tenant))
        try:
            c = await model.complete(chain, fold_messages(summary, turns), temperature=0.0,
                                     max_tokens=FOLD_MAX_TOKENS)
        except Exception as exc:  # noqa: BLE001 - the summary is an optimisation: the answer goes on without it
            log.warning("summary_fold_failed", error=f"{type(exc).__name__}: {exc}"[:300], turns=len(turns))
            return None
        if not c.text.strip():
            log.warning("summary_fold_empty", model=c.model, turns=len(turns))
            return None
        new = folded(summary, turns, c.text)
        kept = await until_recorded(lambda: store.save(event.tenant, event.conversation, agent.id, new),
                                    what="summary")
        log.info("summary_folded", turns=len(turns), total=new.turns, kept=kept, model=c.model)
        call = event.follow(InferenceCompleted, InferenceCompletedDataV3(
            agent=agent.id, model=c.model, provider=c.provider, models_tried=c.models_tried, attempts=c.attempts,
            usage=Usage(input_tokens=c.prompt_tokens, output_tokens=c.completion_tokens),
            finish_reason=c.finish_reason, latency_ms=c.latency_ms, steps=1, owner=_owner(event),
        ), source=SOURCE, step=f"{Step.INFERENCE}:summary")
        return new, call

    def _reporter(self, event: ContextAssembled, push: bool) -> Reporter | None:
        """Progress for a live answer on a channel that shows it (a replay reaches no chat)."""
        channel = self.config.channel(event.data.channel)
        if (self.progress is None or not push or event.data.trigger != "message" or channel is None
                or channel.progress == "off"):
            return None
        return Reporter(event, self.progress, channel.progress, self.settings.reasoner_stream_interval_s)

    async def _finish(self, event: ContextAssembled, agent: Agent, done: Answer, *, reused: bool,
                      store: bool, streamed: bool = False, before: Sequence[Event] = ()) -> list[Event]:
        c = done.completion
        ctx = event.data
        tool_events = [_tool_event(event, agent.id, o) for o in done.tools]
        inference = event.follow(InferenceCompleted, InferenceCompletedDataV3(
            agent=agent.id, model=c.model, provider=c.provider, models_tried=c.models_tried, attempts=c.attempts,
            usage=Usage(input_tokens=c.prompt_tokens, output_tokens=c.completion_tokens),
            finish_reason=c.finish_reason, latency_ms=c.latency_ms, reused=reused, output_text=c.text,
            steps=done.steps, tool_calls=len(done.tools), owner=_owner(event),
        ), source=SOURCE, step=Step.INFERENCE)
        card, attachments = reply_parts(done.tools)
        reply = event.follow(ReplyGenerated, ReplyGeneratedData(
            agent=agent.id, channel=ctx.channel, channel_type=ctx.channel_type, chat=ctx.chat, text=c.text,
            format=agent.reply_format, model=c.model, reply_route=ctx.reply_route, in_reply_to=ctx.in_reply_to,
            asker=ctx.asker, card=card, attachments=attachments, streamed=streamed,
        ), source=SOURCE, step=Step.REPLY)
        commands = [cmd for o in done.tools for cmd in o.commands]
        outputs = [*before, *tool_events, inference, reply, *commands]
        paid = [e.data.usage for e in before if isinstance(e, InferenceCompleted)]
        record = Record(event=event, agent=agent.id, request=without_image_data(done.request), completion=c,
                        outputs=outputs, store_inference=store,
                        extra_tokens=(sum(u.input_tokens or 0 for u in paid), sum(u.output_tokens or 0 for u in paid)))
        recorded = await until_recorded(lambda: self.ledger.record(record), what="inference")
        if self.budget is not None:
            await self.budget.count(recorded)
        log.info("inference_completed", model=c.model, reused=reused, steps=done.steps, tool_calls=len(done.tools),
                 latency_ms=round(c.latency_ms, 1))
        return recorded

    async def _no_recorded_inference(self, event: ContextAssembled, agent_id: str) -> list[Event]:
        failed = event.follow(InferenceCompleted, InferenceCompletedDataV3(
            agent=agent_id, model="none", provider="agentbus", attempts=0, reused=False, outcome="failed",
            error="no recorded inference for this input to reuse; replay with --rerun-llm to call the model",
        ), source=SOURCE, step=Step.INFERENCE)
        none = Completion(text="", model="none", provider="agentbus", latency_ms=0.0, attempts=0)
        return await self.ledger.record(Record(event=event, agent=agent_id, request=[], completion=none,
                                               outputs=[failed], store_inference=False))

    async def apologise(self, event: ContextAssembled, error: BaseException) -> Sequence[Event]:
        """When the consumer gives up on an input (every model failed, the input is at fault), the chat gets
        the agent's apology instead of silence; the input itself goes to the dead-letter topic."""
        agent = self.config.agent(event.data.agent)
        failed = event.follow(InferenceCompleted, InferenceCompletedDataV3(
            agent=event.data.agent, model="none", provider="agentbus", attempts=0, outcome="failed",
            error=f"{type(error).__name__}: {error}"[:500],
        ), source=SOURCE, step=f"{Step.INFERENCE}:{APOLOGY_STEP}")
        if agent is None or not effects_of(event).push:
            return [failed]
        ctx = event.data
        reply = event.follow(ReplyGenerated, ReplyGeneratedData(
            agent=agent.id, channel=ctx.channel, channel_type=ctx.channel_type, chat=ctx.chat, text=agent.apology,
            format="text", model="none", reply_route=ctx.reply_route, in_reply_to=ctx.in_reply_to,
            asker=ctx.asker,
        ), source=SOURCE, step=APOLOGY_STEP)
        log.warning("answer_apologised", error=f"{type(error).__name__}: {error}"[:300])
        return [failed, reply]
