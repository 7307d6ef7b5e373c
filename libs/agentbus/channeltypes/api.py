"""The OpenAI-compatible chat API as a channel: ``POST /v1/chat/completions`` on ingress.

Configured like any channel instance, so a chat API caller gets an id, a tenant, an agent and the channel
policies (allowlist, refusal text); the caller's ``model`` names the agent, and a tenant has at most one api
channel per agent. Nothing is pushed: the waiting HTTP request is the way back, so egress only records the
delivery.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from agentbus.channeltypes.base import ChannelBase


class ApiChannel(ChannelBase):
    type: Literal["api"]
    editable: ClassVar[bool] = True  # progress: stream gives `stream: true` callers the answer as it grows
    progress: Literal["off", "typing", "stream"] = "stream"
    # how long a request waits for the agent's answer before it is answered 504 (the answer still comes,
    # and is remembered, but nobody is waiting for it any more)
    reply_timeout_s: float = Field(default=120.0, gt=0, le=3600)
    # the least role a tenant's API token needs to chat (operators and admins; viewers only read)
    min_role: Literal["viewer", "operator", "admin"] = "operator"
