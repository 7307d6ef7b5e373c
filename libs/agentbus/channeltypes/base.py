"""What every channel instance in ``agentbus.yaml`` has, and how credentials are referenced."""

from __future__ import annotations

import os

from pydantic import BaseModel, ConfigDict, Field


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EnvRef(Strict):
    """A credential read from the environment at start-up (``{env: NAME, default: ...}``)."""

    env: str
    default: str | None = None

    def resolve(self) -> str | None:
        return os.environ.get(self.env, self.default)

    def value(self) -> str:
        v = self.resolve()
        if v is None:
            raise LookupError(f"environment variable {self.env} is not set")
        return v


class ChannelBase(Strict):
    id: str = Field(pattern=r"^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,62}$")
    type: str
    tenant: str
    agent: str
    # group chats: answer only when the bot is mentioned
    require_mention_in_groups: bool = True
    # direct messages: when set, only these sender ids are served; others get `refusal_text`
    allowlist: tuple[str, ...] | None = None
    refusal_text: str = "Sorry, I am not able to help you here. Please ask an administrator for access."
    # outbound pushes per target per minute (None: the channel type's documented default)
    rate_limit_per_minute: int | None = None
