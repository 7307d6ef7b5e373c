"""WeCom inbound: the callback URL verification (GET) and encrypted message callbacks (POST).

Both carry ``msg_signature``, ``timestamp`` and ``nonce`` in the query; the signature is the SHA-1 of the
sorted token, timestamp, nonce and ciphertext (``echostr`` for the GET, ``<Encrypt>`` of the XML body for
the POST). The GET is answered with the decrypted ``echostr`` as plain text; a POST is answered with an
empty 200, after which WeCom does not retry. Retries before that are de-duplicated by ``MsgId``. An app
receives direct messages only, so every WeCom message is a direct one.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from agentbus.channeltypes.wecom import WeComChannel
from agentbus.events import Chat, Sender
from agentbus.services.ingress.channels.base import HttpRequest, InboundAdapter, Rejected
from agentbus.services.ingress.channels.callback_crypto import CallbackCrypto, CryptoError
from agentbus.services.ingress.inbound import Answer, Inbound, InboundMessage, MediaItem

EMPTY = Answer(200, b"", "text/plain")
_DECLARATIONS = re.compile(rb"<!(DOCTYPE|ENTITY)", re.IGNORECASE)


def parse_xml(data: bytes, what: str) -> ET.Element:
    """A WeCom XML document; DTDs and entities (never sent by WeCom) are refused before parsing."""
    if _DECLARATIONS.search(data):
        raise Rejected(400, f"{what}: XML declarations are not accepted")
    try:
        root = ET.fromstring(data)
    except (ET.ParseError, LookupError, ValueError):
        raise Rejected(400, f"{what}: malformed XML") from None
    if root.tag != "xml":
        raise Rejected(400, f"{what}: root element must be <xml>")
    return root


def field(root: ET.Element, name: str) -> str | None:
    node = root.find(name)
    return node.text if node is not None and node.text is not None else None


class WeComInbound(InboundAdapter):
    type = "wecom"
    channel: WeComChannel

    def __init__(self, channel: WeComChannel) -> None:
        super().__init__(channel)
        self._crypto: CallbackCrypto | None = None
        if channel.token and channel.encoding_aes_key:
            self._crypto = CallbackCrypto(
                channel.token.value(), channel.encoding_aes_key.value(), channel.corp_id
            )

    def accepts_method(self, method: str) -> bool:
        return method in ("GET", "POST")

    def _signed(self, request: HttpRequest, encrypt: str) -> bytes:
        crypto = self._crypto
        if crypto is None:
            raise Rejected(403, "this channel has no token/encoding_aes_key: callbacks are not accepted")
        q = request.query
        signature, stamp, nonce = q.get("msg_signature"), q.get("timestamp"), q.get("nonce")
        if not signature or not stamp or not nonce:
            raise Rejected(401, "missing msg_signature, timestamp or nonce query parameter")
        if not (stamp.isascii() and stamp.isdigit()) or len(stamp) > 13:
            raise Rejected(401, "malformed timestamp")
        value = int(stamp)
        seconds = value / 1000 if value > 100_000_000_000 else float(value)
        if abs(request.received_at - seconds) > self.channel.timestamp_window_s:
            raise Rejected(401, f"stale timestamp: outside the {self.channel.timestamp_window_s} s window")
        if not crypto.verify(signature, stamp, nonce, encrypt):
            raise Rejected(401, "invalid msg_signature")
        try:
            return crypto.decrypt(encrypt)
        except CryptoError as err:
            raise Rejected(400, f"cannot decrypt: {err}") from None

    async def receive(self, request: HttpRequest) -> Inbound:
        if request.method == "GET":
            echostr = request.query.get("echostr")
            if not echostr:
                raise Rejected(400, "missing echostr")
            # a '+' of the base64 that arrived unencoded was read as a space
            plain = self._signed(request, echostr.replace(" ", "+"))
            return Inbound(answer=Answer(200, plain, "text/plain"), note="url verification")
        outer = parse_xml(request.body, "body")
        encrypt = field(outer, "Encrypt")
        if not encrypt:
            raise Rejected(400, "body has no <Encrypt>")
        inner = parse_xml(self._signed(request, encrypt.strip()), "decrypted message")
        return self._message(inner)

    def _message(self, x: ET.Element) -> Inbound:
        msg_type, sender = field(x, "MsgType"), field(x, "FromUserName")
        if not msg_type or not sender or len(sender) > 256:
            raise Rejected(422, "message needs MsgType and FromUserName")
        agent = field(x, "AgentID")
        if (
            agent is not None
            and self.channel.agent_id is not None
            and agent.strip() != str(self.channel.agent_id)
        ):
            raise Rejected(403, "message for another app (AgentID)")
        msg_id = field(x, "MsgId")
        if msg_type == "event":
            event = (field(x, "Event") or "")[:64]
            return Inbound(
                answer=EMPTY,
                dedupe_id=f"event:{sender}:{field(x, 'CreateTime')}:{event}",
                note=f"event {event} not handled",
            )
        if not msg_id or len(msg_id) > 128:
            raise Rejected(422, "message needs a MsgId")
        text = (
            field(x, "Content")
            if msg_type == "text"
            else field(x, "Recognition")
            if msg_type == "voice"
            else None
        )
        media = _media(x, msg_type, text)
        if (text is None or not text.strip()) and not media:
            return Inbound(
                answer=EMPTY, dedupe_id=msg_id, note=f"{msg_type} message without text: not handled"
            )
        route: dict[str, str] = {"touser": sender}
        if agent is not None:
            route["agent_id"] = agent.strip()
        return Inbound(
            answer=EMPTY,
            dedupe_id=msg_id,
            message=InboundMessage(
                platform_message_id=msg_id,
                sender=Sender(id=sender),
                chat=Chat(id=sender, type="direct"),
                text=(text or "").strip(),
                mentioned_bot=True,
                reply_route=route,
                attachments=media,
            ),
        )


def _media(x: ET.Element, msg_type: str, recognition: str | None) -> tuple[MediaItem, ...]:
    """The file of an image, voice or video message, by its ``MediaId`` (fetched with ``media/get`` before
    the message is published); a voice note's ``Recognition`` is its transcript."""
    media_id = (field(x, "MediaId") or "").strip()
    if not media_id or len(media_id) > 512:
        return ()
    source = {"media_id": media_id}
    if msg_type == "image":
        return (MediaItem(kind="image", source=source),)
    if msg_type == "video":
        return (MediaItem(kind="video", source=source, content_type="video/mp4"),)
    if msg_type == "voice":
        fmt = (field(x, "Format") or "amr").strip().lower()
        return (MediaItem(kind="audio", source=source, content_type=f"audio/{fmt[:16]}",
                          transcript=recognition.strip() if recognition and recognition.strip() else None),)
    return ()
