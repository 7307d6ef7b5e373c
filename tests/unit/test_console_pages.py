"""The console over real HTTP in front of the operator API with fake ports: a session only from a token the
API accepts, every write checked for the session's CSRF token and then decided by the API (nothing
published when either refuses), bad input a clear 4xx page, the headers that keep scripts our own, and
the helpers that turn forms into the API's bodies."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
import pytest
from starlette.routing import Mount

from agentbus.config import parse_config
from agentbus.events import ReplayRequested
from agentbus.http import LoopbackServer
from agentbus.services.ingress.api.access import mint, token_hash
from agentbus.services.ingress.api.app import PREFIX, ApiDeps, operator_api
from agentbus.services.ingress.api.auth_jwt import Signer
from agentbus.services.ingress.api.channel_routes import FRESH_S, channel_state
from agentbus.services.ingress.api.ports import ChannelStateRow
from agentbus.services.ingress.console.agents import edited_agent
from agentbus.services.ingress.console.channels import render_doc, setup_html
from agentbus.services.ingress.console.charts import Chart, Series, draw, nice_top, short
from agentbus.services.ingress.console.deadletters import _ids
from agentbus.services.ingress.console.jobs import _body, due_times, schedule
from agentbus.services.ingress.console.replays import replay_body, word_diff
from agentbus.services.ingress.console.trace import jaeger_links, waterfall
from agentbus.services.ingress.console.usage import bucket_starts
from agentbus.services.ingress.console.usage import charts as usage_charts
from agentbus.services.ingress.console.wiring import console_routes
from agentbus.settings import Settings
from tests.unit.fakes_api import FakeAudit, FakeJobs, FakePublisher, FakeSigningKeys, FakeTokens, config, job


@asynccontextmanager
async def served() -> AsyncIterator[tuple[str, FakeTokens, FakePublisher]]:
    cfg = config()
    tokens, publisher, jobs = FakeTokens(), FakePublisher(), FakeJobs()
    jobs.jobs = [job("acme", "standup", "acme-hook")]
    app = operator_api(ApiDeps(config=cfg, tokens=tokens, audit=FakeAudit(), jobs=jobs, publisher=publisher,
                               signer=Signer(FakeSigningKeys())))
    server = LoopbackServer([Mount(PREFIX, app=app), *console_routes(Settings(), cfg, app)])
    await server.start()
    try:
        yield server.url, tokens, publisher
    finally:
        await server.stop()


async def _token(tokens: FakeTokens, tenant: str, role: str) -> str:
    record, token = mint("console-test", tenant, role)  # type: ignore[arg-type]
    await tokens.create(record, token_hash(token))
    return token


async def _login(c: httpx.AsyncClient, tokens: FakeTokens, role: str) -> str:
    resp = await c.post("/console/login", data={"token": await _token(tokens, "acme", role)})
    assert resp.status_code == 303 and resp.headers["location"] == "/console/live"
    cookie = resp.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie  # plain http here; https requests get Secure
    page = await c.get("/console/jobs")
    assert page.status_code == 200
    found = re.search(r'data-csrf="([0-9a-f]+)"', page.text)
    assert found
    return found.group(1)


async def test_no_session_goes_to_login_and_a_bad_token_is_refused_with_the_apis_reason() -> None:
    async with served() as (url, _tokens, _pub), httpx.AsyncClient(base_url=url) as c:
        resp = await c.get("/console/jobs")
        assert resp.status_code == 303 and resp.headers["location"] == "/console/login?reason=expired"
        htmx = await c.get("/console/jobs/preview", headers={"hx-request": "true"})
        assert htmx.headers["hx-redirect"] == "/console/login?reason=expired"
        bad = await c.post("/console/login", data={"token": "agb_nope"})
        assert bad.status_code == 401 and "malformed token" in bad.text and "set-cookie" not in bad.headers
        empty = await c.post("/console/login", data={})
        assert empty.status_code == 422 and "token: required" in empty.text
        forged = await c.get("/console/jobs", cookies={"agentbus_console": "a.b.c"})
        assert forged.status_code == 303 and 'agentbus_console=""' in forged.headers["set-cookie"]


async def test_pages_are_served_with_our_own_scripts_only() -> None:
    async with served() as (url, tokens, _pub), httpx.AsyncClient(base_url=url) as c:
        page = await c.get("/console/login")
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert not re.search(r'(src|href)="(https?:)?//', page.text), "no asset from elsewhere"
        assert (await c.get("/console/static/htmx.min.js")).status_code == 200
        missing = await c.get("/console/nowhere")
        assert missing.status_code == 404 and "No such page" in missing.text
        zh = await c.get("/console/login", headers={"accept-language": "zh-CN,zh;q=0.9"})
        assert '<html lang="zh-CN">' in zh.text and "登录" in zh.text


async def test_a_write_needs_the_sessions_csrf_token_and_then_the_apis_consent() -> None:
    async with served() as (url, tokens, publisher), httpx.AsyncClient(base_url=url) as c:
        csrf = await _login(c, tokens, "operator")
        assert (await c.post("/console/jobs/standup/pause", data={})).status_code == 403
        assert (await c.post("/console/jobs/standup/pause", data={"csrf": "0" * 40})).status_code == 403
        assert publisher.commands() == []
        ok = await c.post("/console/jobs/standup/pause", data={"csrf": csrf})
        assert ok.status_code == 303 and "requested=pause" in ok.headers["location"]
        assert [cmd.data.action for cmd in publisher.commands()] == ["pause"]
        unknown = await c.post("/console/jobs/nope/pause", data={"csrf": csrf})
        assert unknown.status_code == 404 and "no job" in unknown.text
        bad = await c.post("/console/jobs", data={"csrf": csrf, "channel": "acme-hook", "chat": "x", "prompt": "p",
                                                  "kind": "cron", "hour": "25"})
        assert bad.status_code == 422 and "body.schedule" in bad.text
        other = await c.post("/console/jobs", data={"csrf": csrf, "channel": "globex-hook", "chat": "x",
                                                    "prompt": "p", "kind": "every", "every_s": "60"})
        assert other.status_code == 422 and "unknown channel" in other.text
        assert [cmd.data.action for cmd in publisher.commands()] == ["pause"]


async def test_a_viewer_is_refused_by_the_api_even_with_a_good_csrf_token() -> None:
    async with served() as (url, tokens, publisher), httpx.AsyncClient(base_url=url) as c:
        csrf = await _login(c, tokens, "viewer")
        page = await c.get("/console/jobs")
        assert "standup" in page.text and "Pause" not in page.text and "New job" not in page.text
        resp = await c.post("/console/jobs/standup/pause", data={"csrf": csrf})
        assert resp.status_code == 403 and "needs the operator role" in resp.text
        assert publisher.commands() == []


async def test_the_preview_shows_the_next_five_due_times_or_the_reason() -> None:
    async with served() as (url, tokens, _pub), httpx.AsyncClient(base_url=url) as c:
        await _login(c, tokens, "viewer")
        ok = await c.get("/console/jobs/preview", params={"kind": "cron", "minute": "15", "hour": "*/6", "dow": "*",
                                                          "timezone": "Asia/Shanghai"})
        assert ok.status_code == 200 and ok.text.count("<li>") == 5 and "15 */6 * * *" in ok.text
        bad = await c.get("/console/jobs/preview", params={"kind": "cron", "dom": "31", "month": "2", "dow": "*"})
        assert "role=\"alert\"" in bad.text
        tz = await c.get("/console/jobs/preview", params={"kind": "every", "every_s": "60", "timezone": "Mars/X"})
        assert "unknown time zone" in tz.text


def test_due_times_are_the_schedulers_in_the_jobs_time_zone() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)  # a Thursday
    times = due_times("cron", "30 8 * * 6", "Asia/Shanghai", now)
    assert [t.isoformat() for t in times] == [f"2026-01-{d:02d}T08:30:00+08:00" for d in (3, 10, 17, 24, 31)]
    every = due_times("every", "90", "UTC", now)
    assert [(b - a).total_seconds() for a, b in zip(every, every[1:], strict=False)] == [90.0] * 4
    assert len(due_times("at", "2026-02-01T09:00", "UTC", now)) == 1
    with pytest.raises(ValueError):
        due_times("cron", "0 25 * * *", "UTC", now)


def test_forms_become_the_apis_bodies() -> None:
    assert schedule({"kind": "cron", "minute": "5", "hour": "", "dow": "1-5"}) == ("cron", "5 9 * * 1-5", "UTC")
    assert _body({"kind": "every", "every_s": "60", "channel": "c", "chat": "x", "prompt": "p"})["every_s"] == 60.0
    body = _body({"kind": "at", "at": "2030-01-01T00:00", "channel": "c", "chat": "x", "prompt": "p", "id": "j1"})
    assert (body["at"], body["id"], "cron" in body) == ("2030-01-01T00:00", "j1", False)
    current = {"id": "a", "model": "qwen", "temperature": 0.2, "memory": {"history_turns": 4}, "tools": ["x"]}
    out = edited_agent(current, {"system_prompt": "Be brief.", "model": " echo ", "fallback": "qwen, , other",
                                 "tools": ""})
    assert out == {"id": "a", "model": "echo", "temperature": 0.2, "memory": {"history_turns": 4},
                   "system_prompt": "Be brief.", "fallback_models": ["qwen", "other"], "tools": []}
    good = "1b4e28ba-2fa1-11d2-883f-0016d3cca427"
    assert _ids([good, "nope", good.upper(), "../x"]) == [good]


def test_a_trace_becomes_a_waterfall_of_its_steps() -> None:
    def event(ident: str, kind: str, ms: int, cause: str | None, **data: object) -> dict[str, object]:
        return {"id": ident, "type": kind, "source": "s", "causation_id": cause, "summary": kind,
                "occurred_at": f"2026-01-01T00:00:00.{ms:03d}000+00:00", "data": data}

    steps, total = waterfall([
        event("m", "message.received", 10, None, received_at="2026-01-01T00:00:00.004000+00:00"),
        event("c", "context.assembled", 40, "m"),
        event("i", "inference.completed", 340, "c", latency_ms=250.0, model="qwen", outcome="ok",
              usage={"input_tokens": 12, "output_tokens": None}),
        event("r", "reply.generated", 341, "c", model="qwen"),
        event("d", "delivery.completed", 400, "r", latency_ms=5000.0, status="delivered"),  # longer than the chain
    ])
    assert [(s.type, s.start_ms, s.duration_ms) for s in steps] == [
        ("message.received", 0.0, 6.0), ("context.assembled", 6.0, 30.0), ("inference.completed", 86.0, 250.0),
        ("reply.generated", 36.0, 301.0), ("delivery.completed", 0.0, 396.0)]
    assert total == 396.0
    assert steps[2].tokens == (12, None) and steps[2].model == "qwen" and steps[2].outcome == "ok"
    assert steps[4].outcome == "delivered" and steps[1].outcome is None and steps[1].tokens is None
    assert steps[2].bar(total) == (217.2, 631.3) and steps[0].bar(total) == (0.0, 15.2)
    assert waterfall([]) == ([], 0.0)
    assert jaeger_links("http://jaeger:16686/", ["ab12"]) == [("ab12", "http://jaeger:16686/trace/ab12")]
    assert jaeger_links(None, ["ab12"]) == []


def test_the_word_diff_marks_what_each_side_has_that_the_other_has_not() -> None:
    left, right = word_diff("The cat sat on the mat.", "The dog sat on the mat!")
    assert left == [("equal", "The "), ("delete", "cat"), ("equal", " sat on the mat"), ("delete", ".")]
    assert right == [("equal", "The "), ("insert", "dog"), ("equal", " sat on the mat"), ("insert", "!")]
    left, right = word_diff("明天上午开会", "明天下午开会")  # no spaces: each character is a word
    assert left == [("equal", "明天"), ("delete", "上"), ("equal", "午开会")]
    assert right == [("equal", "明天"), ("insert", "下"), ("equal", "午开会")]
    assert word_diff("", "new text") == ([], [("insert", "new text")])
    assert word_diff("same", "same") == ([("equal", "same")], [("equal", "same")])


def test_the_replay_form_becomes_the_apis_body() -> None:
    form = {"from": "message", "conversation": " room-1 ", "correlation": "", "since": "2026-01-01T09:00",
            "until": "", "model": "echo", "system_prompt": "Be brief.", "limit": "5", "rerun_llm": "on"}
    assert replay_body(form) == {"from": "message", "conversation": "room-1", "since": "2026-01-01T09:00",
                                 "model": "echo", "system_prompt": "Be brief.", "limit": 5, "rerun_llm": True,
                                 "rerun_tools": False}
    assert replay_body({"limit": "lots"})["limit"] == "lots"  # the API names the field it refuses
    assert replay_body({}) == {"from": "context", "limit": 20, "rerun_llm": False, "rerun_tools": False}


async def test_a_replay_is_started_by_an_operators_form_and_refused_with_the_apis_reason() -> None:
    async with served() as (url, tokens, publisher), httpx.AsyncClient(base_url=url) as c:
        csrf = await _login(c, tokens, "operator")
        form = {"csrf": csrf, "conversation": "room-1", "rerun_llm": "on", "model": "echo", "limit": "3"}
        assert (await c.post("/console/replays", data={**form, "csrf": ""})).status_code == 403
        bad = await c.post("/console/replays", data={**form, "limit": "0"})
        assert bad.status_code == 422 and "body.limit" in bad.text
        no_llm = await c.post("/console/replays", data={**form, "rerun_llm": ""})
        assert no_llm.status_code == 422 and "need rerun_llm" in no_llm.text and 'value="room-1"' in no_llm.text
        assert [e for e in publisher.published if isinstance(e, ReplayRequested)] == []
        ok = await c.post("/console/replays", data=form)
        assert ok.status_code == 303 and re.fullmatch(r"/console/replays/replay-[0-9a-f]{12}\?tenant=acme",
                                                      ok.headers["location"])
        [asked] = [e for e in publisher.published if isinstance(e, ReplayRequested)]
        assert (asked.tenant, asked.data.conversation, asked.data.model, asked.data.limit) == ("acme", "room-1",
                                                                                               "echo", 3)
        unserved = await c.get(ok.headers["location"])  # this API reads no event log: said so, not a 500
        assert unserved.status_code == 503
        odd = await c.get("/console/replays", params={"run": "../x"})
        assert odd.status_code == 422 and "Not a replay run id" in odd.text


async def test_a_viewer_cannot_start_a_replay() -> None:
    async with served() as (url, tokens, publisher), httpx.AsyncClient(base_url=url) as c:
        csrf = await _login(c, tokens, "viewer")
        page = await c.get("/console/replays")
        assert page.status_code == 200 and "Start replay" not in page.text
        resp = await c.post("/console/replays", data={"csrf": csrf, "conversation": "room-1"})
        assert resp.status_code == 403 and "needs the operator role" in resp.text
        assert not [e for e in publisher.published if isinstance(e, ReplayRequested)]


def test_setup_documents_are_rendered_with_raw_html_escaped() -> None:
    html = render_doc("# Feishu\n\nSee [the webhook](webhook.md), [x](javascript:alert(1)) and "
                      "[y](https://example.com/a).\n\n<script>alert(1)</script>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
    assert "<h3>Feishu</h3>" in html and "<h1>" not in html
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert 'href="?platform=webhook#setup"' in html and 'href="javascript' not in html
    assert 'href="https://example.com/a"' in html and "<table>" in html
    for platform in ("webhook", "feishu", "dingtalk", "wecom", "slack", "telegram"):
        doc = setup_html(platform)
        assert doc is not None and doc.startswith("<h3>"), platform
    assert setup_html("nope") is None


def test_a_channels_state_sums_the_replicas_and_takes_the_connection_from_its_holder() -> None:
    now = datetime.now(UTC)
    tg = parse_config({"tenants": [{"id": "acme"}], "agents": [{"id": "a"}], "channels": [
        {"id": "tg", "type": "telegram", "mode": "stream", "tenant": "acme", "agent": "a",
         "bot_token": {"env": "T", "default": "1:x"}}]}).channels[0]

    def row(replica: str, age: float, webhook: dict[str, object] | None, conn: dict[str, object] | None
            ) -> ChannelStateRow:
        return ChannelStateRow("tg", replica, {"webhook": webhook, "connection": conn}, now, age)

    holder = {"status": "connected", "held_here": True, "reconnects": 1, "events": 7, "since": 1_700_000_000.0}
    other = {"status": "held elsewhere", "held_here": False, "reconnects": 2, "events": 0,
             "last_error": "ConnectError: old"}
    hooks = {"hits": 2, "accepted": 0, "refused": 2, "failed": 0, "last_at": 1_700_000_010.0, "last_status": 409,
             "last_error": "409: this channel receives its events over its long connection",
             "last_error_at": 1_700_000_010.0}
    state = channel_state(tg, [row("r1", 1.0, None, holder), row("r2", 2.0, hooks, other)])
    assert state.connection is not None
    assert (state.connection.status, state.connection.holder, state.connection.events,
            state.connection.reconnects) == ("connected", "r1", 7, 3)
    assert (state.webhook.hits, state.webhook.refused, state.webhook.last_status) == (2, 2, 409)
    stale = channel_state(tg, [row("r1", FRESH_S + 5, None, holder)])  # the holder went quiet
    assert stale.connection is not None and stale.connection.status == "unknown"
    assert [v.fresh for v in stale.replicas] == [False]
    unheld = channel_state(tg, [row("r2", 1.0, None, other)])
    assert unheld.connection is not None and (unheld.connection.status, unheld.connection.last_error) == (
        "unheld", "ConnectError: old")
    nothing = channel_state(tg, [])
    assert nothing.webhook.hits == 0 and nothing.connection is not None and nothing.connection.status == "unknown"


def test_charts_are_drawn_to_scale_with_round_ticks() -> None:
    assert [nice_top(v) for v in (0, 0.3, 1, 3, 7, 11, 240, 1900)] == [1.0, 0.5, 1, 5, 10, 20, 250, 2000]
    assert [short(v) for v in (0, 0.25, 1500, 2_000_000)] == ["0", "0.25", "1.5k", "2M"]
    bars = draw(Chart("m", "Answers", "answers", ("09:00", "10:00", "11:00"),
                      (Series("a", (1.0, 0.0, 2.0), "s0"), Series("b", (1.0, None, 2.0), "s1"))))
    assert bars.top == 5 and [label for _, label in bars.y_ticks] == ["0", "1.25", "2.5", "3.75", "5"]
    _, top, _, plot_h = bars.plot
    heights = [h for _, _, _, h, _, _ in bars.rects]
    one, two = round(plot_h / 5, 1), round(2 * plot_h / 5, 1)
    assert len(bars.rects) == 4 and heights == [one, two, one, two]  # a's bars, then b's; no bar for 0 or None
    (_, y_a, _, _, _, _), (_, y_b, _, h_b, _, title) = bars.rects[1], bars.rects[3]
    assert round(y_b + h_b, 1) == y_a and title == "11:00 b: 2 answers"  # b stacked on a
    lines = draw(Chart("l", "Latency", "ms", ("1", "2", "3", "4"), (Series("avg", (10.0, None, 30.0, 40.0)),),
                       kind="lines"))
    assert lines.top == 50 and len(lines.lines) == 1 and len(lines.dots) == 3  # the gap splits the line
    assert lines.lines[0][0].count(",") == 2
    many = draw(Chart("x", "X", "u", tuple(str(i) for i in range(48)), (Series("s", (1.0,) * 48),)))
    assert len(many.x_labels) == 12


def test_usage_buckets_cover_the_window_and_the_totals_are_the_all_agents_rows() -> None:
    since, until = datetime(2026, 1, 1, 9, 30, tzinfo=UTC), datetime(2026, 1, 1, 12, 10, tzinfo=UTC)
    assert [t.hour for t in bucket_starts("hour", since, until)] == [9, 10, 11, 12]
    assert bucket_starts("day", since, until) == [datetime(2026, 1, 1, tzinfo=UTC)]

    class T:
        def t(self, key: str) -> str:
            return key

    def row(hour: int, agent: str | None, n: int) -> dict[str, object]:
        return {"start": f"2026-01-01T{hour:02d}:00:00+00:00", "agent": agent, "messages": n, "prompt_tokens": 10 * n,
                "completion_tokens": n, "latency_ms_avg": 100.0, "latency_ms_p95": 150.0}

    usage = {"bucket": "hour", "since": since.isoformat(), "until": until.isoformat(), "agents": ["a", "b"],
             "items": [row(9, None, 3), row(9, "a", 1), row(9, "b", 2), row(11, None, 1), row(11, "a", 1)]}
    made, totals = usage_charts(T(), usage)  # type: ignore[arg-type]
    assert totals == {"messages": 4, "prompt_tokens": 40, "completion_tokens": 4}
    messages, tokens, latency = made
    assert [(s.name, s.values) for s in messages.series] == [("a", (1.0, 0.0, 1.0, 0.0)), ("b", (2.0, 0.0, 0.0, 0.0))]
    assert tokens.series[0].values == (30.0, 0.0, 10.0, 0.0)
    assert latency.series[1].values == (150.0, None, 150.0, None) and latency.kind == "lines"
