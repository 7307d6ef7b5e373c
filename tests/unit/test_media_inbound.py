"""Media in, without the network: the normalisers find attachments in real-looking platform payloads, the
acceptor downloads only new messages and publishes even when a download fails, and the prompt gives images
to vision models as ``image_url`` parts and a note to the others."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import telegram

from agentbus.channeltypes import ChannelBase
from agentbus.config import parse_config
from agentbus.events import (
    Attachment,
    Chat,
    ContextAssembled,
    ContextAssembledData,
    MessageReceived,
    Sender,
    Turn,
    utcnow,
)
from agentbus.services.ingress.accept import Acceptor
from agentbus.services.ingress.channels.feishu import FeishuInbound
from agentbus.services.ingress.channels.slack import SlackInbound
from agentbus.services.ingress.channels.telegram import TelegramInbound
from agentbus.services.ingress.inbound import Inbound, InboundMessage, MediaItem
from agentbus.services.reasoner.handlers import Reasoner
from agentbus.services.reasoner.prompt import build_messages, message_tokens
from agentbus.settings import Settings
from tests.fakes import feishu, slack
from tests.fakes.telegram import update
from tests.support.platform import base_config
from tests.unit.channels.test_feishu import TOKEN
from tests.unit.channels.test_feishu import channel as feishu_channel
from tests.unit.channels.test_slack import channel as slack_channel
from tests.unit.channels.test_telegram import channel as telegram_channel
from tests.unit.fakes_blobs import FakeBlobStore
from tests.unit.fakes_ingress import FakeDedupe, FakePublisher
from tests.unit.fakes_reasoner import FakeInferenceLedger, ScriptedLLM

PHOTO = [{"file_id": f"AgACAgI-{w}", "file_unique_id": f"u{w}", "file_size": w * 40, "width": w, "height": w * 3 // 4}
         for w in (90, 320, 1280, 800)]


def test_telegram_photo_document_and_voice() -> None:
    tg = TelegramInbound(telegram_channel())
    shot = update(None, photo=PHOTO)  # no caption: still a message
    assert telegram.Update.de_json(shot, None).message.photo[-1].width == 800  # a payload the SDK reads
    m = tg.normalise(shot).message
    assert m is not None and m.text == "" and [(a.kind, a.source, a.content_type, a.size) for a in m.attachments] == [
        ("image", {"file_id": "AgACAgI-1280"}, "image/jpeg", 51200)]  # the largest size, not the last one
    doc = update(None, caption="what does it say?", document={
        "file_id": "BQACAgI-doc", "file_unique_id": "ud", "file_name": "季度报告.pdf", "mime_type": "application/pdf",
        "file_size": 48213})
    m = tg.normalise(doc).message
    assert m is not None and m.text == "what does it say?"
    assert [(a.kind, a.name, a.content_type, a.size) for a in m.attachments] == [
        ("file", "季度报告.pdf", "application/pdf", 48213)]
    voice = update(None, voice={"file_id": "AwACAgI-v", "file_unique_id": "uv", "duration": 3,
                                "mime_type": "audio/ogg", "file_size": 7000})
    assert telegram.Update.de_json(voice, None).message.voice.file_id == "AwACAgI-v"
    [a] = tg.normalise(voice).message.attachments  # type: ignore[union-attr]
    assert (a.kind, a.content_type, a.transcript) == ("audio", "audio/ogg", None)  # Telegram recognises nothing


def test_slack_file_share_without_text() -> None:
    sl = SlackInbound(slack_channel())
    files = [{"id": "F0A", "name": "chart.png", "mimetype": "image/png", "size": 5120, "mode": "hosted",
              "url_private": "https://files.slack.com/files-pri/T0-F0A/chart.png",
              "url_private_download": "https://files.slack.com/files-pri/T0-F0A/download/chart.png"},
             {"id": "F0B", "mode": "tombstone"}]
    body = slack.event_callback(slack.message("", subtype="file_share", files=files, upload=False))
    m = sl.normalise(body).message
    assert m is not None and m.text == ""
    assert [(a.kind, a.name, a.size, a.source["url"]) for a in m.attachments] == [
        ("image", "chart.png", 5120, "https://files.slack.com/files-pri/T0-F0A/download/chart.png")]


def test_feishu_image_file_audio_and_post_images() -> None:
    fs = FeishuInbound(feishu_channel())

    def got(message_type: str, content: dict[str, Any]) -> InboundMessage:
        ev = feishu.message_event(token=TOKEN, text="", message_type=message_type, message_id="om_m1",
                                  content=orjson.dumps(content).decode())
        m = fs.normalise(ev).message
        assert m is not None
        return m

    [img] = got("image", {"image_key": "img_v3_02ab"}).attachments
    assert (img.kind, img.source) == ("image", {"message_id": "om_m1", "file_key": "img_v3_02ab"})
    [doc] = got("file", {"file_key": "file_v3_9", "file_name": "合同.docx"}).attachments
    assert (doc.kind, doc.name) == ("file", "合同.docx")
    [voice] = got("audio", {"file_key": "file_v3_a", "duration": 2000}).attachments
    assert voice.kind == "audio" and voice.transcript is None
    post = got("post", {"zh_cn": {"title": "看图", "content": [[{"tag": "text", "text": "这张"}],
                                                              [{"tag": "img", "image_key": "img_v3_p"}]]}})
    assert post.text == "看图\n这张" and [a.source["file_key"] for a in post.attachments] == ["img_v3_p"]


@dataclass
class FakeMedia:
    calls: list[int] = field(default_factory=list)
    fail: bool = False

    async def download(self, channel: ChannelBase, items: Sequence[MediaItem]) -> tuple[Attachment, ...]:
        self.calls.append(len(items))
        return tuple(Attachment(kind=i.kind, content_type=i.content_type,
                                **({"error": "file download: HTTP 404"} if self.fail else {"ref": "sha256:ab"}))
                     for i in items)


async def test_acceptor_downloads_new_messages_only_and_publishes_a_failed_download() -> None:
    ch = telegram_channel()
    shot = TelegramInbound(ch).normalise(update(None, photo=PHOTO))
    media, publisher = FakeMedia(fail=True), FakePublisher()
    acceptor = Acceptor(FakeDedupe(), publisher, media=media)
    assert (await acceptor.accept(ch, shot)).status == "published"
    [event] = publisher.published
    assert isinstance(event, MessageReceived) and event.data.text == ""
    assert [(a.kind, a.ref, a.error) for a in event.data.attachments] == [("image", None, "file download: HTTP 404")]
    again = await acceptor.accept(ch, shot)  # the platform's retry: answered from the table, not downloaded
    assert again.status == "duplicate" and media.calls == [1] and len(publisher.published) == 1
    # the event stays small: the bytes are never inside it
    assert len(orjson.dumps(event.data.model_dump(mode="json"))) < 2000
    text_only: Inbound = TelegramInbound(ch).normalise(update("just words"))
    await acceptor.accept(ch, text_only)
    assert media.calls == [1]


PNG = b"\x89PNG\r\n\x1a\n" + b"pixels" * 50


def ctx(attachments: tuple[Attachment, ...], text: str = "what is this?") -> ContextAssembled:
    return ContextAssembled.new(
        ContextAssembledData(agent="assistant", channel="acme", channel_type="telegram", chat=Chat(id="c"),
                             trigger="message", asker=Sender(id="u"),
                             input=Turn(role="user", text=text, at=utcnow(), attachments=attachments)),
        source="memory", tenant="acme", conversation="acme/acme/c")


def config(vision: bool) -> Any:
    raw = base_config(llm_url="http://127.0.0.1:9/v1")
    raw["models"][0]["vision"] = vision
    return parse_config(raw)


async def test_vision_models_get_image_parts_others_a_note() -> None:
    blobs = FakeBlobStore()
    ref = await blobs.put(PNG, "image/png")
    photo = Attachment(kind="image", content_type="image/png", size=len(PNG), ref=ref)
    voice = Attachment(kind="audio", name="voice.ogg", content_type="audio/ogg", size=7000, transcript="明天见")
    broken = Attachment(kind="file", name="big.zip", content_type="application/zip", error="too large")
    event = ctx((photo, voice, broken))
    llm, ledger = ScriptedLLM(), FakeInferenceLedger()
    await Reasoner(config(True), Settings(), ledger, llm, blobs=blobs).answer(event)
    [(sent, _)] = llm.requests
    text, image = sent[-1]["content"]
    assert text == {"type": "text", "text": "what is this?\n[attachment: voice.ogg, audio/ogg, 7000 bytes; "
                                            "transcript: 明天见]\n[attachment: big.zip, application/zip; "
                                            "not available: too large]"}
    assert image == {"type": "image_url",
                     "image_url": {"url": "data:image/png;base64," + base64.b64encode(PNG).decode()}}
    assert message_tokens(sent[-1]) > message_tokens({"role": "user", "content": text["text"]})
    [record] = ledger.records
    recorded = orjson.dumps(record.request)
    assert b"data:image/png;base64," in recorded and base64.b64encode(PNG) not in recorded  # bytes stay in blobs
    plain = ScriptedLLM()
    await Reasoner(config(False), Settings(), FakeInferenceLedger(), plain, blobs=blobs).answer(event)
    [(sent, _)] = plain.requests
    assert sent[-1]["content"].startswith(f"what is this?\n[attachment: image, image/png, {len(PNG)} bytes]")


def test_a_photo_alone_is_a_note_without_vision() -> None:
    agent = config(False).agent("assistant")
    photo = Attachment(kind="image", content_type="image/jpeg", size=10, ref="sha256:00")
    [*_, question] = build_messages(agent, ctx((photo,), text="").data)
    assert question["content"] == "[attachment: image, image/jpeg, 10 bytes]"
