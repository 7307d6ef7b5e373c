"""The chat API with the official ``openai`` client as the peer, over a real loopback server: answers,
streams, OpenAI's error shape for bad input, tenants kept apart, the timeout and the quota."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from agentbus.services.ingress.chat.replies import Update, Waiters
from tests.unit.fakes_chat import Agent, Served, answer_to, chat_config, served_chat


def client(s: Served, token: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=s.url, api_key=token, max_retries=0, timeout=20)


async def test_an_answer_comes_back_as_a_chat_completion_and_only_the_last_message_is_asked() -> None:
    async with served_chat() as s:
        token = await s.token("acme", "operator")
        resp = await client(s, token).chat.completions.create(model="assistant", user="alice", messages=[
            {"role": "system", "content": "You are a pirate."},
            {"role": "user", "content": "earlier question"},
            {"role": "assistant", "content": "earlier answer"},
            {"role": "user", "content": [{"type": "text", "text": "What is"}, {"type": "text", "text": "agentbus?"}]},
        ], temperature=0.2, max_tokens=50)
        assert resp.object == "chat.completion" and resp.id.startswith("chatcmpl-") and resp.model == "assistant"
        assert resp.choices[0].message.role == "assistant"
        assert resp.choices[0].message.content == Agent.answer("What is\nagentbus?")
        assert resp.choices[0].finish_reason == "stop"
        [q] = s.agent.questions()
        assert (q.tenant, q.data.channel, q.data.channel_type, q.data.agent) == ("acme", "acme-chat", "api",
                                                                                 "assistant")
        assert (q.data.chat.id, q.data.chat.type, q.data.sender.id, q.data.text) == (
            "alice", "direct", "alice", "What is\nagentbus?")
        assert q.data.platform_message_id == resp.id and q.conversation == "acme/acme-chat/alice"
        assert s.quota.asked == ["acme"]


async def test_without_a_user_the_conversation_is_the_tokens() -> None:
    async with served_chat() as s:
        token = await s.token("acme", "admin")
        await client(s, token).chat.completions.create(model="assistant", messages=[{"role": "user", "content": "hi"}])
        [q] = s.agent.questions()
        assert q.data.chat.id == f"token-{s.record_id(token)}"


async def test_a_stream_sends_the_partials_as_deltas_and_ends_with_the_whole_answer() -> None:
    async with served_chat() as s:
        token = await s.token("acme", "operator")
        stream = await client(s, token).chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "stream it"}], stream=True)
        chunks = [c async for c in stream]
        assert all(c.object == "chat.completion.chunk" and c.id == chunks[0].id for c in chunks)
        assert chunks[0].choices[0].delta.role == "assistant"
        text = "".join(c.choices[0].delta.content or "" for c in chunks)
        assert text == Agent.answer("stream it")
        pieces = [c.choices[0].delta.content for c in chunks if c.choices[0].delta.content]
        assert len(pieces) > 2  # it came in pieces, not as one
        assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
        assert all(c.choices[0].finish_reason is None for c in chunks[:-1])


async def test_the_raw_stream_ends_with_done() -> None:
    async with served_chat() as s:
        token = await s.token("acme", "operator")
        async with httpx.AsyncClient(timeout=20) as http, http.stream(
                "POST", f"{s.url}/chat/completions", headers={"authorization": f"Bearer {token}"},
                json={"model": "assistant", "stream": True, "messages": [{"role": "user", "content": "x"}]}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            lines = [line async for line in r.aiter_lines() if line]
        assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)


@pytest.mark.parametrize(("body", "code", "param"), [
    ({"model": "assistant", "messages": []}, "invalid_messages", "messages"),
    ({"model": "assistant"}, "invalid_messages", "messages"),
    ({"model": "assistant", "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
     "invalid_role", "messages[1].role"),
    ({"model": "assistant", "messages": [{"role": "robot", "content": "q"}]}, "invalid_value", "messages.0.role"),
    ({"model": "assistant", "messages": [{"role": "user", "content": "q"}], "frobnicate": 1}, "unknown_parameter",
     "frobnicate"),
    ({"model": "assistant", "messages": [{"role": "user", "content": "   "}]}, "invalid_content",
     "messages[0].content"),
    ({"model": "assistant", "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {
        "url": "https://x"}}]}]}, "invalid_content", "messages[0].content[0]"),
    ({"model": "assistant", "messages": [{"role": "user", "content": "q"}], "n": 2}, "invalid_value", "n"),
    ({"model": "", "messages": [{"role": "user", "content": "q"}]}, "invalid_value", "model"),
])
async def test_bad_input_is_a_400_in_openais_error_shape_and_nothing_is_published(
        body: dict[str, Any], code: str, param: str) -> None:
    async with served_chat() as s:
        token = await s.token("acme", "operator")
        with pytest.raises(openai.BadRequestError) as caught:
            extra = {k: v for k, v in body.items() if k not in ("model", "messages")}
            await client(s, token).chat.completions.create(model=body.get("model", "assistant"),
                                                           messages=body.get("messages", openai.omit),
                                                           extra_body=extra or None)
        error = caught.value.body
        assert isinstance(error, dict) and error["code"] == code and error["param"] == param, error
        assert error["type"] == "invalid_request_error" and error["message"]
        assert s.agent.published == []


async def test_a_body_that_is_not_json_or_not_an_object_is_a_400() -> None:
    async with served_chat() as s:
        token = await s.token("acme", "operator")
        async with httpx.AsyncClient() as http:
            for content in (b"{not json", b"[1, 2]", b"\xff\xfe"):
                r = await http.post(f"{s.url}/chat/completions", content=content,
                                    headers={"authorization": f"Bearer {token}"})
                assert r.status_code == 400 and set(r.json()["error"]) == {"message", "type", "param", "code"}
            r = await http.post(f"{s.url}/chat/completions", content=b"x" * (65 * 1024),
                                headers={"authorization": f"Bearer {token}"})
            assert r.status_code == 413
        assert s.agent.published == []


async def test_tokens_of_another_tenant_a_viewer_an_owner_or_none_are_refused() -> None:
    async with served_chat() as s:
        ask = {"model": "assistant", "messages": [{"role": "user", "content": "secret?"}]}
        globex = await s.token("globex", "admin")
        with pytest.raises(openai.NotFoundError) as nf:
            await client(s, globex).chat.completions.create(**ask)
        assert isinstance(nf.value.body, dict) and nf.value.body["code"] == "model_not_found"
        viewer = await s.token("acme", "viewer")
        with pytest.raises(openai.PermissionDeniedError):
            await client(s, viewer).chat.completions.create(**ask)
        owner = await s.token(None, "owner")
        with pytest.raises(openai.PermissionDeniedError):
            await client(s, owner).chat.completions.create(**ask)
        for bad in ("agb_000000000000_" + "x" * 30, "sk-not-ours"):
            with pytest.raises(openai.AuthenticationError) as au:
                await client(s, bad).chat.completions.create(**ask)
            assert isinstance(au.value.body, dict) and au.value.body["code"] == "invalid_api_key"
        assert s.agent.published == []
        # globex reaches its own agent, and /v1/models lists only the tenant's own agents
        resp = await client(s, globex).chat.completions.create(model="helper", messages=ask["messages"])
        assert resp.choices[0].message.content == Agent.answer("secret?")
        assert [m.id async for m in client(s, globex).models.list()] == ["helper"]


async def test_an_unanswered_request_is_a_504_with_the_reason() -> None:
    async with served_chat(chat_config(reply_timeout_s=0.3), silent=True) as s:
        token = await s.token("acme", "operator")
        with pytest.raises(openai.InternalServerError) as caught:
            await client(s, token).chat.completions.create(model="assistant",
                                                           messages=[{"role": "user", "content": "hello?"}])
        assert caught.value.status_code == 504
        assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "reply_timeout"
        assert len(s.agent.questions()) == 1  # it was asked: the answer will still land in memory


async def test_a_stream_that_stops_before_the_answer_ends_with_an_error_event() -> None:
    async with served_chat(chat_config(reply_timeout_s=0.5), stall_after_partials=True) as s:
        token = await s.token("acme", "operator")
        stream = await client(s, token).chat.completions.create(
            model="assistant", messages=[{"role": "user", "content": "slow"}], stream=True)
        got: list[str] = []
        with pytest.raises(openai.APIError) as caught:
            async for c in stream:
                got.append(c.choices[0].delta.content or "")
        assert "did not finish" in caught.value.message
        assert Agent.answer("slow").startswith("".join(got)) and "".join(got)


async def test_over_the_quota_is_a_429_with_retry_after_and_nothing_published() -> None:
    async with served_chat() as s:
        s.quota.refuse = True
        token = await s.token("acme", "operator")
        with pytest.raises(openai.RateLimitError) as caught:
            await client(s, token).chat.completions.create(model="assistant",
                                                           messages=[{"role": "user", "content": "again"}])
        assert caught.value.response.headers["retry-after"] == "13"
        assert isinstance(caught.value.body, dict) and caught.value.body["code"] == "rate_limit_exceeded"
        assert s.agent.published == []


async def test_not_following_replies_yet_is_a_503() -> None:
    async with served_chat() as s:
        s.ready[0] = False
        token = await s.token("acme", "operator")
        with pytest.raises(openai.InternalServerError) as caught:
            await client(s, token).chat.completions.create(model="assistant",
                                                           messages=[{"role": "user", "content": "q"}])
        assert caught.value.status_code == 503 and s.agent.published == []


def test_waiters_take_only_live_replies_of_api_channels_for_requests_held_here() -> None:
    import asyncio

    from agentbus.events import Chat, MessageReceived, MessageReceivedData, Sender, utcnow

    q = MessageReceived.new(MessageReceivedData(
        channel="acme-chat", channel_type="api", agent="assistant", platform_message_id="chatcmpl-1",
        sender=Sender(id="u"), chat=Chat(id="u"), text="q", received_at=utcnow()),
        source="ingress", tenant="acme", conversation="acme/acme-chat/u")
    waiters = Waiters()
    assert not waiters.offer(answer_to(q, "nobody waits"))
    queue: asyncio.Queue[Update] = waiters.open("acme-chat", "chatcmpl-1")
    assert not waiters.offer(answer_to(q, "shadow", replay=True))
    other = q.model_copy(update={"data": q.data.model_copy(update={"channel_type": "webhook"})})
    assert not waiters.offer(answer_to(other, "a webhook's reply"))
    assert waiters.offer(answer_to(q, "live"))
    assert queue.get_nowait() == Update("live", True)
    waiters.close("acme-chat", "chatcmpl-1")
    assert len(waiters) == 0 and not waiters.offer(answer_to(q, "late"))
