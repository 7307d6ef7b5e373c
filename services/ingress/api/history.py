"""Where the operator API reads what happened: memory's, egress's and the reasoner's admin listings over
HTTP (each service's own state), and the event log for the trace of a message.

A service that cannot be reached, or answers an error of its own, is a ``ReadUnavailable`` (503 with the
reason); a 400 from a listing is the caller's cursor it did not make (422). The trace reads the log with no
consumer group, bounded twice: by the time window (where the broker can look offsets up by time) and by a
cap of records per partition before its end, and at most a few traces are read at once. With the log index
(ingress's indexer, libs/agentbus/logindex.py) the chain is looked up there and only its offsets are read
(or its archived records taken as they are); a message the index does not hold yet is read the bounded way.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any
from urllib.parse import quote

import httpx
import structlog

from agentbus.eventlog import Filter, Logged, chain_of, read, window_start
from agentbus.logindex import LogIndex, indexed_chain
from agentbus.sealing import Keyring
from agentbus.services.ingress.api.ports import Page, ReadRefused, ReadUnavailable
from agentbus.settings import Settings
from agentbus.topics import all_topics

log = structlog.get_logger("agentbus.ingress.api")


class AdminListing:
    """One service's read-only admin listings."""

    def __init__(self, service: str, base_url: str, http: httpx.AsyncClient, timeout_s: float = 10.0) -> None:
        self._service = service
        self._base = base_url.rstrip("/")
        self._http = http
        self._timeout_s = timeout_s

    async def get(self, path: str, params: dict[str, str]) -> Page | None:
        """The page at ``path``; None when the service answers 404."""
        try:
            resp = await self._http.get(self._base + path, params=params, timeout=self._timeout_s)
        except httpx.HTTPError as exc:
            raise ReadUnavailable(f"{self._service}: {type(exc).__name__}: {exc}"[:300]) from exc
        if resp.status_code == 404:
            return None
        reason = _reason(resp)
        if resp.status_code == 400:
            raise ReadRefused(reason)
        if resp.status_code != 200:
            raise ReadUnavailable(f"{self._service} answered {resp.status_code}: {reason}"[:300])
        try:
            body = resp.json()
            if not isinstance(body, dict) or not isinstance(body.get("items"), list):
                raise ValueError("no items")
        except ValueError as exc:
            raise ReadUnavailable(f"{self._service} answered no listing: {exc}"[:300]) from exc
        page: Page = body
        return page


def _reason(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200]
    return str(body.get("error", ""))[:200] if isinstance(body, dict) else resp.text[:200]


def _params(tenant: str, limit: int, before: str | None, filters: dict[str, str] | None = None) -> dict[str, str]:
    params = {"tenant": tenant, "limit": str(limit), **(filters or {})}
    if before is not None:
        params["before"] = before
    return params


def _found(page: Page | None, service: str) -> Page:
    if page is None:  # a listing never answers 404: the URL points at something else
        raise ReadUnavailable(f"{service} has no such listing (check its URL setting)")
    return page


class MemoryHistory:
    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self._memory = AdminListing("memory", base_url, http)

    async def conversations(self, tenant: str, limit: int, before: str | None) -> Page:
        return _found(await self._memory.get("/v1/conversations", _params(tenant, limit, before)), "memory")

    async def turns(self, tenant: str, conversation: str, limit: int, before: str | None) -> Page | None:
        # the key's '/' are escaped; memory's route takes the whole key as one path parameter
        path = f"/v1/conversations/{quote(conversation, safe='')}/turns"
        return await self._memory.get(path, _params(tenant, limit, before))

    async def memories(self, tenant: str, conversation: str, limit: int) -> Page:
        path = f"/v1/conversations/{quote(conversation, safe='')}/memories"
        return _found(await self._memory.get(path, {"tenant": tenant, "limit": str(limit)}), "memory")

    async def memory(self, tenant: str, memory_id: str) -> dict[str, Any] | None:
        page = await self._memory.get(f"/v1/memories/{quote(memory_id, safe='')}", {"tenant": tenant})
        items = page["items"] if page else []
        return dict(items[0]) if items else None

    async def documents(self, tenant: str, removed: bool = False) -> list[dict[str, Any]]:
        """The tenant's knowledge base (``GET /v1/knowledge``), newest first."""
        page = _found(await self._memory.get("/v1/knowledge", {"tenant": tenant,
                                                               "removed": "true" if removed else "false"}), "memory")
        return [dict(d) for d in page["items"]]


class EgressDeliveries:
    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self._egress = AdminListing("egress", base_url, http)

    async def deliveries(self, tenant: str, limit: int, before: str | None, filters: dict[str, str]) -> Page:
        return _found(await self._egress.get("/v1/deliveries", _params(tenant, limit, before, filters)), "egress")


class ReasonerInferences:
    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self._reasoner = AdminListing("reasoner", base_url, http)

    async def inferences(self, tenant: str, limit: int, before: str | None, filters: dict[str, str]) -> Page:
        page = await self._reasoner.get("/v1/inferences", _params(tenant, limit, before, filters))
        return _found(page, "reasoner")

    async def usage(self, tenant: str, params: dict[str, str]) -> Page:
        return _found(await self._reasoner.get("/v1/usage", {"tenant": tenant, **params}), "reasoner")


class EventLogTrace:
    def __init__(self, settings: Settings, max_per_partition: int = 50_000, timeout_s: float = 30.0,
                 concurrent: int = 2, keyring: Keyring | None = None, index: LogIndex | None = None) -> None:
        self._settings = settings
        self._keyring = keyring  # a person's text shows opened (or [forgotten])
        self._index = index
        self._max = max_per_partition
        self._timeout_s = timeout_s
        self._slots = asyncio.Semaphore(concurrent)

    async def trace(self, tenant: str, wanted: str, since: datetime, until: datetime) -> list[Any] | None:
        topics = all_topics(self._settings.topic_prefix)
        keep = Filter(tenant=tenant, since=since, until=until)
        if self._index is not None:
            try:
                indexed = await indexed_chain(self._settings, self._index, wanted, tenant, self._keyring)
            except Exception as exc:  # noqa: BLE001 - the index is an optimisation: read the log itself
                log.warning("trace_index_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                indexed = None
            if indexed:
                return [lg for lg in indexed if keep(lg.event)] or None
        async with self._slots:
            try:
                start = await window_start(self._settings, topics, since, self._max)
                logged: list[Logged] = await read(self._settings, topics, keep, start, timeout_s=self._timeout_s,
                                                  keyring=self._keyring)
            except Exception as exc:  # the broker is away or too slow: the caller retries (503)
                log.warning("trace_read_failed", error=f"{type(exc).__name__}: {exc}"[:300])
                raise ReadUnavailable(f"event log: {type(exc).__name__}: {exc}"[:300]) from exc
        found = chain_of(logged, wanted)
        return None if found is None else found[1]

