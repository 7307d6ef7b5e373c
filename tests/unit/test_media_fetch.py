"""Downloading media through each platform's API, against the platforms' fakes over real HTTP: the bytes land
in the blob store by reference; too large, a refused type or a platform error set ``error`` instead."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from agentbus.blobs import ref_of
from agentbus.channeltypes.dingtalk import DingTalkChannel
from agentbus.channeltypes.feishu import FeishuChannel
from agentbus.channeltypes.slack import SlackChannel
from agentbus.channeltypes.telegram import TelegramChannel
from agentbus.httpclient import async_client
from agentbus.services.ingress.bootstrap import media_fetchers
from agentbus.services.ingress.inbound import MediaItem
from agentbus.services.ingress.media import MediaDownloader
from tests.fakes.dingtalk import FakeDingTalk
from tests.fakes.feishu import FakeFeishu
from tests.fakes.slack import FakeSlack
from tests.fakes.telegram import BOT_TOKEN, FakeTelegram
from tests.unit.fakes_blobs import FakeBlobStore

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8
JPEG = b"\xff\xd8\xff\xe0" + b"photo-bytes" * 300
PDF = b"%PDF-1.7\n" + b"report " * 100


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    client = async_client(timeout=10.0, max_connections=8, follow_redirects=True)
    yield client
    await client.aclose()


def downloader(http: httpx.AsyncClient) -> tuple[MediaDownloader, FakeBlobStore]:
    blobs = FakeBlobStore()
    return MediaDownloader(blobs, http, media_fetchers()), blobs


def tg_channel(url: str, **over: Any) -> TelegramChannel:
    return TelegramChannel.model_validate({
        "id": "tg", "type": "telegram", "tenant": "acme", "agent": "a", "api_base": url,
        "bot_token": {"env": "TG_TOKEN_UNSET", "default": BOT_TOKEN},
        "secret_token": {"env": "TG_SECRET_UNSET", "default": "s"}, **over})


async def test_telegram_photo_and_document_are_stored_by_reference(http: httpx.AsyncClient) -> None:
    tg = await FakeTelegram().start()
    try:
        media, blobs = downloader(http)
        photo = MediaItem(kind="image", source={"file_id": tg.add_file(JPEG, "photos/file_7.jpg")},
                          content_type="image/jpeg")
        doc = MediaItem(kind="file", source={"file_id": tg.add_file(PDF, "documents/file_8.pdf")},
                        name="report.pdf", content_type="application/pdf", size=len(PDF))
        a, b = await media.download(tg_channel(tg.url), [photo, doc])
        assert (a.ref, a.content_type, a.size, a.error) == (ref_of(JPEG), "image/jpeg", len(JPEG), None)
        assert (b.ref, b.name, b.error) == (ref_of(PDF), "report.pdf", None)
        assert blobs.blobs[ref_of(JPEG)] == (JPEG, "image/jpeg") and blobs.blobs[ref_of(PDF)][0] == PDF
    finally:
        await tg.stop()


async def test_telegram_limits_types_and_missing_files_set_error(http: httpx.AsyncClient) -> None:
    tg = await FakeTelegram().start()
    try:
        media, blobs = downloader(http)
        big = MediaItem(kind="image", source={"file_id": tg.add_file(JPEG, "photos/big.jpg")},
                        content_type="image/jpeg")  # no size in the message: getFile's file_size tells
        [too_big] = await media.download(tg_channel(tg.url, media_max_bytes=1000), [big])
        assert too_big.ref is None and too_big.error is not None and "too large" in too_big.error
        exe = MediaItem(kind="file", source={"file_id": tg.add_file(b"MZ\x90\x00", "documents/x.exe")},
                        name="x.exe", content_type="application/x-msdownload")
        gone = MediaItem(kind="image", source={"file_id": "no-such-file"}, content_type="image/jpeg")
        refused, missing = await media.download(tg_channel(tg.url), [exe, gone])
        assert refused.error == "content type application/x-msdownload is not accepted"
        assert missing.error is not None and "invalid file_id" in missing.error
        # the type the file server does not tell is read from the bytes, and checked like a declared one
        sniffed = MediaItem(kind="file", source={"file_id": tg.add_file(PNG, "documents/noname")})
        [png] = await media.download(tg_channel(tg.url, media_types=["image/*"]), [sniffed])
        assert (png.content_type, png.ref) == ("image/png", ref_of(PNG))
        # only the PNG was fetched: the big one was refused on getFile's size, the exe on its declared type
        assert blobs.puts == 1 and tg.file_downloads == 1
    finally:
        await tg.stop()


async def test_slack_file_with_the_bot_token_and_its_failures(http: httpx.AsyncClient) -> None:
    slack = await FakeSlack(tokens={"xoxb-good"}).start()
    try:
        media, blobs = downloader(http)

        def ch(token: str = "xoxb-good", **over: Any) -> SlackChannel:
            return SlackChannel.model_validate({"id": "sl", "type": "slack", "tenant": "acme", "agent": "a",
                                                "api_base": slack.url, "signing_secret": {"env": "U", "default": "x"},
                                                "bot_token": {"env": "U", "default": token}, **over})

        def item(f: dict[str, Any]) -> MediaItem:
            return MediaItem(kind="image", source={"url": f["url_private_download"]}, name=f["name"],
                             content_type=f["mimetype"], size=f["size"])

        shot = slack.add_file(PNG, "screenshot.png", "image/png")
        [ok] = await media.download(ch(), [item(shot)])
        assert ok.ref == ref_of(PNG) and blobs.blobs[ok.ref] == (PNG, "image/png")
        [login] = await media.download(ch("xoxb-revoked"), [item(shot)])
        assert login.ref is None and login.error is not None and "files:read" in login.error
        [missing] = await media.download(ch(), [item({**shot, "url_private_download": shot["url_private_download"]
                                                      + "-gone"})])
        assert missing.error == "file download: HTTP 404"
        understated = slack.add_file(PNG, "big.png", "image/png", declared_size=10)
        [served] = await media.download(ch(media_max_bytes=500), [item(understated)])  # by Content-Length
        assert served.error == f"too large: {len(PNG)} bytes, the limit is 500"
        slack.chunked_files = True  # no length at all: reading stops at the limit
        [cut] = await media.download(ch(media_max_bytes=500), [item(understated)])
        assert cut.error == "too large: more than 500 bytes"
        [announced] = await media.download(ch(media_max_bytes=500), [item(shot)])  # by the event's size
        assert announced.error == f"too large: {len(PNG)} bytes, the limit is 500"
        assert blobs.puts == 1
    finally:
        await slack.stop()


async def test_feishu_message_resource_with_the_tenant_token(http: httpx.AsyncClient) -> None:
    fs = await FakeFeishu(apps={"cli_media": "media-secret"}).start()
    try:
        media, blobs = downloader(http)
        ch = FeishuChannel.model_validate({
            "id": "fs-media", "type": "feishu", "tenant": "acme", "agent": "a", "api_base": fs.url,
            "app_id": {"env": "U", "default": "cli_media"}, "app_secret": {"env": "U", "default": "media-secret"},
            "verification_token": {"env": "U", "default": "vt"}})
        fs.resources[("om_1", "img_v3_1")] = (PNG, "image/png", "image")
        fs.resources[("om_1", "file_v3_1")] = (PDF, "application/pdf", "file")
        image = MediaItem(kind="image", source={"message_id": "om_1", "file_key": "img_v3_1"})
        doc = MediaItem(kind="file", source={"message_id": "om_1", "file_key": "file_v3_1"}, name="a.pdf")
        other = MediaItem(kind="image", source={"message_id": "om_2", "file_key": "img_v3_1"})
        a, b, c = await media.download(ch, [image, doc, other])
        assert (a.ref, a.content_type) == (ref_of(PNG), "image/png") and (b.ref, b.content_type) == (
            ref_of(PDF), "application/pdf")
        assert c.ref is None and c.error == "message resource: HTTP 404"
        assert fs.token_fetches == 1 and blobs.puts == 2
    finally:
        await fs.stop()


async def test_dingtalk_download_code_to_download_url(http: httpx.AsyncClient) -> None:
    ding = await FakeDingTalk().start()
    try:
        media, blobs = downloader(http)
        ch = DingTalkChannel.model_validate({
            "id": "ding-media", "type": "dingtalk", "tenant": "acme", "agent": "a", "api_base_url": ding.url,
            "oapi_base_url": ding.url, "app_key": {"env": "U", "default": ding.app_key},
            "app_secret": {"env": "U", "default": ding.app_secret}})
        code = ding.add_media(JPEG, "image/jpeg")
        ok = MediaItem(kind="image", source={"download_code": code, "robot_code": ding.app_key})
        expired = MediaItem(kind="image", source={"download_code": "expired", "robot_code": ding.app_key})
        a, b = await media.download(ch, [ok, expired])
        assert (a.ref, a.content_type) == (ref_of(JPEG), "image/jpeg")
        assert b.ref is None and b.error is not None and "downloadCode is invalid" in b.error
        assert blobs.puts == 1
    finally:
        await ding.stop()


async def test_wecom_media_id_through_media_get(http: httpx.AsyncClient) -> None:
    from agentbus.channeltypes.wecom import WeComChannel
    from tests.fakes.wecom import FakeWeCom

    wc = await FakeWeCom().start()
    try:
        media, blobs = downloader(http)
        ch = WeComChannel.model_validate({
            "id": "wc-media", "type": "wecom", "tenant": "acme", "agent": "a", "corp_id": wc.corp_id,
            "api_base_url": wc.url, "agent_id": wc.agent_id, "secret": {"env": "U", "default": wc.secret}})
        ok = MediaItem(kind="image", source={"media_id": wc.add_media(JPEG, "image/jpeg")})
        gone = MediaItem(kind="image", source={"media_id": "1-older-than-three-days"})
        a, b = await media.download(ch, [ok, gone])
        assert (a.ref, a.content_type, a.size, a.error) == (ref_of(JPEG), "image/jpeg", len(JPEG), None)
        assert b.ref is None and b.error is not None and "errcode 40007" in b.error  # JSON in place of the file
        assert blobs.puts == 1 and wc.media_fetches == 1
        wc.expire_tokens()  # an expired token is dropped: the next download fetches a new one
        [c] = await media.download(ch, [ok])
        assert c.error is not None and "40014" in c.error
        [d] = await media.download(ch, [ok])
        assert d.ref == ref_of(JPEG) and wc.token_fetches == 2
        no_secret = ch.model_copy(update={"secret": None, "id": "wc-no-secret"})
        [e] = await media.download(no_secret, [MediaItem(kind="image", source={"media_id": "x"})])
        assert e.error == "the channel has no app secret to download files with"
    finally:
        await wc.stop()


async def test_a_store_that_is_down_marks_the_attachment(http: httpx.AsyncClient) -> None:
    tg = await FakeTelegram().start()
    try:
        media, blobs = downloader(http)
        blobs.down = True
        item = MediaItem(kind="image", source={"file_id": tg.add_file(JPEG)}, content_type="image/jpeg")
        [a] = await media.download(tg_channel(tg.url), [item])
        assert a.ref is None and a.error == "not stored: ConnectionError"
    finally:
        await tg.stop()
