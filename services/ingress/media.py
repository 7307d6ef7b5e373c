"""Downloading the media of a new message before it is published, bounded in size, time and content type.

Each platform fetches its files its own way (``media_<type>.py``: an API call for a download URL, a token);
what is common is here: the per-channel limits, a download that stops reading at the size limit instead of
trusting a header, the content-type check, and storing the bytes by reference. A failure of any kind is the
attachment's ``error``: the message itself is never lost to a download.
"""

from __future__ import annotations

import asyncio
import fnmatch
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import structlog

from agentbus.blobs import BlobStore
from agentbus.channeltypes import ChannelBase
from agentbus.events import Attachment
from agentbus.httpclient import TooLarge, read_capped
from agentbus.services.ingress.inbound import MediaItem

log = structlog.get_logger("agentbus.ingress")


class MediaError(Exception):
    """Why one attachment could not be had; the text becomes ``Attachment.error``."""


@dataclass(frozen=True)
class Fetched:
    data: bytes
    content_type: str | None  # as the file server said (often application/octet-stream)


# (channel, item, client, byte limit) -> the bytes; raises MediaError
Fetcher = Callable[[Any, MediaItem, httpx.AsyncClient, int], Awaitable[Fetched]]


def allowed(content_type: str, patterns: Sequence[str]) -> bool:
    base = content_type.split(";")[0].strip().lower()
    return any(fnmatch.fnmatchcase(base, p.lower()) for p in patterns)


async def get_capped(http: httpx.AsyncClient, url: str, max_bytes: int,
                     headers: Mapping[str, str] | None = None, what: str = "download") -> Fetched:
    """GET ``url``, reading at most ``max_bytes`` (a larger body is refused without being read to its end)."""
    async with http.stream("GET", url, headers=dict(headers or {})) as resp:
        if resp.status_code != 200:
            raise MediaError(f"{what}: HTTP {resp.status_code}")
        try:
            data = await read_capped(resp, max_bytes)
        except TooLarge as big:
            if big.declared is not None:
                raise MediaError(f"too large: {big.declared} bytes, the limit is {max_bytes}") from None
            raise MediaError(f"too large: more than {max_bytes} bytes") from None
        return Fetched(data, resp.headers.get("content-type"))


MAGIC = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"), (b"GIF8", "image/gif"),
         (b"%PDF-", "application/pdf"), (b"OggS", "audio/ogg"))


def _type_of(item: MediaItem, fetched: Fetched) -> str:
    """The platform's declared type wins; then the file server's, when it says more than octet-stream; then
    the bytes' signature (file servers commonly answer octet-stream for everything)."""
    if item.content_type:
        return item.content_type.split(";")[0].strip().lower()
    served = (fetched.content_type or "").split(";")[0].strip().lower()
    if served and served != "application/octet-stream":
        return served
    if fetched.data[:4] == b"RIFF" and fetched.data[8:12] == b"WEBP":
        return "image/webp"
    return next((t for magic, t in MAGIC if fetched.data.startswith(magic)), "application/octet-stream")


class MediaDownloader:
    """The ``MediaDownloads`` port: one fetcher per channel type, one blob store, one HTTP client."""

    def __init__(self, blobs: BlobStore, http: httpx.AsyncClient, fetchers: Mapping[str, Fetcher]) -> None:
        self._blobs = blobs
        self._http = http
        self._fetchers = dict(fetchers)

    async def download(self, channel: ChannelBase, items: Sequence[MediaItem]) -> tuple[Attachment, ...]:
        return tuple(await asyncio.gather(*(self._one(channel, item) for item in items)))

    async def _one(self, channel: ChannelBase, item: MediaItem) -> Attachment:
        meta = Attachment(kind=item.kind, name=item.name, content_type=item.content_type, size=item.size,
                          transcript=item.transcript)
        try:
            return await asyncio.wait_for(self._fetch_and_store(channel, item, meta), channel.media_timeout_s)
        except MediaError as err:
            error = str(err)
        except TimeoutError:
            error = f"timed out after {channel.media_timeout_s} s"
        except httpx.HTTPError as err:
            error = f"download failed: {type(err).__name__}"
        except Exception as err:  # the blob store down, a platform answer we did not expect: still published
            error = f"not stored: {type(err).__name__}"
        log.warning("media_not_stored", channel=channel.id, kind=item.kind, error=error[:200])
        return meta.model_copy(update={"error": error[:300]})

    async def _fetch_and_store(self, channel: ChannelBase, item: MediaItem, meta: Attachment) -> Attachment:
        fetch = self._fetchers.get(channel.type)
        if fetch is None:
            raise MediaError(f"downloads from {channel.type} are not supported")
        limit = channel.media_max_bytes
        if item.size is not None and item.size > limit:
            raise MediaError(f"too large: {item.size} bytes, the limit is {limit}")
        if item.content_type and not allowed(item.content_type, channel.media_types):
            raise MediaError(f"content type {item.content_type} is not accepted")
        fetched = await fetch(channel, item, self._http, limit)
        ctype = _type_of(item, fetched)
        if not allowed(ctype, channel.media_types):
            raise MediaError(f"content type {ctype} is not accepted")
        ref = await self._blobs.put(fetched.data, ctype)
        log.info("media_stored", channel=channel.id, kind=item.kind, size=len(fetched.data))
        return meta.model_copy(update={"ref": ref, "content_type": ctype, "size": len(fetched.data)})


class Tokens:
    """Access tokens of the platforms that need one to download (Feishu, DingTalk), per channel, until they
    expire (with a minute's margin); a token refused mid-download is dropped and fetched again next time."""

    def __init__(self) -> None:
        self._held: dict[str, tuple[str, float]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    async def get(self, key: str, fetch: Callable[[], Awaitable[tuple[str, float]]]) -> str:
        loop = asyncio.get_running_loop()
        async with self._locks.setdefault(key, asyncio.Lock()):
            held = self._held.get(key)
            if held is not None and held[1] > loop.time():
                return held[0]
            token, ttl_s = await fetch()
            self._held[key] = (token, loop.time() + max(ttl_s - 60.0, 1.0))
            return token

    def drop(self, key: str) -> None:
        self._held.pop(key, None)


TOKENS = Tokens()
