"""The chat API's parts for ingress's bootstrap: its routes, the reply follower and its readiness check;
nothing at all when no ``api`` channel is configured."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any

from psycopg_pool import AsyncConnectionPool
from starlette.routing import BaseRoute

from agentbus.channeltypes import ApiChannel
from agentbus.config import PlatformConfig
from agentbus.http import ReadyCheck
from agentbus.sealing import Keyring
from agentbus.services.ingress.accept import Acceptor
from agentbus.services.ingress.api.store import PgTokenStore
from agentbus.services.ingress.chat.replies import ReplyFollower, Waiters
from agentbus.services.ingress.chat.routes import ChatApi
from agentbus.settings import Settings


@dataclass
class ChatParts:
    routes: list[BaseRoute] = field(default_factory=list)
    background: list[Callable[[], Coroutine[Any, Any, Any]]] = field(default_factory=list)
    checks: dict[str, ReadyCheck] = field(default_factory=dict)


def chat_api(settings: Settings, config: PlatformConfig, pool: AsyncConnectionPool, acceptor: Acceptor,
             keyring: Keyring | None = None) -> ChatParts:
    channels = {(c.tenant, c.agent): c for c in config.channels if isinstance(c, ApiChannel)}
    if not channels:
        return ChatParts()
    waiters = Waiters()
    follower = ReplyFollower(settings, waiters, keyring)
    api = ChatApi(channels, PgTokenStore(pool), acceptor, waiters, lambda: follower.ready, settings.max_body_bytes)
    return ChatParts(routes=api.routes(), background=[follower.run], checks={"chat_replies": follower.check})
