"""Telegram files: ``getFile`` turns a file_id into a ``file_path``, then ``{api_base}/file/bot<token>/<path>``.

The Bot API serves files of up to 20 MB this way; larger ones have no ``file_path`` and are refused here.
"""

from __future__ import annotations

import httpx

from agentbus.channeltypes.telegram import TelegramChannel
from agentbus.services.ingress.inbound import MediaItem
from agentbus.services.ingress.media import Fetched, MediaError, get_capped


async def fetch(channel: TelegramChannel, item: MediaItem, http: httpx.AsyncClient, max_bytes: int) -> Fetched:
    token = channel.bot_token.value()
    resp = await http.post(f"{channel.base}/bot{token}/getFile", json={"file_id": item.source.get("file_id")})
    try:
        body = resp.json()
    except ValueError:
        raise MediaError(f"getFile: HTTP {resp.status_code}, not JSON") from None
    if not isinstance(body, dict) or body.get("ok") is not True or not isinstance(body.get("result"), dict):
        description = body.get("description") if isinstance(body, dict) else None
        raise MediaError(f"getFile: HTTP {resp.status_code}: {str(description or 'no result')[:120]}")
    path = body["result"].get("file_path")
    if not isinstance(path, str) or not path or ".." in path:
        raise MediaError("getFile: no file_path (files over 20 MB cannot be downloaded by bots)")
    size = body["result"].get("file_size")
    if isinstance(size, int) and size > max_bytes:
        raise MediaError(f"too large: {size} bytes, the limit is {max_bytes}")
    return await get_capped(http, f"{channel.base}/file/bot{token}/{path}", max_bytes, what="file download")
