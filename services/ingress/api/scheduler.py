"""Reading a tenant's jobs from the scheduler's admin endpoint ``GET /v1/jobs`` (the scheduler's own state)."""

from __future__ import annotations

from typing import Any

import httpx

from agentbus.services.ingress.api.ports import JobsUnavailable


class SchedulerJobs:
    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self._url = base_url.rstrip("/") + "/v1/jobs"
        self._http = http

    async def list_jobs(self, tenant: str) -> list[dict[str, Any]]:
        try:
            resp = await self._http.get(self._url, params={"tenant": tenant}, timeout=10.0)
        except httpx.HTTPError as exc:
            raise JobsUnavailable(f"scheduler: {type(exc).__name__}: {exc}"[:300]) from exc
        if resp.status_code != 200:
            raise JobsUnavailable(f"scheduler answered {resp.status_code}: {resp.text[:200]}")
        try:
            jobs: list[dict[str, Any]] = resp.json()["jobs"]
        except (ValueError, KeyError, TypeError) as exc:
            raise JobsUnavailable(f"scheduler answered no job list: {exc}"[:300]) from exc
        return jobs
