"""The chat API's outbound half: nothing to push.

The answer goes back as the HTTP answer of the request waiting on ingress (which reads reply.generated
itself), so egress only records the delivery: delivery.completed says ``delivered`` for every reply, and
nothing is retried or dead-lettered for want of a push URL."""

from __future__ import annotations

import uuid

from agentbus.events import ReplyGeneratedData
from agentbus.services.egress.channels.base import OutboundAdapter
from agentbus.services.egress.ports import Pushed


class ApiOutbound(OutboundAdapter):
    type = "api"
    idempotent = True  # no platform call: repeating it changes nothing

    async def push(self, reply: ReplyGeneratedData, reply_id: uuid.UUID) -> Pushed:
        return Pushed(http_status=None, platform_message_id=reply.in_reply_to)
