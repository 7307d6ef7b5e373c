"""WeCom files: a message's ``MediaId``, fetched with ``GET /cgi-bin/media/get?access_token=&media_id=`` (the
app's token from ``cgi-bin/gettoken``, corpid + the app's Secret). WeCom answers the file's bytes, or a JSON
``{errcode, errmsg}`` (an expired token: 40014 / 42001, dropped and fetched again next time; a media id
older than three days: 40007)."""

from __future__ import annotations

import httpx
import orjson

from agentbus.channeltypes.wecom import WeComChannel
from agentbus.services.ingress.inbound import MediaItem
from agentbus.services.ingress.media import TOKENS, Fetched, MediaError, get_capped

TOKEN_ERRORS = {40014, 41001, 42001}


async def _token(channel: WeComChannel, http: httpx.AsyncClient) -> tuple[str, float]:
    if channel.secret is None:
        raise MediaError("the channel has no app secret to download files with")
    resp = await http.get(f"{channel.api_base_url.rstrip('/')}/cgi-bin/gettoken",
                          params={"corpid": channel.corp_id, "corpsecret": channel.secret.value()})
    try:
        data = resp.json()
    except ValueError:
        data = None
    if not isinstance(data, dict) or data.get("errcode", 0) != 0 or not isinstance(data.get("access_token"), str):
        errmsg = data.get("errmsg") if isinstance(data, dict) else None
        raise MediaError(f"gettoken: HTTP {resp.status_code}: {str(errmsg or 'no access_token')[:120]}")
    ttl = data.get("expires_in")
    return data["access_token"], float(ttl) if isinstance(ttl, (int, float)) else 7200.0


async def fetch(channel: WeComChannel, item: MediaItem, http: httpx.AsyncClient, max_bytes: int) -> Fetched:
    media_id = item.source.get("media_id")
    if not isinstance(media_id, str) or not media_id:
        raise MediaError("the message has no MediaId")
    token_key = f"wecom:{channel.id}"
    token = await TOKENS.get(token_key, lambda: _token(channel, http))
    url = httpx.URL(f"{channel.api_base_url.rstrip('/')}/cgi-bin/media/get",
                    params={"access_token": token, "media_id": media_id})
    fetched = await get_capped(http, str(url), max_bytes, what="media/get")
    served = (fetched.content_type or "").split(";")[0].strip().lower()
    if served in ("application/json", "text/plain") and fetched.data.lstrip().startswith(b"{"):
        try:
            err = orjson.loads(fetched.data)
        except orjson.JSONDecodeError:
            err = None
        if isinstance(err, dict) and "errcode" in err:  # an error answered in place of the file
            if err.get("errcode") in TOKEN_ERRORS:
                TOKENS.drop(token_key)
            raise MediaError(f"media/get: errcode {err.get('errcode')}: {str(err.get('errmsg', ''))[:120]}")
    return fetched
