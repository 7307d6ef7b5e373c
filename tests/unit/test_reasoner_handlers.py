from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest

from agentbus.bus import PermanentError, TransientError
from agentbus.config import parse_config
from agentbus.events import Chat, ContextAssembled, ContextAssembledData, Sender, Turn, utcnow
from agentbus.services.reasoner.handlers import Reasoner
from agentbus.services.reasoner.llm import ChatClient, Endpoint, UpstreamError
from agentbus.settings import Settings
from tests.support.platform import base_config
from tests.unit.fakes_reasoner import FakeInferenceLedger, ScriptedLLM


def context(text: str, refusal: str | None = None) -> ContextAssembled:
    return ContextAssembled.new(
        ContextAssembledData(agent="assistant", channel="acme", channel_type="webhook", chat=Chat(id="c"),
                             trigger="message", input=Turn(role="user", text=text, at=utcnow()),
                             history=(Turn(role="user", text="earlier", at=utcnow()),), refusal=refusal,
                             asker=Sender(id="u-7", name="Ana")),
        source="memory", tenant="acme", conversation="acme/acme/c",
    )


async def test_answer_emits_inference_and_reply_and_redelivery_never_calls_twice() -> None:
    llm, ledger = ScriptedLLM(), FakeInferenceLedger()
    r = Reasoner(parse_config(base_config()), Settings(), ledger, llm)
    e = context("hello")
    inf, reply = await r.answer(e)
    assert inf.TYPE == "inference.completed" and reply.TYPE == "reply.generated"
    assert reply.data.text == "reply to hello" and inf.data.usage.output_tokens == 4
    assert reply.data.asker == Sender(id="u-7", name="Ana")  # egress addresses the asker in a group
    again = await r.answer(e)
    assert again == [inf, reply] and llm.calls == 1
    # the outputs were lost (say, a crash before the processed record): the ledger still prevents a call
    ledger.processed.clear()
    inf2, reply2 = await r.answer(e)
    assert llm.calls == 1 and inf2.data.reused is True and reply2.id == reply.id


async def test_refusal_is_answered_without_the_llm() -> None:
    llm = ScriptedLLM()
    r = Reasoner(parse_config(base_config()), Settings(), FakeInferenceLedger(), llm)
    _, reply = await r.answer(context("let me in", refusal="Not for you, sorry."))
    assert reply.data.text == "Not for you, sorry." and llm.calls == 0 and reply.data.asker is not None


def _Resp(status: int, body: dict[str, Any]) -> httpx.Response:
    return httpx.Response(status, json=body)


async def test_fallback_chain_and_error_classification(monkeypatch: pytest.MonkeyPatch) -> None:
    client = ChatClient(attempts=2, max_connections=4)
    seen: list[str] = []

    async def post(url: str, content: bytes, headers: dict[str, str], timeout: float) -> httpx.Response:
        json = orjson.loads(content)
        assert headers["Content-Type"] == "application/json"
        seen.append(json["model"])
        if json["model"] == "broken":
            return _Resp(503, {"error": "down"})
        if json["model"] == "bad-request":
            return _Resp(400, {"error": "context too long"})
        return _Resp(200, {"model": json["model"], "choices": [{"message": {"content": "ok"}, "finish_reason": "stop"}],
                           "usage": {"prompt_tokens": 1, "completion_tokens": 1}})

    monkeypatch.setattr(client._http, "post", post)
    msgs = [{"role": "user", "content": "hi"}]
    broken, good = Endpoint("a", "broken", "http://x"), Endpoint("b", "good", "http://y")
    c = await client.complete([broken, good], msgs, temperature=None, max_tokens=None)
    assert c.text == "ok" and c.models_tried == ("a", "b") and seen == ["broken", "broken", "good"]
    with pytest.raises(TransientError):
        await client.complete([broken], msgs, temperature=None, max_tokens=None)
    with pytest.raises(PermanentError):
        await client.complete([Endpoint("c", "bad-request", "http://z")], msgs, temperature=None, max_tokens=None)
    echo = await client.complete([broken, Endpoint("echo", "echo", None)], msgs, temperature=None, max_tokens=None)
    assert echo.model == "echo" and "echo model" in echo.text
    with pytest.raises(UpstreamError):
        raise UpstreamError(500, "x")
    await client.aclose()


async def test_replay_reuses_the_ledger_unless_asked_and_never_overwrites_it() -> None:
    from agentbus.events import Replay

    llm, ledger = ScriptedLLM(), FakeInferenceLedger()
    r = Reasoner(parse_config(base_config()), Settings(), ledger, llm)
    live = context("hello")
    _, live_reply = await r.answer(live)
    reuse = live.model_copy(update={"replay": Replay(run="r1")})
    inf, reply = await r.answer(reuse)
    assert llm.calls == 1 and inf.data.reused and reply.data.text == live_reply.data.text
    assert reply.id == live_reply.id and reply.replay == Replay(run="r1")
    rerun = live.model_copy(update={"replay": Replay(run="r2", rerun_llm=True, model="echo")})
    inf2, reply2 = await r.answer(rerun)
    assert inf2.data.model == "echo" and llm.calls == 2 and reply2.replay.rerun_llm
    assert ledger.inferences[live.id].text == live_reply.data.text, "the live inference is kept"
    # nothing recorded for an input that never ran live: a reuse-only replay says so instead of calling
    fresh = context("never seen").model_copy(update={"replay": Replay(run="r3")})
    [failed] = await r.answer(fresh)
    assert failed.data.outcome == "failed" and "--rerun-llm" in failed.data.error and llm.calls == 2
