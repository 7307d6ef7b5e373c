"""Feishu / Lark files: ``GET /open-apis/im/v1/messages/{message_id}/resources/{file_key}?type=image|file``
with a tenant_access_token (the app's credentials). Errors come back as JSON ``{"code": N, "msg": ...}``."""

from __future__ import annotations

from urllib.parse import quote

import httpx

from agentbus.channeltypes.feishu import FeishuChannel
from agentbus.services.ingress.inbound import MediaItem
from agentbus.services.ingress.media import TOKENS, Fetched, MediaError, get_capped

TOKEN_PATH = "/open-apis/auth/v3/tenant_access_token/internal"


async def _token(channel: FeishuChannel, http: httpx.AsyncClient) -> tuple[str, float]:
    if channel.app_id is None or channel.app_secret is None:
        raise MediaError("the channel has no app_id/app_secret to download files with")
    resp = await http.post(channel.base + TOKEN_PATH,
                           json={"app_id": channel.app_id.value(), "app_secret": channel.app_secret.value()})
    data = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else None
    if not isinstance(data, dict) or data.get("code") != 0 or not isinstance(data.get("tenant_access_token"), str):
        raise MediaError(f"tenant_access_token: HTTP {resp.status_code}")
    expire = data.get("expire")
    return data["tenant_access_token"], float(expire) if isinstance(expire, (int, float)) else 3600.0


async def fetch(channel: FeishuChannel, item: MediaItem, http: httpx.AsyncClient, max_bytes: int) -> Fetched:
    message_id, key = item.source.get("message_id"), item.source.get("file_key")
    if not isinstance(message_id, str) or not isinstance(key, str):
        raise MediaError("the message names no file")
    token_key = f"feishu:{channel.id}"
    token = await TOKENS.get(token_key, lambda: _token(channel, http))
    kind = "image" if item.kind == "image" else "file"
    url = f"{channel.base}/open-apis/im/v1/messages/{quote(message_id, safe='')}/resources/{quote(key, safe='')}"
    try:
        got = await get_capped(http, f"{url}?type={kind}", max_bytes, {"authorization": f"Bearer {token}"},
                               what="message resource")
    except MediaError:
        TOKENS.drop(token_key)  # an expired or revoked token is fetched afresh for the next file
        raise
    if (got.content_type or "").startswith("application/json"):
        TOKENS.drop(token_key)
        raise MediaError(f"message resource: {got.data[:120].decode('utf-8', 'replace')}")
    return got
