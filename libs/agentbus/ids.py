"""How ids and keys are made, in one place for every service and the command line.

Output ids are derived from the causing event and the name of the step that made them, so a redelivered
input makes byte-identical outputs. The step names are part of the contract: ``agentbus replay`` finds the
reply to an entry event by deriving its id along the same steps, so a step renamed in a service without
changing it here would silently break replay reports.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

ID_NAMESPACE: Final = uuid.UUID("6f1c2b1e-5d0a-4c8e-9a57-2b7f0e4d9c31")


def derive_id(cause: uuid.UUID | str, step: str) -> uuid.UUID:
    """A deterministic id for the output ``step`` of the event ``cause``."""
    return uuid.uuid5(ID_NAMESPACE, f"{cause}:{step}")


class Step:
    """The names of the steps whose outputs get derived ids."""

    CONTEXT: Final = "context"  # memory: message.received / job.triggered → context.assembled
    INFERENCE: Final = "inference"  # reasoner: context.assembled → inference.completed
    REPLY: Final = "reply"  # reasoner: context.assembled → reply.generated
    DELIVERY: Final = "delivery"  # egress: reply.generated → delivery.completed
    MESSAGE: Final = "message.received"  # ingress: (channel, platform event id) → message.received
    TOOL: Final = "tool"  # reasoner: one tool call of the tool loop → tool.called (and its commands)


def message_id(channel: str, dedupe_id: str) -> uuid.UUID:
    """The id of the message.received event of one platform event (a platform retry gets the same id)."""
    return derive_id(f"{channel}:{dedupe_id}", Step.MESSAGE)


def firing_id(job_id: str, due_at: datetime) -> uuid.UUID:
    """The id of the job.triggered event of one (job, due time)."""
    return derive_id(f"job:{job_id}", due_at.astimezone(UTC).isoformat())


def tool_call_key(input_id: uuid.UUID, step: int, call_id: str) -> str:
    """The idempotency key of one tool call: the input the loop answers, the model call, the call's id."""
    return str(derive_id(input_id, f"{Step.TOOL}:{step}:{call_id}"))


def reply_id(entry_id: uuid.UUID, entry_type: str) -> uuid.UUID:
    """The id of the reply.generated caused (through the pipeline's steps) by the event ``entry_id``."""
    context = entry_id if entry_type == "context.assembled" else derive_id(entry_id, Step.CONTEXT)
    return derive_id(context, Step.REPLY)


def reply_id_of_context(context_id: uuid.UUID) -> uuid.UUID:
    return derive_id(context_id, Step.REPLY)


@dataclass(frozen=True)
class ConversationKey:
    """The partition key ``tenant/channel/chat``: one conversation is always in order on one partition.

    Chat ids may contain ``/`` (some platforms' thread ids do), so the key splits at the first two only."""

    tenant: str
    channel: str
    chat: str

    def __str__(self) -> str:
        return f"{self.tenant}/{self.channel}/{self.chat}"

    @classmethod
    def parse(cls, key: str) -> ConversationKey:
        parts = key.split("/", 2)
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"not a conversation key (tenant/channel/chat): {key!r}")
        return cls(*parts)


def conversation_key(tenant: str, channel: str, chat: str) -> str:
    return str(ConversationKey(tenant, channel, chat))
