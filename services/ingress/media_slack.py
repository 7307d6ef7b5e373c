"""Slack files: ``url_private_download`` with the bot token as ``Authorization: Bearer`` (scope files:read).

Without the scope Slack answers 200 with its sign-in page (text/html) rather than an error, so an HTML body
for a file that is not HTML is refused instead of being stored as the image it claims to be.
"""

from __future__ import annotations

import httpx

from agentbus.channeltypes.slack import SlackChannel
from agentbus.services.ingress.inbound import MediaItem
from agentbus.services.ingress.media import Fetched, MediaError, get_capped


async def fetch(channel: SlackChannel, item: MediaItem, http: httpx.AsyncClient, max_bytes: int) -> Fetched:
    url = item.source.get("url")
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise MediaError("the file has no download URL")
    got = await get_capped(http, url, max_bytes, {"authorization": f"Bearer {channel.bot_token.value()}"},
                           what="file download")
    served = (got.content_type or "").split(";")[0].strip().lower()
    if served == "text/html" and (item.content_type or "") != "text/html":
        raise MediaError("Slack answered with a sign-in page: the bot token needs the files:read scope")
    return got
