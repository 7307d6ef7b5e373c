"""A person's own "forget everything about me", in chat: asked once, confirmed once, then erased.

Ingress answers both messages itself (as a refusal: no model call, nothing remembered). The question is kept
for ``window_s`` (ten minutes) in ingress's table of pending confirmations; the confirmation is a phrase of
its own ("yes, forget me"), not a bare "yes", so that a "yes" said to anything else in those minutes cannot
erase anybody. Confirmed in the same chat, it publishes the ``user.erasure_requested`` (its id derived from
the message's, so a platform retry that gets past de-duplication asks for the same erasure) and its audit
event (actor ``user:<id>``) before the answer.
"""

from __future__ import annotations

import re
import uuid
from typing import Protocol

import structlog

from agentbus.channeltypes import ChannelBase
from agentbus.erasure import erasure_requested
from agentbus.ids import derive_id
from agentbus.services.ingress.api.audit import audit_event
from agentbus.services.ingress.inbound import InboundMessage
from agentbus.services.ingress.ports import Spoken

log = structlog.get_logger("agentbus.ingress")

ASK: dict[str, tuple[str, ...]] = {
    "en": ("forget everything about me", "forget me", "forget all about me", "delete everything about me"),
    "zh": ("忘记关于我的一切", "忘记我", "忘掉关于我的一切", "删除关于我的一切"),
}
CONFIRM: dict[str, tuple[str, ...]] = {"en": ("yes, forget me",), "zh": ("确认忘记",)}
SAID = {
    "en": {"ask": 'Forget everything I know about you? This deletes what you have said to me and my answers to '
                  'you, everywhere, and cannot be undone. To confirm, reply "yes, forget me" within 10 minutes.',
           "done": "Done: I have forgotten everything about you."},
    "zh": {"ask": "要忘记关于你的一切吗？这会删除你对我说过的话和我给你的回答，无法撤销。"
                  "确认请在 10 分钟内回复「确认忘记」。",
           "done": "好的，关于你的一切我都已忘记。"},
}
_MENTION = re.compile(r"(^|\s)@\S+")
_PUNCT = re.compile(r"[\s.,!?;:'\"“”‘’，。！？；：、「」]+")


def normal(text: str) -> str:
    """The words of a message, lower case, without mentions and punctuation."""
    return _PUNCT.sub(" ", _MENTION.sub(" ", text.casefold())).strip()


def _match(text: str, phrases: dict[str, tuple[str, ...]]) -> str | None:
    said = normal(text)
    for lang, options in phrases.items():
        if said in {normal(o) for o in options}:
            return lang
    return None


class Confirmations(Protocol):
    async def ask(self, tenant: str, user: str, channel: str, chat: str) -> None:
        """Keep the person's question (a newer one replaces it)."""
        ...

    async def take(self, tenant: str, user: str, channel: str, chat: str, within_s: float) -> bool:
        """Remove the person's question; whether there was one from this chat, asked within ``within_s``."""
        ...


class ForgetMe:
    """The ``ErasureRequests`` port: the phrases, the question and the confirmation."""

    def __init__(self, confirmations: Confirmations, window_s: float = 600.0) -> None:
        self._pending = confirmations
        self._window_s = window_s

    async def heard(self, channel: ChannelBase, msg: InboundMessage, event_id: uuid.UUID) -> Spoken | None:
        if msg.action is not None or not msg.text or len(msg.text) > 200:
            return None
        tenant, user = channel.tenant, msg.sender.id
        if (lang := _match(msg.text, ASK)) is not None:
            await self._pending.ask(tenant, user, channel.id, msg.chat.id)
            log.info("erasure_confirmation_asked", channel=channel.id)
            return Spoken(SAID[lang]["ask"])
        if (lang := _match(msg.text, CONFIRM)) is None:
            return None
        if not await self._pending.take(tenant, user, channel.id, msg.chat.id, self._window_s):
            return None  # nothing asked (or too long ago): an ordinary message
        command = erasure_requested(tenant, user, f"user:{user}", source="ingress")
        command = command.model_copy(update={"id": derive_id(event_id, "erasure"),
                                             "correlation_id": derive_id(event_id, "erasure")})
        audit = audit_event(actor=f"user:{user}", actor_name=msg.sender.name, tenant=tenant, action="users.forget",
                            target=user, outcome="ok", detail=f"asked in chat on {channel.id}")
        audit = audit.model_copy(update={"id": derive_id(event_id, "audit"), "correlation_id": command.id})
        log.info("erasure_confirmed_in_chat", channel=channel.id, erasure=str(command.id))
        return Spoken(SAID[lang]["done"], (command, audit))
