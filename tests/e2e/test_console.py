"""The web console in headless Chromium against the running platform: log in with a token made by
``agentbus tokens create``, see a signed webhook's message, reply and delivery appear on Live, and operate
jobs, dead letters and agents, each in English and Chinese at a desktop's and a phone's width, with
axe-core finding nothing serious on any page."""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from playwright.async_api import Page, expect

from agentbus.cli.tools import signed_request
from agentbus.stack.procs import free_port
from tests.e2e.test_operator_api import cli
from tests.fakes.oauth_provider import FakeOAuthProvider
from tests.support.browser import PHONE, Chromium, axe, shot
from tests.support.platform import Infra, Platform, base_config, run_platform, secret_for
from tests.support.servers import FakeLLM, WebhookSink, tool_call

pytestmark = pytest.mark.e2e
JAEGER = "http://jaeger.example.test:16686"  # the trace viewer the Trace page links to (never opened)


@pytest.fixture(scope="module")
async def idp() -> AsyncIterator[FakeOAuthProvider]:
    provider = await FakeOAuthProvider("cli_console", "console-secret").start()
    try:
        yield provider
    finally:
        await provider.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, llm: FakeLLM, sink: WebhookSink, idp: FakeOAuthProvider) -> AsyncIterator[Platform]:
    assert sink.server is not None
    cfg = base_config(sink.server.url, llm.base_url)
    cfg["agents"][0]["tools"] = ["now"]  # the clock, for a trace with a tool step
    cfg["channels"].append({  # a long connection to a platform that is not there: down, with its error
        "id": "acme-tg", "type": "telegram", "mode": "stream", "tenant": "acme", "agent": "assistant",
        "api_base": f"http://127.0.0.1:{free_port()}", "bot_token": {"env": "TEST_TG_CONSOLE", "default": "123:tok"},
        "poll_timeout_s": 1})
    cfg["auth"] = {"providers": {"feishu": {"app_id": "cli_console", "app_secret": {"env": "TEST_FEISHU_CONSOLE"},
                                            "authorize_url": f"{idp.url}/open-apis/authen/v1/authorize",
                                            "api_base_url": idp.url}},
                   "users": [{"provider": "feishu", "user_id": "ou_alice", "tenant": "acme", "role": "viewer"}]}
    os.environ["TEST_FEISHU_CONSOLE"] = "console-secret"  # the CLI reads the configuration too
    try:
        async with run_platform(infra, cfg, env={"AGENTBUS_SCHEDULER_TICK_S": "0.5", "AGENTBUS_JAEGER_URL": JAEGER,
                                                 "AGENTBUS_INGRESS_CHANNEL_STATE_INTERVAL_S": "0.5",
                                                 "TEST_FEISHU_CONSOLE": "console-secret"}) as p:
            yield p
    finally:
        os.environ.pop("TEST_FEISHU_CONSOLE", None)


async def send(p: Platform, conversation: str, text: str, channel: str = "acme") -> None:
    body, headers = signed_request(secret_for(channel), {"conversation": conversation, "sender": {"id": "u"},
                                                         "text": text})
    async with httpx.AsyncClient() as c:
        r = await c.post(f"{p.ingress_url}/v1/webhooks/{channel}", content=body, headers=headers)
    assert r.status_code == 202, r.text


async def token(infra: Infra, p: Platform, *args: str) -> str:
    code, out, err = await cli(infra, p, "tokens", "create", "--name", f"console-{uuid.uuid4().hex[:4]}", *args)
    assert code == 0, err
    return out.strip()


async def log_in(page: Page, p: Platform, secret: str) -> None:
    await page.goto(p.ingress_url + "/console/login")
    await page.get_by_label(re.compile("API token|API 令牌")).fill(secret)
    await page.get_by_role("button", name=re.compile("^(Log in|登录)$")).click()
    await expect(page).to_have_url(re.compile(r"/console/live"))


async def no_violations(page: Page) -> None:
    found = await axe(page)
    assert found == [], found


async def test_login_live_and_logout(infra: Infra, platform: Platform, page: Page, sink: WebhookSink) -> None:
    p = platform
    await page.goto(p.ingress_url + "/console/live")
    await expect(page).to_have_url(re.compile(r"/console/login"))  # no session: to the login page
    await shot(page, "login")
    await no_violations(page)
    await page.get_by_label("API token").fill("agb_000000000000_notatokenatallnotatoken")
    await page.get_by_role("button", name="Log in").click()
    await expect(page.get_by_role("alert")).to_contain_text("unknown token")

    await log_in(page, p, await token(infra, p, "--tenant", "acme", "--role", "operator"))
    cookie = next(c for c in await page.context.cookies() if c["name"] == "agentbus_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/console"
    assert not cookie["value"].startswith("agb_"), "the browser keeps a short-lived JWT, not the API token"
    await expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    await expect(page.get_by_text("Tenant: acme")).to_be_visible()
    await expect(page.locator("#live-status")).to_have_text(re.compile("Connected"))
    await no_violations(page)

    conv = f"live-{uuid.uuid4().hex[:6]}"
    await send(p, conv, "hello console")
    events = page.get_by_role("log", name="Events")
    await expect(events.locator("li[data-kind='message.received']", has_text="hello console")).to_be_visible()
    await expect(events.locator("li[data-kind='reply.generated']", has_text="answer: hello console")).to_be_visible()
    await expect(events.locator("li[data-kind='delivery.completed']").first).to_contain_text("delivered")
    await shot(page, "live")
    shown = [await li.get_attribute("data-conversation") or "" for li in await events.locator("li").all()]
    assert shown and all(c.startswith("acme/") for c in shown), shown

    wanted, other = f"want-{uuid.uuid4().hex[:6]}", f"skip-{uuid.uuid4().hex[:6]}"
    await page.get_by_label("Conversation").fill(wanted)  # a chat id filters to that conversation
    await page.get_by_label("Channel").select_option("acme")
    await page.get_by_role("button", name="Apply filters").click()
    await expect(page.locator("#live-status")).to_have_text(re.compile("Connected"))
    await send(p, other, "not this one")
    await send(p, wanted, "only this one")
    await expect(events.locator("li[data-kind='reply.generated']", has_text="only this one")).to_be_visible()
    assert await events.get_by_text("not this one").count() == 0

    await page.get_by_role("button", name="Log out").click()
    await expect(page.get_by_role("status")).to_have_text("You are logged out.")
    assert not [c for c in await page.context.cookies() if c["name"] == "agentbus_console"]
    await page.goto(p.ingress_url + "/console/live")
    await expect(page).to_have_url(re.compile(r"/console/login"))


def clock_script(body: dict[str, Any]) -> dict[str, Any]:
    """The model reads the clock when asked the time, then answers with what it said."""
    last = body["messages"][-1]
    if last["role"] == "tool":
        return {"content": "the clock says " + str(last["content"])[:60]}
    if "what time" in str(last["content"]):
        return {"tool_calls": [tool_call("now", {"timezone": "UTC"}, "call_now")]}
    return {"content": f"answer: {last['content']}"}


async def test_a_live_row_opens_its_messages_trace_as_a_waterfall(
    infra: Infra, platform: Platform, chromium: Chromium, llm: FakeLLM
) -> None:
    p = platform
    page = await chromium.page()
    try:
        await log_in(page, p, await token(infra, p, "--tenant", "acme", "--role", "viewer"))
        await expect(page.locator("#live-status")).to_have_text(re.compile("Connected"))
        conv = f"trace-{uuid.uuid4().hex[:6]}"
        llm.script = clock_script
        try:
            await send(p, conv, "what time is it?")
            events = page.get_by_role("log", name="Events")
            await expect(events.locator(f"li[data-kind='delivery.completed'][data-conversation='acme/acme/{conv}']")
                         ).to_contain_text("delivered")
        finally:
            llm.script = None
        reply = events.locator("li[data-kind='reply.generated']", has_text="the clock says")
        await reply.get_by_role("link", name=re.compile("^Trace")).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Trace")
        correlation = page.url.split("/console/trace/")[1].split("?")[0]
        await expect(page.locator("[data-field=correlation]")).to_have_text(correlation)
        kinds = await page.locator("tr[data-step]").evaluate_all("rs => rs.map(r => r.dataset.step)")
        chain = ["message.received", "context.assembled", "tool.called", "inference.completed", "reply.generated",
                 "delivery.completed"]
        assert [k for k in kinds if k in chain] == chain, kinds
        llm_step = page.locator("tr[data-step='inference.completed']")
        await expect(llm_step.locator("[data-field=model]")).to_have_text("fake-model")
        await expect(llm_step.locator("[data-field=tokens]")).to_have_text(re.compile(r"^\d+ → \d+$"))
        await expect(llm_step.locator("[data-field=outcome]")).to_have_text("ok")
        tool = page.locator("tr[data-step='tool.called']")
        await expect(tool.locator("[data-field=model]")).to_have_text("now")
        await expect(tool.locator("[data-field=outcome]")).to_have_text("ok")
        await expect(page.locator("tr[data-step='delivery.completed'] [data-field=outcome]")).to_have_text("delivered")
        durations = await page.locator("[data-field=duration]").all_inner_texts()
        assert len(durations) == len(kinds) and all(re.fullmatch(r"\d+ ms", d) for d in durations), durations
        bars = await page.locator("rect.span").evaluate_all(
            "rs => rs.map(r => [Number(r.getAttribute('x')), Number(r.getAttribute('width'))])")
        assert len(bars) == len(kinds) and all(0 <= x and w > 0 and x + w <= 1002 for x, w in bars), bars
        viewer = page.get_by_role("link", name=re.compile("Open in the trace viewer"))
        await expect(viewer).to_have_count(1)
        trace_id = await viewer.get_attribute("data-trace-id")
        assert trace_id and re.fullmatch(r"[0-9a-f]{32}", trace_id)
        assert await viewer.get_attribute("href") == f"{JAEGER}/trace/{trace_id}"
        await shot(page, "trace")
        await no_violations(page)
        await every_control_is_reached_by_the_keyboard(page, page.url, "tr[data-step]")

        await page.get_by_label("Correlation id").fill("not-a-uuid")  # the lookup form: a clear refusal
        await page.get_by_role("button", name="Show trace").click()
        await expect(page.get_by_role("alert")).to_contain_text("A correlation id is a UUID")
        await page.get_by_label("Correlation id").fill(str(uuid.uuid4()))
        await page.get_by_label("Look back").select_option("1")
        await page.get_by_role("button", name="Show trace").click()
        await expect(page.get_by_role("alert")).to_contain_text("no message")  # the API's 404, with its reason
        await page.get_by_label("Correlation id").fill(correlation)
        await page.get_by_role("button", name="Show trace").click()
        await expect(page.locator("tr[data-step]")).to_have_count(len(kinds))
    finally:
        await page.close()

    phone = await chromium.page(lang="zh-CN,zh;q=0.9", viewport=PHONE)
    try:
        await log_in(phone, p, await token(infra, p, "--tenant", "acme", "--role", "viewer"))
        await phone.goto(p.ingress_url + f"/console/trace/{correlation}")
        await expect(phone.get_by_role("heading", level=1)).to_have_text("消息追踪")
        await expect(phone.locator("tr[data-step='inference.completed']")).to_contain_text("大模型推理")
        await shot(phone, "trace-phone-zh")
        await no_violations(phone)
        assert await phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        other = await token(infra, p, "--tenant", "globex", "--role", "viewer")  # another tenant sees nothing
        await phone.context.clear_cookies()
        await log_in(phone, p, other)
        await phone.goto(p.ingress_url + f"/console/trace/{correlation}")
        await expect(phone.get_by_role("alert")).to_contain_text(correlation)
        assert await phone.locator("tr[data-step]").count() == 0
    finally:
        await phone.close()


async def test_live_in_chinese_on_a_phone_shows_only_its_tenant(
    infra: Infra, platform: Platform, chromium: Chromium
) -> None:
    p = platform
    page = await chromium.page(lang="zh-CN,zh;q=0.9", viewport=PHONE)
    try:
        await log_in(page, p, await token(infra, p, "--tenant", "globex", "--role", "viewer"))
        await expect(page.get_by_role("heading", level=1)).to_have_text("实时")
        await expect(page.locator("#live-status")).to_have_text(re.compile("已连接"))
        await send(p, f"other-{uuid.uuid4().hex[:6]}", "for acme only")  # acme's: never shown to globex
        await send(p, f"phone-{uuid.uuid4().hex[:6]}", "globex 的消息", channel="globex")
        await expect(page.locator("li[data-kind='reply.generated']", has_text="globex 的消息")).to_be_visible()
        assert await page.get_by_text("for acme only").count() == 0
        await shot(page, "live-phone-zh")
        await no_violations(page)
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], "nothing wider than the phone's screen"
        await page.goto(p.ingress_url + "/console/live?lang=en")  # a choice remembered in a cookie
        await expect(page.get_by_role("heading", level=1)).to_have_text("Live")
        await page.goto(p.ingress_url + "/console/live")
        await expect(page.get_by_role("heading", level=1)).to_have_text("Live")
    finally:
        await page.close()


async def reload_until(page: Page, locator: str, text: str) -> None:
    """Reload until ``locator`` shows ``text`` (the scheduler applies commands a moment after the API)."""
    for _ in range(60):
        await page.reload()
        if text in (await page.locator(locator).all_inner_texts() or [""])[0]:
            return
        await page.wait_for_timeout(250)
    raise AssertionError(f"{locator} never showed {text!r}")


async def test_jobs_cron_preview_create_pause_and_cancel(infra: Infra, platform: Platform, page: Page) -> None:
    p = platform
    await log_in(page, p, await token(infra, p, "--tenant", "acme", "--role", "operator"))
    await page.get_by_role("link", name="Jobs").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Jobs")
    await expect(page.locator("#preview li")).to_have_count(5)  # the defaults: 09:00 on weekdays
    await page.get_by_label("Minute").fill("30")
    await page.get_by_label("Hour").fill("8")
    await page.get_by_label("Day of week").fill("6")
    await expect(page.get_by_test_id("expr")).to_have_text("30 8 * * 6")
    times = await page.locator("#preview li time").evaluate_all("ts => ts.map(t => t.getAttribute('datetime'))")
    assert len(times) == 5 and all(t.endswith("+00:00") and "T08:30:00" in t for t in times), times
    assert all("Saturday" in x for x in await page.locator("#preview li").all_inner_texts())
    await page.get_by_label("Hour").fill("25")
    await expect(page.locator("#preview [role=alert]")).to_be_visible()  # croniter refuses the hour
    await page.get_by_label("Hour").fill("8")
    await no_violations(page)

    job = f"weekly-{uuid.uuid4().hex[:4]}"
    await page.get_by_label("Job id (optional)").fill(job)
    await page.get_by_label("Chat id").fill("team")
    await page.get_by_label("Prompt", exact=True).fill("Weekly summary, please")
    await page.get_by_label("Time zone").fill("Mars/Base")
    await page.get_by_role("button", name="Create job").click()
    await expect(page.locator("div[role=alert]")).to_contain_text("body.schedule.timezone")  # the API's reason
    assert await page.get_by_label("Chat id").input_value() == "team"
    await page.get_by_label("Time zone").fill("Asia/Shanghai")
    await page.get_by_role("button", name="Create job").click()
    await expect(page.get_by_role("status")).to_contain_text(job)
    row = f"tr[data-job='{job}'] [data-state]"
    await reload_until(page, row, "active")
    await expect(page.locator(f"tr[data-job='{job}']")).to_contain_text("cron 30 8 * * 6")
    await page.get_by_role("button", name=f"Pause {job}").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Pause {job}")
    await reload_until(page, row, "paused")
    await page.get_by_label("Minute").fill("30")  # the preview shown in the screenshot
    await expect(page.locator("#preview li")).to_have_count(5)
    await shot(page, "jobs")
    await page.get_by_role("button", name=f"Cancel {job}").click()
    await expect(page.get_by_role("status")).to_contain_text(f"Cancel {job}")
    await reload_until(page, row, "cancelled")
    await no_violations(page)


async def test_a_viewer_sees_no_write_controls_and_a_forged_post_is_refused(
    infra: Infra, platform: Platform, page: Page
) -> None:
    p = platform
    operator = await token(infra, p, "--tenant", "acme", "--role", "operator")
    await log_in(page, p, operator)
    await page.goto(p.ingress_url + "/console/jobs")
    job = f"daily-{uuid.uuid4().hex[:4]}"
    await page.get_by_label("Job id (optional)").fill(job)
    await page.get_by_label("Chat id").fill("team")
    await page.get_by_label("Prompt", exact=True).fill("Daily")
    await page.get_by_role("button", name="Create job").click()
    await expect(page.get_by_role("status")).to_contain_text(job)
    await reload_until(page, f"tr[data-job='{job}'] [data-state]", "active")
    await page.context.clear_cookies()

    await log_in(page, p, await token(infra, p, "--tenant", "acme", "--role", "viewer"))
    await page.goto(p.ingress_url + "/console/jobs")
    await expect(page.locator(f"tr[data-job='{job}']")).to_be_visible()
    assert await page.locator("main form, main button").count() == 0
    await expect(page.get_by_text("Your role can read this page")).to_be_visible()
    await no_violations(page)
    csrf = await page.locator("body").get_attribute("data-csrf")
    forged = await page.request.post(p.ingress_url + f"/console/jobs/{job}/pause?tenant=acme",
                                     form={"csrf": csrf or ""})
    assert forged.status == 403 and "needs the operator role" in await forged.text()
    no_token = await page.request.post(p.ingress_url + f"/console/jobs/{job}/pause?tenant=acme", form={})
    assert no_token.status == 403 and "did not come from this console" in await no_token.text()
    await page.goto(p.ingress_url + "/console/jobs")
    await expect(page.locator(f"tr[data-job='{job}'] [data-state]")).to_have_text("active")


async def test_dead_letters_redriven_after_confirmation_in_chinese(
    infra: Infra, platform: Platform, chromium: Chromium, llm: FakeLLM, sink: WebhookSink
) -> None:
    p = platform
    page = await chromium.page(lang="zh-CN,zh;q=0.9")
    try:
        await log_in(page, p, await token(infra, p, "--tenant", "acme", "--role", "operator"))
        conv = f"dl-{uuid.uuid4().hex[:6]}"
        text = f"please answer {uuid.uuid4().hex[:6]}"
        llm.fail_status = 400  # the provider refuses: dead-lettered by the reasoner at once
        try:
            await send(p, conv, text)
            await page.get_by_role("link", name="死信").click()
            await reload_until(page, "main", conv)
        finally:
            llm.fail_status = None
        await expect(page.get_by_role("heading", level=1)).to_have_text("死信")
        row = page.locator("tr", has_text=conv)
        await expect(row).to_contain_text("reasoner")
        await expect(row).to_contain_text("400")
        await shot(page, "dead-letters-zh")
        await no_violations(page)

        await page.get_by_role("button", name="重新投递所选").click()  # nothing selected: said so
        await expect(page.get_by_role("alert")).to_have_text("请至少选择一条死信。")
        await page.locator("tr", has_text=conv).get_by_role("checkbox").check()
        await page.get_by_role("button", name="重新投递所选").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("确认重新投递")
        await expect(page.locator(".chosen li")).to_have_count(1)
        await expect(page.locator(".chosen li")).to_contain_text(conv)
        await shot(page, "dead-letters-confirm-zh")
        await no_violations(page)
        await page.get_by_role("button", name="确认重新投递").click()
        await expect(page.get_by_role("status")).to_contain_text("已重新投递")
        [answer] = await sink.wait_for(lambda m: m["conversation"] == conv and text in m["text"])
        assert answer["text"] == f"answer: {text}"
        await page.get_by_role("link", name="返回").click()  # the letter stays listed; one row's own button
        await page.locator("tr", has_text=conv).get_by_role("button", name=re.compile("^重新投递 ")).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("确认重新投递")
        await expect(page.locator(".chosen li")).to_have_count(1)
    finally:
        await page.close()


async def test_an_owner_switches_an_agents_model_and_sees_model_health(
    infra: Infra, platform: Platform, page: Page, llm: FakeLLM, sink: WebhookSink
) -> None:
    p = platform
    await log_in(page, p, await token(infra, p, "--owner"))
    await page.get_by_role("banner").get_by_label("Tenant").select_option("globex")  # the owner's tenant selector
    await page.get_by_role("banner").get_by_role("button", name="Switch").click()
    await expect(page.get_by_role("banner").get_by_label("Tenant")).to_have_value("globex")
    await page.get_by_role("link", name="Agents and models").click()
    await expect(page.get_by_role("banner").get_by_label("Tenant")).to_have_value("globex")  # remembered
    conv = f"agent-{uuid.uuid4().hex[:6]}"
    await send(p, conv, "warm up the model")
    await sink.wait_for(lambda m: m["conversation"] == conv)
    await reload_until(page, "tr[data-model='fake'] [data-health]", "up")  # the reasoner's view, via the API
    await no_violations(page)

    agent = page.locator("section[data-agent='assistant']")
    await agent.get_by_text("Edit assistant").click()
    await agent.get_by_label("Fallback models").fill("nope")
    await agent.get_by_role("button", name="Save agent").click()
    await expect(page.locator("div[role=alert]")).to_contain_text("fallback_models[0]: unknown model 'nope'")
    agent = page.locator("section[data-agent='assistant']")
    await agent.get_by_label("Fallback models").fill("")
    await agent.get_by_label("Model", exact=True).select_option("echo")
    await agent.get_by_role("button", name="Save agent").click()
    await expect(page.get_by_role("status")).to_contain_text("Saved: the configuration is now version")
    await expect(page.locator("section[data-agent='assistant'] [data-field=model]")).to_have_text("echo")
    await shot(page, "agents", full_page=True)
    try:
        asked = f"who answers {uuid.uuid4().hex[:6]}"
        await send(p, conv, asked)
        [reply] = await sink.wait_for(lambda m: m["conversation"] == conv and "[echo model]" in m["text"])
        assert llm.calls_with(asked) == [], "the next message went to the new model"
    finally:
        agent = page.locator("section[data-agent='assistant']")
        await agent.get_by_label("Model", exact=True).select_option("fake")
        await agent.get_by_role("button", name="Save agent").click()
        await expect(page.locator("section[data-agent='assistant'] [data-field=model]")).to_have_text("fake")


async def test_a_replay_with_another_system_prompt_is_followed_and_reported_with_a_word_diff(
    infra: Infra, platform: Platform, chromium: Chromium, llm: FakeLLM, sink: WebhookSink
) -> None:
    p = platform
    page = await chromium.page()
    try:
        await log_in(page, p, await token(infra, p, "--tenant", "acme", "--role", "operator"))
        conv = f"replay-{uuid.uuid4().hex[:6]}"
        asked = f"tell me about {uuid.uuid4().hex[:6]}"
        await send(p, conv, asked)
        await sink.wait_for(lambda m: m["conversation"] == conv and asked in m["text"])
        pushes = len(sink.received)
        await page.get_by_role("link", name="Replay").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Replay")
        await no_violations(page)
        await every_control_is_reached_by_the_keyboard(page, page.url)

        await page.get_by_label("Conversation").fill(conv)
        await page.get_by_label("System prompt").fill("Answer in one line.")
        await page.get_by_role("button", name="Start replay").click()  # a prompt without a new LLM call: refused
        await expect(page.get_by_role("alert")).to_contain_text("need rerun_llm")
        assert await page.get_by_label("Conversation").input_value() == conv  # the form as it was
        await page.get_by_label("Call the LLM again").check()
        llm.reply_prefix = "reply: "  # the provider answers differently now
        try:
            await page.get_by_role("button", name="Start replay").click()
            await expect(page.get_by_role("heading", level=1)).to_contain_text("Replay run")
            await expect(page.locator("#run-status")).to_have_attribute("data-status", "done", timeout=60_000)
        finally:
            llm.reply_prefix = "answer: "
        run = page.url.split("/console/replays/")[1].split("?")[0]
        assert any(m["role"] == "system" and "Answer in one line." in str(m["content"])
                   for call in llm.calls for m in call["messages"]), "the replay used the new system prompt"
        await expect(page.locator("[data-field=selected]")).to_have_text("1")
        await expect(page.locator("[data-field=changed]")).to_have_text("1")
        await expect(page.locator("[data-field=pushed]")).to_have_text("0")
        entry = page.locator("section.compare")
        await expect(entry).to_have_count(1)
        await expect(entry.locator("[data-side=original] del")).to_have_text(["answer"])
        await expect(entry.locator("[data-side=replayed] ins")).to_have_text(["reply"])
        await expect(entry.locator("[data-side=original]")).to_have_text(f"answer: {asked}")
        await expect(entry.locator("[data-side=replayed]")).to_have_text(f"reply: {asked}")
        await shot(page, "replay", full_page=True)
        await no_violations(page)
        assert len(sink.received) == pushes, "a replayed reply is never pushed"
    finally:
        await page.close()

    phone = await chromium.page(lang="zh-CN,zh;q=0.9", viewport=PHONE)
    try:
        await log_in(phone, p, await token(infra, p, "--tenant", "acme", "--role", "viewer"))
        await phone.goto(p.ingress_url + "/console/replays")
        await expect(phone.get_by_role("heading", level=1)).to_have_text("重放")
        assert await phone.locator("main form[method=post]").count() == 0  # a viewer starts nothing
        await phone.get_by_label("运行 ID").fill("../etc")
        await phone.get_by_role("button", name="打开运行").click()
        await expect(phone.get_by_role("alert")).to_contain_text("不是重放运行 ID")
        await phone.get_by_label("运行 ID").fill(run)
        await phone.get_by_role("button", name="打开运行").click()
        await expect(phone.locator("#run-status")).to_have_attribute("data-status", "done")
        await expect(phone.locator("[data-side=replayed] ins")).to_have_text(["reply"])
        await shot(phone, "replay-phone-zh")
        await no_violations(phone)
        assert await phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        missing = await phone.request.get(p.ingress_url + "/console/replays/replay-000000000000?tenant=acme")
        assert missing.status == 404 and "no replay run" in await missing.text()
    finally:
        await phone.close()


async def test_a_conversations_history_and_memories_and_forgetting_one_of_them(
    infra: Infra, platform: Platform, chromium: Chromium, sink: WebhookSink
) -> None:
    p = platform
    page = await chromium.page()
    try:
        await log_in(page, p, await token(infra, p, "--tenant", "acme", "--role", "operator"))
        conv = f"conv-{uuid.uuid4().hex[:6]}"
        key = f"acme/acme/{conv}"
        await send(p, conv, "my locker number is 4711")
        await sink.wait_for(lambda m: m["conversation"] == conv)
        await page.get_by_role("link", name="Conversations").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Conversations")
        await reload_until(page, "main", key)
        await expect(page.locator(f"tr[data-conversation='{key}']")).to_contain_text("acme")
        await no_violations(page)
        await page.get_by_role("link", name=key).click()
        await expect(page.get_by_role("heading", level=1)).to_contain_text(key)
        memories = page.locator("li[data-memory]")
        await reload_until(page, "section[aria-labelledby=memories-title]", "answer: my locker number is 4711")
        await expect(page.locator("li.turn")).to_have_count(2)
        roles = await page.locator("li.turn").evaluate_all("ts => ts.map(t => t.dataset.role)")
        assert roles == ["assistant", "user"], roles  # newest first
        user_turn = page.locator("li.turn[data-role=user]")
        trace = await user_turn.get_by_role("link", name=re.compile("^Trace")).get_attribute("href")
        assert trace and "/console/trace/" in trace
        await expect(memories).to_have_count(2)
        await shot(page, "conversation")
        await no_violations(page)
        await every_control_is_reached_by_the_keyboard(page, page.url, "li[data-memory]")

        said = memories.filter(has=page.locator(".said", has_text=re.compile("^my locker number is 4711$")))
        memory_id = await said.get_attribute("data-memory")
        assert memory_id
        await said.get_by_role("button", name=re.compile("^Forget")).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Forget this memory?")
        await expect(page.locator(".said")).to_have_text("my locker number is 4711")
        await no_violations(page)
        await page.get_by_role("button", name="Yes, forget it").click()
        await expect(page.get_by_role("status")).to_contain_text(memory_id)
        for _ in range(60):  # memory applies the command a moment later
            if await page.locator(f"li[data-memory='{memory_id}']").count() == 0:
                break
            await page.wait_for_timeout(250)
            await page.reload()
        await expect(page.locator(f"li[data-memory='{memory_id}']")).to_have_count(0)
        await expect(memories).to_have_count(1)  # the reply's memory stays
        await expect(page.locator("li.turn")).to_have_count(2)  # and the history is kept
        csrf = await page.locator("body").get_attribute("data-csrf")
        again = await page.request.post(p.ingress_url + "/console/memories/forget?tenant=acme",
                                        form={"csrf": csrf or "", "conversation": key, "memory": memory_id})
        assert again.status == 404 and "no memory" in await again.text()  # gone: a clear answer, no second effect
        await page.get_by_role("link", name="Replay this conversation").click()
        await expect(page.get_by_label("Conversation")).to_have_value(key)
    finally:
        await page.close()

    phone = await chromium.page(lang="zh-CN,zh;q=0.9", viewport=PHONE)
    try:
        await log_in(phone, p, await token(infra, p, "--tenant", "acme", "--role", "viewer"))
        await phone.goto(p.ingress_url + f"/console/conversations/{key}")
        await expect(phone.get_by_role("heading", level=2, name="记忆")).to_be_visible()
        await expect(phone.locator("li[data-memory]")).to_have_count(1)
        assert await phone.get_by_role("button", name=re.compile("^遗忘")).count() == 0  # a viewer forgets nothing
        await shot(phone, "conversation-phone-zh")
        await no_violations(phone)
        assert await phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        remaining = await phone.locator("li[data-memory]").get_attribute("data-memory")
        csrf = await phone.locator("body").get_attribute("data-csrf")
        forged = await phone.request.post(p.ingress_url + "/console/memories/forget?tenant=acme",
                                          form={"csrf": csrf or "", "conversation": key, "memory": remaining or ""})
        assert forged.status == 403 and "operator" in await forged.text()
        await phone.goto(p.ingress_url + "/console/conversations/globex/globex/anything")
        await expect(phone.get_by_role("alert")).to_contain_text("no conversation")  # another tenant's key
    finally:
        await phone.close()


async def test_channels_show_what_the_replicas_see_and_a_platforms_setup_steps(
    infra: Infra, platform: Platform, chromium: Chromium
) -> None:
    p = platform
    page = await chromium.page()
    try:
        await log_in(page, p, await token(infra, p, "--tenant", "acme", "--role", "viewer"))
        await send(p, f"ch-{uuid.uuid4().hex[:6]}", "counted")
        body, headers = signed_request(secret_for("acme"), {"conversation": "x", "sender": {"id": "u"}, "text": "t"})
        async with httpx.AsyncClient() as c:  # a request the channel refuses: counted, with its reason
            bad = await c.post(f"{p.ingress_url}/v1/webhooks/acme", content=body,
                               headers={**headers, "webhook-signature": "v1,AAAA"})
        assert bad.status_code == 401, bad.text
        reason = bad.json()["error"]
        await page.get_by_role("link", name="Channels").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Channels")
        hook = page.locator("section[data-channel=acme]")
        await reload_until(page, "section[data-channel=acme] [data-field=webhook-error]", reason)
        await expect(hook.locator("[data-field=webhook-error]")).to_contain_text("401")
        hits = int(await hook.locator("[data-field=hits]").inner_text())
        assert hits >= 2
        await expect(hook.locator("[data-field=outcomes]")).to_contain_text(re.compile(r"refused [1-9]"))
        tg = page.locator("section[data-channel=acme-tg]")
        await reload_until(page, "section[data-channel=acme-tg] [data-field=connection-error]", "Error")
        await expect(tg.locator("[data-field=connection]")).to_have_attribute("data-status", "down")
        holder = await tg.locator("[data-field=holder]").inner_text()
        replicas = await page.locator("[data-field=replicas]").inner_text()
        assert holder and holder in replicas, (holder, replicas)  # one ingress: the holder reported lately
        await hook.get_by_text("As each replica sees acme").click()
        await expect(hook.locator("tr[data-replica]")).to_have_count(1)

        await hook.get_by_role("link", name="Setup steps for Signed webhook").click()
        doc = page.locator("article.doc")
        await expect(doc).to_have_attribute("data-platform", "webhook")
        await page.get_by_label("Platform").select_option("feishu")
        await page.get_by_role("button", name="Show setup steps").click()
        await expect(doc).to_have_attribute("data-platform", "feishu")
        await expect(doc.locator("h3").first).to_have_text("Feishu / Lark")  # under the page's own headings
        assert await doc.locator("h1, h2").count() == 0
        await expect(doc).to_contain_text("https://<host>/v1/webhooks/")  # escaped, not taken for a tag
        assert await doc.locator("script, host").count() == 0
        await page.evaluate("window.scrollTo(0, 0)")  # the screenshot shows the states, above the steps
        await shot(page, "channels")
        await no_violations(page)
        await every_control_is_reached_by_the_keyboard(page, page.url.split("#")[0], "article.doc")
        unknown = await page.request.get(p.ingress_url + "/console/channels?platform=nope")
        assert unknown.status == 404 and "No such platform" in await unknown.text()
    finally:
        await page.close()

    phone = await chromium.page(lang="zh-CN,zh;q=0.9", viewport=PHONE)
    try:
        await log_in(phone, p, await token(infra, p, "--tenant", "acme", "--role", "viewer"))
        await phone.goto(p.ingress_url + "/console/channels?platform=feishu")
        await expect(phone.get_by_role("heading", level=1)).to_have_text("渠道")
        await expect(phone.locator("section[data-channel=acme-tg] [data-field=connection]")).to_have_text("已断开")
        await shot(phone, "channels-phone-zh")
        await no_violations(phone)
        assert await phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    finally:
        await phone.close()


async def test_usage_charts_the_tenants_answers_tokens_and_latency(
    infra: Infra, platform: Platform, chromium: Chromium, sink: WebhookSink
) -> None:
    p = platform
    conv = f"usage-{uuid.uuid4().hex[:6]}"
    for text in ("first question", "second question"):
        await send(p, conv, text)
        await sink.wait_for(lambda m, text=text: m["conversation"] == conv and text in m["text"])
    viewer = await token(infra, p, "--tenant", "acme", "--role", "viewer")
    async with httpx.AsyncClient() as c:  # the API's numbers, to compare the page with
        resp = await c.get(f"{p.ingress_url}/api/v1/tenants/acme/usage", headers={"authorization": f"Bearer {viewer}"})
    assert resp.status_code == 200, resp.text
    rows = [r for r in resp.json()["items"] if r["agent"] is None]
    answers = sum(r["messages"] for r in rows)
    assert answers >= 2 and resp.json()["agents"] == ["assistant"]
    page = await chromium.page()
    try:
        await log_in(page, p, viewer)
        await page.get_by_role("link", name="Usage").click()
        await expect(page.get_by_role("heading", level=1)).to_have_text("Usage")
        shown = int(await page.locator("[data-field=messages]").inner_text())
        assert shown >= answers  # later answers may have come since
        tokens_in = int(await page.locator("[data-field=prompt_tokens]").inner_text())
        assert tokens_in >= sum(r["prompt_tokens"] for r in rows) > 0
        bars = page.locator("figure[data-chart=messages] svg rect")
        assert await bars.count() >= 1
        heights = [float(h) for h in await bars.evaluate_all("rs => rs.map(r => r.getAttribute('height'))")]
        assert all(h > 0 for h in heights), heights
        await expect(page.locator("figure[data-chart=latency] svg circle").first).to_be_attached()
        await expect(page.locator("figure[data-chart=messages] .legend")).to_contain_text("assistant")
        numbers = page.locator("figure[data-chart=messages] table.numbers tbody tr")
        assert await numbers.count() in (24, 25)  # the last 24 hours by hour: the hours they touch
        cells = await page.locator("figure[data-chart=messages] table.numbers tbody td.num").evaluate_all(
            "ts => ts.map(t => t.textContent)")  # inside a closed <details>: read, not shown
        assert sum(float(c) for c in cells) == shown  # the table says what the bars draw
        await shot(page, "usage", full_page=True)
        await no_violations(page)
        await every_control_is_reached_by_the_keyboard(page, page.url, "figure[data-chart=messages]")
        await page.get_by_label("Time range").select_option("30d")
        await page.get_by_label("Agent").select_option("assistant")
        await page.get_by_role("button", name="Show usage").click()
        await expect(page.get_by_label("Time range")).to_have_value("30d")
        assert await page.locator("figure[data-chart=messages] table.numbers tbody tr").count() in (30, 31)
        assert int(await page.locator("[data-field=messages]").inner_text()) >= shown
    finally:
        await page.close()

    phone = await chromium.page(lang="zh-CN,zh;q=0.9", viewport=PHONE)
    try:
        await log_in(phone, p, await token(infra, p, "--tenant", "globex", "--role", "viewer"))
        await phone.goto(p.ingress_url + "/console/usage")
        await expect(phone.get_by_role("heading", level=1)).to_have_text("用量")
        await expect(phone.locator("figure[data-chart=tokens] figcaption")).to_contain_text("令牌数")
        await shot(phone, "usage-phone-zh")
        await no_violations(phone)
        assert await phone.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        bad = await phone.request.get(p.ingress_url + "/console/usage?range=forever")  # an unknown range: the default
        assert bad.status == 200
    finally:
        await phone.close()


async def test_a_person_logs_in_through_feishu(platform: Platform, page: Page, idp: FakeOAuthProvider) -> None:
    p = platform
    idp.person = {"name": "Alice", "open_id": "ou_alice", "union_id": "on_alice"}
    await page.goto(p.ingress_url + "/console/login")
    await page.get_by_role("link", name="Feishu / Lark").click()  # to the provider and back, as a browser does
    await expect(page).to_have_url(re.compile(r"/console/live"))
    await expect(page.get_by_role("banner")).to_contain_text("Alice")
    await expect(page.get_by_role("banner")).to_contain_text("viewer")
    cookie = next(c for c in await page.context.cookies() if c["name"] == "agentbus_console")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    idp.person = {"name": "Eve", "open_id": "ou_eve"}
    await page.context.clear_cookies()
    await page.goto(p.ingress_url + "/console/login")
    await page.get_by_role("link", name="Feishu / Lark").click()
    await expect(page.get_by_text("may not log in")).to_be_visible()  # the API's refusal, no session
    assert not [c for c in await page.context.cookies() if c["name"] == "agentbus_console"]


MARK_CONTROLS = """() => {
  const all = [...document.querySelectorAll('a[href], button, input:not([type=hidden]), select, textarea, summary')];
  const shown = all.filter(e => e.getClientRects().length > 0 || e.classList.contains('skip'));
  // a group of radio buttons is one stop of the Tab key (the arrows move within it)
  const stops = shown.filter(e => e.type !== 'radio' || e.checked);
  stops.forEach((e, i) => e.setAttribute('data-kb', String(i)));
  return stops.length;
}"""


async def every_control_is_reached_by_the_keyboard(page: Page, url: str, ready: str | None = None) -> None:
    """Tab from the top of the page at ``url`` (once ``ready`` shows) reaches every visible control, the skip
    link first."""
    await page.goto(url)
    if ready:
        await expect(page.locator(ready).first).to_be_visible()
    stops = await page.evaluate(MARK_CONTROLS)
    reached: list[str | None] = []
    wanted = {str(i) for i in range(stops)}
    for _ in range(6 * stops + 3):  # a date and time input is several stops (its day, month, hour, ...)
        await page.keyboard.press("Tab")
        reached.append(await page.evaluate("document.activeElement && document.activeElement.dataset.kb"))
        if wanted <= set(reached):
            break
    assert reached[0] == "0" and await page.locator("[data-kb='0']").get_attribute("class") == "skip"
    assert wanted <= set(reached), sorted(wanted - set(reached), key=int)


async def test_every_control_is_reached_by_the_keyboard(infra: Infra, platform: Platform, page: Page) -> None:
    p = platform
    await log_in(page, p, await token(infra, p, "--tenant", "acme", "--role", "operator"))
    await every_control_is_reached_by_the_keyboard(page, p.ingress_url + "/console/jobs", "#preview li")
    await expect(page.locator("#preview li")).to_have_count(5)
    await page.goto(p.ingress_url + "/console/jobs")
    await page.keyboard.press("Tab")
    await page.keyboard.press("Enter")  # the skip link
    assert await page.evaluate("document.activeElement.id") == "main"
    outline = await page.evaluate("""() => { const b = document.querySelector('main button');
        b.focus(); return getComputedStyle(b).outlineStyle; }""")
    assert outline != "none", "the focused control shows a focus ring"
