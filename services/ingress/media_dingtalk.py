"""DingTalk files: a message's ``downloadCode`` and the robot code, ``POST /v1.0/robot/messageFiles/download``
(header ``x-acs-dingtalk-access-token``) → a short-lived ``downloadUrl``, which is then fetched as is."""

from __future__ import annotations

import httpx

from agentbus.channeltypes.dingtalk import DingTalkChannel
from agentbus.services.ingress.inbound import MediaItem
from agentbus.services.ingress.media import TOKENS, Fetched, MediaError, get_capped


async def _token(channel: DingTalkChannel, http: httpx.AsyncClient) -> tuple[str, float]:
    if channel.app_key is None or channel.app_secret is None:
        raise MediaError("the channel has no app_key/app_secret to download files with")
    resp = await http.post(f"{channel.api_base_url.rstrip('/')}/v1.0/oauth2/accessToken",
                           json={"appKey": channel.app_key.value(), "appSecret": channel.app_secret.value()})
    data = resp.json() if resp.status_code == 200 else None
    if not isinstance(data, dict) or not isinstance(data.get("accessToken"), str):
        raise MediaError(f"accessToken: HTTP {resp.status_code}")
    ttl = data.get("expireIn")
    return data["accessToken"], float(ttl) if isinstance(ttl, (int, float)) else 7200.0


async def fetch(channel: DingTalkChannel, item: MediaItem, http: httpx.AsyncClient, max_bytes: int) -> Fetched:
    code, robot = item.source.get("download_code"), item.source.get("robot_code")
    if not isinstance(code, str) or not code:
        raise MediaError("the message has no downloadCode")
    robot = robot or channel.robot_code or (channel.app_key.value() if channel.app_key else None)
    token_key = f"dingtalk:{channel.id}"
    token = await TOKENS.get(token_key, lambda: _token(channel, http))
    resp = await http.post(f"{channel.api_base_url.rstrip('/')}/v1.0/robot/messageFiles/download",
                           json={"downloadCode": code, "robotCode": robot},
                           headers={"x-acs-dingtalk-access-token": token})
    data = resp.json() if resp.headers.get("content-type", "").startswith("application/json") else None
    url = data.get("downloadUrl") if isinstance(data, dict) else None
    if resp.status_code != 200 or not isinstance(url, str) or not url.startswith(("https://", "http://")):
        if resp.status_code in (401, 403):
            TOKENS.drop(token_key)
        message = data.get("message") if isinstance(data, dict) else None
        raise MediaError(f"messageFiles/download: HTTP {resp.status_code}: {str(message or 'no downloadUrl')[:120]}")
    return await get_capped(http, url, max_bytes, what="file download")
