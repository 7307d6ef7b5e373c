"""Model health against a fake OpenAI-compatible server over real HTTP: the probe's verdicts, the chain
that skips a model that is down (and tries everything when all are), live calls that mark a model at once,
the admin endpoint, and the operator API's health field read from it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from agentbus.bus.errors import TransientError
from agentbus.config import parse_config
from agentbus.http import LoopbackServer
from agentbus.httpclient import async_client
from agentbus.services.ingress.api.reasoner import ReasonerHealth
from agentbus.services.reasoner.health import (
    CREDENTIALS_REFUSED,
    HealthBook,
    Prober,
    configured_endpoints,
    health_routes,
)
from agentbus.services.reasoner.llm import ChatClient
from agentbus.services.reasoner.ports import ECHO, Endpoint
from agentbus.settings import Settings
from agentbus.stack.procs import free_port
from tests.support.servers import FakeLLM
from tests.unit.fakes_api import served_api

MESSAGES = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hello"}]


@pytest.fixture
async def a() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(reply_prefix="a: ", api_key="sk-a").start()
    yield f
    await f.stop()


@pytest.fixture
async def b() -> AsyncIterator[FakeLLM]:
    f = await FakeLLM(reply_prefix="b: ").start()
    yield f
    await f.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    c = async_client(timeout=10.0, max_connections=8)  # the client the reasoner and ingress use
    yield c
    await c.aclose()


def ep(name: str, llm: FakeLLM, key: str | None = None, timeout_s: float = 10.0) -> Endpoint:
    return Endpoint(name, "fake-model", llm.base_url, key, timeout_s, {"X-Org": "tests"})


def up_metric(name: str) -> float | None:
    return REGISTRY.get_sample_value("agentbus_model_up", {"model": name})


async def test_a_model_that_lists_its_models_with_our_key_is_up(a: FakeLLM, http: httpx.AsyncClient) -> None:
    book = HealthBook()
    prober = Prober(book, lambda: [ep("probe-up", a, "sk-a")], 300, http)
    await prober.probe_all()
    h = book.get("probe-up")
    assert h is not None and h.up and h.error is None and h.latency_ms is not None
    [seen] = a.model_listings
    assert seen["authorization"] == "Bearer sk-a" and seen["x-org"] == "tests"
    assert a.calls == []  # the model list answered: no completion was paid for
    assert up_metric("probe-up") == 1
    assert REGISTRY.get_sample_value("agentbus_model_probe_seconds_count", {"model": "probe-up", "outcome": "up"})


async def test_a_refused_key_is_down_with_credentials_refused(a: FakeLLM, http: httpx.AsyncClient) -> None:
    book = HealthBook()
    h = await Prober(book, lambda: [], 300, http).probe(ep("probe-key", a, "sk-wrong"))
    assert h is not None and not h.up and h.error == CREDENTIALS_REFUSED
    assert up_metric("probe-key") == 0
    assert not book.is_up("probe-key")


async def test_a_provider_without_a_model_list_is_asked_for_one_token(a: FakeLLM, http: httpx.AsyncClient) -> None:
    a.models_status = 404
    book = HealthBook()
    h = await Prober(book, lambda: [], 300, http).probe(ep("probe-404", a, "sk-a"))
    assert h is not None and h.up
    [call] = a.calls
    assert call["max_tokens"] == 1 and call["model"] == "fake-model"

    a.fail_status = 503  # now the completion fails too
    h = await Prober(book, lambda: [], 300, http).probe(ep("probe-404", a, "sk-a"))
    assert h is not None and not h.up and h.error is not None and h.error.startswith("HTTP 503")


async def test_an_unreachable_or_slow_provider_is_down(a: FakeLLM, http: httpx.AsyncClient) -> None:
    book = HealthBook()
    prober = Prober(book, lambda: [], 300, http)
    gone = Endpoint("probe-gone", "m", f"http://127.0.0.1:{free_port()}/v1", None, 5.0)
    h = await prober.probe(gone)
    assert h is not None and not h.up and h.error is not None and "Connect" in h.error
    a.models_status, a.delay_s = 405, 2.0  # the one-token completion takes longer than the model's timeout
    h = await prober.probe(ep("probe-slow", a, "sk-a", timeout_s=0.2))
    assert h is not None and not h.up and h.error is not None and "Timeout" in h.error


async def test_the_first_probe_runs_at_start_and_the_admin_endpoint_serves_every_model(
    a: FakeLLM, b: FakeLLM, http: httpx.AsyncClient
) -> None:
    book = HealthBook()
    a.fail_status = 500
    endpoints = [ep("first-a", a, "sk-a"), ep("first-b", b)]
    prober = Prober(book, lambda: endpoints, 300, http)
    server = LoopbackServer(health_routes(prober))
    await server.start()
    try:
        unchecked = (await http.get(server.url + "/v1/models/health")).json()
        assert unchecked == {n: {"up": None, "checked_at": None, "error": None, "latency_ms": None}
                             for n in ("first-a", "first-b")}
        task = asyncio.create_task(prober.run())
        try:
            while book.get("first-a") is None or book.get("first-b") is None:
                await asyncio.sleep(0.01)
        finally:
            task.cancel()
        served = (await http.get(server.url + "/v1/models/health")).json()
        assert served["first-a"]["up"] is False and served["first-a"]["error"].startswith("HTTP 500")
        assert served["first-b"]["up"] is True and served["first-b"]["error"] is None
        assert served["first-b"]["checked_at"] and served["first-b"]["latency_ms"] is not None
    finally:
        await server.stop()


async def test_the_chain_skips_a_model_that_is_down_and_takes_it_back_when_a_probe_succeeds(
    a: FakeLLM, b: FakeLLM, http: httpx.AsyncClient
) -> None:
    book = HealthBook()
    chain = [ep("skip-a", a, "sk-a"), ep("skip-b", b)]
    prober = Prober(book, lambda: chain, 300, http)
    llm = ChatClient(attempts=1, max_connections=8, health=book)
    try:
        a.fail_status = 503
        await prober.probe_all()
        a.fail_status = None  # back, but nobody has looked yet: still skipped
        with capture_logs() as logs:
            c = await llm.complete(chain, MESSAGES, temperature=None, max_tokens=None)
        assert (c.text, c.models_tried) == ("b: hello", ("skip-b",))
        assert a.calls == []
        assert [(e["event"], e["model"]) for e in logs if e["event"] == "model_skipped"] == [("model_skipped",
                                                                                             "skip-a")]
        await prober.probe_all()
        c = await llm.complete(chain, MESSAGES, temperature=None, max_tokens=None)
        assert (c.text, c.models_tried) == ("a: hello", ("skip-a",))
    finally:
        await llm.aclose()


async def test_when_every_model_is_down_the_chain_is_tried_as_configured(
    a: FakeLLM, b: FakeLLM, http: httpx.AsyncClient
) -> None:
    book = HealthBook()
    chain = [ep("all-a", a, "sk-a"), ep("all-b", b)]
    a.fail_status = b.fail_status = 502
    await Prober(book, lambda: chain, 300, http).probe_all()
    assert not book.is_up("all-a") and not book.is_up("all-b")
    llm = ChatClient(attempts=1, max_connections=8, health=book)
    try:
        with pytest.raises(TransientError):
            await llm.complete(chain, MESSAGES, temperature=None, max_tokens=None)
        assert len(a.calls) == 1 and len(b.calls) == 1  # both tried, in order
        b.fail_status = None
        c = await llm.complete(chain, MESSAGES, temperature=None, max_tokens=None)
        assert (c.text, c.models_tried) == ("b: hello", ("all-a", "all-b"))
        assert book.is_up("all-b") and not book.is_up("all-a")  # the live answer brought b back
        assert up_metric("all-b") == 1
        # echo has no endpoint and is never down: a chain ending in it is never "all down"
        echo = Endpoint(ECHO, ECHO, None)
        assert [e.name for e in book.usable([chain[0], echo])] == [ECHO]
    finally:
        await llm.aclose()


async def test_a_live_provider_failure_marks_the_model_down_at_once_and_a_refusal_does_not(
    a: FakeLLM, b: FakeLLM
) -> None:
    book = HealthBook()
    llm = ChatClient(attempts=1, max_connections=8, health=book)
    try:
        refused = [ep("live-a", a, "sk-wrong"), ep("live-b", b)]
        c = await llm.complete(refused, MESSAGES, temperature=None, max_tokens=None)
        assert c.models_tried == ("live-a", "live-b")
        assert book.get("live-a") is None  # a 401 says our request is wrong, not that the provider is down

        chain = [ep("live-a", a, "sk-a"), ep("live-b", b)]
        a.fail_status = 500
        c = await llm.complete(chain, MESSAGES, temperature=None, max_tokens=None)
        assert c.models_tried == ("live-a", "live-b") and len(a.calls) == 1
        h = book.get("live-a")
        assert h is not None and not h.up and "500" in (h.error or "")
        c = await llm.complete(chain, MESSAGES, temperature=None, max_tokens=None)
        assert c.models_tried == ("live-b",) and len(a.calls) == 1  # skipped without a call
    finally:
        await llm.aclose()


def test_the_probed_models_are_the_configured_ones_with_an_endpoint() -> None:
    base = {"tenants": [{"id": "acme"}], "agents": [{"id": "assistant"}]}
    config = parse_config({**base, "models": [{"name": "qwen", "base_url": "https://llm.example.com/v1",
                                               "model": "q", "timeout_s": 7, "headers": {"X-Org": "o"}}]})
    eps = configured_endpoints(config, Settings(llm_base_url="https://default.example.com/v1", llm_model="d"))
    assert [(e.name, e.base_url, e.timeout_s) for e in eps] == [
        ("default", "https://default.example.com/v1", Settings().llm_timeout_s),
        ("qwen", "https://llm.example.com/v1", 7.0)]
    assert eps[1].headers == {"X-Org": "o"}
    assert configured_endpoints(parse_config(base), Settings(llm_base_url=None)) == []


async def test_the_operator_api_shows_the_reasoners_health_and_null_when_it_cannot_be_asked(
    a: FakeLLM, http: httpx.AsyncClient
) -> None:
    book = HealthBook()
    prober = Prober(book, lambda: [Endpoint("qwen", "qwen-max", a.base_url, "sk-wrong", 5.0)], 300, http)
    await prober.probe_all()
    reasoner = LoopbackServer(health_routes(prober))
    await reasoner.start()
    try:
        async with served_api(models_health=ReasonerHealth(reasoner.url, http)) as api:
            viewer = await api.token("acme", "viewer")
            [m] = (await api.call("GET", "/models", viewer)).json()
            assert m["name"] == "qwen"
            assert (m["health"]["up"], m["health"]["error"]) == (False, CREDENTIALS_REFUSED)
            assert m["health"]["checked_at"]
    finally:
        await reasoner.stop()
    gone = ReasonerHealth(f"http://127.0.0.1:{free_port()}", http)
    async with served_api(models_health=gone) as api:
        viewer = await api.token("acme", "viewer")
        resp = await api.call("GET", "/models", viewer)
        assert resp.status_code == 200
        [m] = resp.json()
        assert m["name"] == "qwen" and m["health"] is None
