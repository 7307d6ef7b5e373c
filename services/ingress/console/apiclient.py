"""The console's way to the operator API: the API's own ASGI app, called in-process with the session's JWT,
so roles, tenant isolation, validation and audit are exactly the API's (the console decides nothing itself).
"""

from __future__ import annotations

from typing import Any

import httpx
from starlette.types import ASGIApp


class ApiError(Exception):
    """The API refused: its status and its reason, shown on the page (a 401 sends the browser to log in)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status}: {reason}")
        self.status = status
        self.reason = reason


def _reason(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300] or resp.reason_phrase
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return body["error"]
    return str(body)[:300]


class Api:
    """One session's client of the API: ``await api.get("/me")`` answers the JSON or raises ``ApiError``."""

    def __init__(self, app: ASGIApp, bearer: str | None) -> None:
        self._app = app
        self._bearer = bearer

    async def call(self, method: str, path: str, *, params: dict[str, Any] | None = None,
                   json: Any = None) -> Any:
        headers = {"authorization": f"Bearer {self._bearer}"} if self._bearer else {}
        transport = httpx.ASGITransport(app=self._app)
        async with httpx.AsyncClient(transport=transport, base_url="http://operator-api") as http:
            resp = await http.request(method, path, params=params, json=json, headers=headers, timeout=30)
        if resp.status_code >= 400:
            raise ApiError(resp.status_code, _reason(resp))
        return resp.json() if resp.content else None

    async def get(self, path: str, **params: Any) -> Any:
        return await self.call("GET", path, params={k: v for k, v in params.items() if v not in (None, "")})

    async def post(self, path: str, json: Any = None) -> Any:
        return await self.call("POST", path, json=json)

    async def put(self, path: str, json: Any, **params: Any) -> Any:
        return await self.call("PUT", path, json=json, params={k: v for k, v in params.items() if v is not None})
