"""Reading the models' health from the reasoner's admin endpoint ``GET /v1/models/health``.

The reasoner probes its models itself; the operator API only shows what it says. A reasoner that cannot be
reached makes the health unknown (null), never the model list an error: the configuration is still true.
With several reasoner replicas, the answer is the view of whichever replica the Service routed to.
"""

from __future__ import annotations

from typing import Any

import httpx
import structlog

log = structlog.get_logger("agentbus.ingress.api")


class ReasonerHealth:
    def __init__(self, base_url: str, http: httpx.AsyncClient, timeout_s: float = 3.0) -> None:
        self._url = base_url.rstrip("/") + "/v1/models/health"
        self._http = http
        self._timeout_s = timeout_s

    async def health(self) -> dict[str, dict[str, Any]] | None:
        try:
            resp = await self._http.get(self._url, timeout=self._timeout_s)
            body = resp.json() if resp.status_code == 200 else None
        except (httpx.HTTPError, ValueError) as exc:
            log.warning("models_health_unavailable", error=f"{type(exc).__name__}: {exc}"[:200])
            return None
        if not isinstance(body, dict) or not all(isinstance(v, dict) for v in body.values()):
            log.warning("models_health_unavailable", status=resp.status_code)
            return None
        return body
