"""Media end to end: a photo sent to the Telegram bot (webhook) is downloaded through the Bot API, stored by
reference, and reaches a vision model as an ``image_url`` part with exactly its bytes; a photo that cannot be
downloaded is still answered, once."""

from __future__ import annotations

import base64
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.fakes.telegram import BOT_TOKEN, BOT_USERNAME, FakeTelegram, update
from tests.support.platform import Infra, Platform, run_platform
from tests.support.servers import FakeLLM

pytestmark = pytest.mark.e2e

SECRET = "e2e-media-secret_1"


@pytest.fixture(scope="module")
async def tg() -> AsyncIterator[FakeTelegram]:
    f = await FakeTelegram().start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def platform(infra: Infra, tg: FakeTelegram, llm: FakeLLM) -> AsyncIterator[Platform]:
    config: dict[str, Any] = {
        "tenants": [{"id": "acme"}],
        "agents": [{"id": "assistant", "model": "seeing"}],
        "models": [{"name": "seeing", "base_url": llm.base_url, "model": "fake-vl", "timeout_s": 10,
                    "vision": True}],
        "channels": [{
            "id": "tg-media", "type": "telegram", "tenant": "acme", "agent": "assistant", "api_base": tg.url,
            "bot_token": {"env": "E2E_MEDIA_TG_TOKEN", "default": BOT_TOKEN},
            "secret_token": {"env": "E2E_MEDIA_TG_SECRET", "default": SECRET},
            "bot_username": BOT_USERNAME,
        }],
    }
    async with run_platform(infra, config) as p:
        yield p


async def post(p: Platform, upd: dict[str, Any]) -> httpx.Response:
    async with httpx.AsyncClient() as c:
        return await c.post(f"{p.ingress_url}/v1/webhooks/tg-media", content=orjson.dumps(upd),
                            headers={"content-type": "application/json", "x-telegram-bot-api-secret-token": SECRET})


def photo_sizes(file_id: str, small_id: str) -> list[dict[str, Any]]:
    return [{"file_id": small_id, "file_unique_id": "s", "file_size": 900, "width": 90, "height": 67},
            {"file_id": file_id, "file_unique_id": "l", "file_size": 60_000, "width": 1280, "height": 960}]


async def test_a_photo_reaches_the_vision_model_with_its_exact_bytes(platform: Platform, tg: FakeTelegram,
                                                                     llm: FakeLLM) -> None:
    word = uuid.uuid4().hex[:8]
    jpeg = b"\xff\xd8\xff\xe0" + os.urandom(60_000)
    big = tg.add_file(jpeg, f"photos/file_{word}.jpg")
    small = tg.add_file(b"\xff\xd8\xff\xe0thumbnail", f"photos/thumb_{word}.jpg")
    upd = update(None, caption=f"what is in it {word}?", photo=photo_sizes(big, small))
    first = await post(platform, upd)
    assert first.status_code == 200 and first.headers["x-agentbus-outcome"] == "published"
    downloads = tg.file_downloads
    again = await post(platform, upd)  # Telegram's retry: not published, not downloaded again
    assert again.headers["x-agentbus-outcome"] == "duplicate" and tg.file_downloads == downloads
    [sent] = await tg.wait_for(lambda m: word in m["text"])
    assert sent["text"] == f"answer: what is in it {word}?"
    [call] = llm.calls_with(word)
    question = [m for m in call["messages"] if m["role"] == "user"][-1]["content"]
    assert question[0] == {"type": "text", "text": f"what is in it {word}?"}
    assert question[1] == {"type": "image_url",
                           "image_url": {"url": "data:image/jpeg;base64," + base64.b64encode(jpeg).decode()}}
    assert len(question) == 2  # the largest size only, not the thumbnail


async def test_a_photo_that_cannot_be_downloaded_is_answered_once(platform: Platform, tg: FakeTelegram,
                                                                  llm: FakeLLM) -> None:
    word = uuid.uuid4().hex[:8]
    upd = update(None, caption=f"and this {word}?", photo=photo_sizes("gone-file-id", "gone-too"))
    assert (await post(platform, upd)).headers["x-agentbus-outcome"] == "published"
    [sent] = await tg.wait_for(lambda m: word in m["text"])
    assert sent["text"].startswith(f"answer: and this {word}?\n[attachment: image, image/jpeg")
    [call] = llm.calls_with(word)
    question = [m for m in call["messages"] if m["role"] == "user"][-1]["content"]
    assert isinstance(question, str) and "not available: getFile" in question and "invalid file_id" in question
    assert len([m for m in tg.sent if word in m["text"]]) == 1
