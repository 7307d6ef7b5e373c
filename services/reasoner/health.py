"""Model health: each configured model is probed on a schedule, and live calls report on it too; the chain
of an answer skips a model that is down, so a dead provider does not cost every message its retries first.

The state is this replica's own: every reasoner replica probes for itself and keeps what it saw in memory
(no shared state, nothing to lose or to agree on; replicas may disagree for up to one probe interval, and
each one's view is what decides its own calls). ``GET /v1/models/health`` on the admin port serves it.

A probe is ``GET {base_url}/models`` with the model's key and headers; a provider without that route
(404/405) is asked a one-token chat completion instead. A model nobody has checked yet counts as up.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from agentbus import metrics
from agentbus.config import PlatformConfig
from agentbus.services.reasoner.ports import ECHO, Endpoint
from agentbus.settings import Settings

log = structlog.get_logger("agentbus.reasoner")
CREDENTIALS_REFUSED = "credentials refused"


@dataclass(frozen=True)
class Health:
    up: bool
    checked_at: datetime
    error: str | None = None
    latency_ms: float | None = None

    def json(self) -> dict[str, Any]:
        return {"up": self.up, "checked_at": self.checked_at.isoformat(), "error": self.error,
                "latency_ms": None if self.latency_ms is None else round(self.latency_ms, 1)}


UNCHECKED: dict[str, Any] = {"up": None, "checked_at": None, "error": None, "latency_ms": None}


class HealthBook:
    """What this replica knows of each model, fed by probes and by live calls; it also decides the chain."""

    def __init__(self) -> None:
        self._state: dict[str, Health] = {}

    def mark(self, name: str, up: bool, error: str | None = None, latency_ms: float | None = None) -> None:
        before = self._state.get(name)
        self._state[name] = Health(up, datetime.now(UTC), None if up else (error or "down")[:300], latency_ms)
        metrics.child(metrics.MODEL_UP, name).set(1 if up else 0)
        if before is None or before.up != up:
            (log.info if up else log.warning)("model_health_changed", model=name, up=up, error=error)

    def get(self, name: str) -> Health | None:
        return self._state.get(name)

    def is_up(self, name: str) -> bool:
        h = self._state.get(name)
        return h is None or h.up

    def usable(self, chain: Sequence[Endpoint]) -> list[Endpoint]:
        """The chain without the models that are down; the whole chain when every model of it is down (one
        try is better than an apology without trying, and a success there brings the model back)."""
        kept = [ep for ep in chain if ep.base_url is None or self.is_up(ep.name)]
        if not kept:
            log.warning("model_chain_all_down", models=[ep.name for ep in chain])
            return list(chain)
        for ep in chain:
            if ep.base_url is not None and not self.is_up(ep.name):
                h = self._state.get(ep.name)
                log.info("model_skipped", model=ep.name, error=h.error if h else None)
        return kept

    def snapshot(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for name in names:
            h = self._state.get(name)
            out[name] = h.json() if h is not None else dict(UNCHECKED)
        return out


def configured_endpoints(config: PlatformConfig, settings: Settings) -> list[Endpoint]:
    """Every model a chain can name that has an endpoint (the built-in echo model has none to probe)."""
    eps: list[Endpoint] = []
    if settings.llm_base_url:
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        eps.append(Endpoint("default", settings.llm_model or "default", settings.llm_base_url, key,
                            settings.llm_timeout_s))
    for m in config.models:
        if m.name != ECHO:
            eps.append(Endpoint(m.name, m.model, m.base_url, m.api_key.resolve() if m.api_key else None,
                                m.timeout_s, dict(m.headers)))
    return eps


def _problem(resp: Any) -> str:
    if resp.status_code in (401, 403):
        return CREDENTIALS_REFUSED
    return f"HTTP {resp.status_code}: {resp.text[:200]}"


class Prober:
    """Probes every model of ``endpoints()`` (read anew each round: configuration may change) every
    ``interval_s``, the first round right at start."""

    def __init__(self, book: HealthBook, endpoints: Callable[[], list[Endpoint]], interval_s: float,
                 http: httpx.AsyncClient) -> None:
        self.book = book
        self._endpoints = endpoints
        self._interval_s = interval_s
        self._http = http

    def names(self) -> list[str]:
        return [ep.name for ep in self._endpoints()]

    async def run(self) -> None:
        while True:
            await self.probe_all()
            await asyncio.sleep(self._interval_s)

    async def probe_all(self) -> None:
        await asyncio.gather(*(self.probe(ep) for ep in self._endpoints()))

    async def probe(self, ep: Endpoint) -> Health | None:
        assert ep.base_url is not None
        base = ep.base_url.rstrip("/")
        headers = dict(ep.headers)
        if ep.api_key:
            headers["Authorization"] = f"Bearer {ep.api_key}"
        started = time.perf_counter()
        error: str | None
        try:
            resp = await self._http.get(base + "/models", headers=headers, timeout=ep.timeout_s)
            if resp.status_code in (404, 405):  # the provider has no model list: ask for one token
                body = {"model": ep.model, "messages": [{"role": "user", "content": "ping"}], "max_tokens": 1}
                resp = await self._http.post(base + "/chat/completions", content=orjson.dumps(body),
                                             headers={"Content-Type": "application/json", **headers},
                                             timeout=ep.timeout_s)
            error = None if 200 <= resp.status_code < 300 else _problem(resp)
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"[:300] if str(exc) else type(exc).__name__
        seconds = time.perf_counter() - started
        metrics.child(metrics.MODEL_PROBE_SECONDS, ep.name, "up" if error is None else "down").observe(seconds)
        self.book.mark(ep.name, error is None, error, seconds * 1000)
        return self.book.get(ep.name)


def health_routes(prober: Prober) -> list[BaseRoute]:
    async def models_health(_: Request) -> Response:
        """Every configured model: ``{up, checked_at, error, latency_ms}`` as this replica last saw it
        (``up`` null until its first probe or call)."""
        return JSONResponse(prober.book.snapshot(prober.names()))

    return [Route("/v1/models/health", models_health, methods=["GET"])]
