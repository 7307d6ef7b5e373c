"""What memory's handlers need from outside, as small protocols.

The handlers decide what a turn means (which history it sees, what context it makes, whether a replay may
write anything); these ports only read and write. Bootstrap wires PostgreSQL, Qdrant and the embeddings
server to them, and unit tests wire fakes that record what happened, both checked against these protocols.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from agentbus.events import Event, KnowledgeRequested, KnowledgeSource, MemoryRequested, Recall, Turn

Kind = Literal["turn", "fact"]


RecallScope = Literal["conversation", "user", "tenant"]


@dataclass(frozen=True)
class Origin:
    """Who said a memory, where, and whose memory it is: stored with every vector so that recall filters on it
    inside the vector store and the prompt can say it. ``owner`` is the person a memory belongs to: the sender
    of a turn, the person a reply answered, the subject of a fact; none for a job's turn."""

    owner: str | None = None
    sender: str | None = None
    sender_name: str | None = None
    channel: str | None = None
    chat: str | None = None
    chat_name: str | None = None
    chat_type: Literal["direct", "group"] | None = None


@dataclass(frozen=True)
class Scope:
    """Whose memories a search, a write or a deletion may touch: always one tenant's, narrowed for a search
    to one conversation (``conversation``), to one person's (``owner``), and to what was said in group chats
    (``group_only``: a person asking in a group must not have their direct chats recalled in front of it).
    Every adapter filters on these inside its store, never by thinning out a top k afterwards.

    Vectors stored before owners were kept have none: only a ``tenant`` or ``conversation`` search finds them."""

    tenant: str
    conversation: str | None = None
    owner: str | None = None
    group_only: bool = False

    @classmethod
    def of(cls, event: Event) -> Scope:
        return cls(tenant=event.tenant)

    @classmethod
    def recall(cls, event: Event, mode: RecallScope, owner: str | None, in_group: bool) -> Scope:
        """The scope a turn of ``event`` recalls from."""
        return cls.within(event.tenant, mode, event.conversation, owner, in_group)

    @classmethod
    def within(cls, tenant: str, mode: RecallScope, conversation: str, owner: str | None, in_group: bool) -> Scope:
        """A recall scope: ``user`` without an owner (a job's turn) falls back to the conversation, as there
        is nobody whose memories to read."""
        if mode == "tenant":
            return cls(tenant=tenant)
        if mode == "conversation" or owner is None:
            return cls(tenant=tenant, conversation=conversation)
        return cls(tenant=tenant, owner=owner, group_only=in_group)


class Embedder(Protocol):
    async def embed(self, texts: Sequence[str], kind: str) -> list[list[float]]: ...


class VectorStore(Protocol):
    async def search(
        self, vector: list[float], scope: Scope, limit: int, exclude: Collection[uuid.UUID] = ()
    ) -> list[Recall]:
        """The ``limit`` best matches within ``scope``, leaving out the ids in ``exclude`` (the asking turn and
        the history sent beside it), best first."""
        ...

    async def upsert(
        self, point_id: uuid.UUID, vector: list[float], scope: Scope, conversation: str, role: str,
        text: str, at: datetime, kind: Kind = "turn", subject: str | None = None, origin: Origin | None = None,
    ) -> None:
        """Idempotent by ``point_id``; an id forgotten before is never written again (a redelivered turn
        must not bring back what someone asked to forget)."""
        ...

    async def forget(self, vector: list[float], scope: Scope, min_score: float) -> list[uuid.UUID]:
        """Delete every vector of the scope whose cosine similarity to ``vector`` is at least ``min_score``
        (all of them, not only the newest a search sees), everywhere it is searched; returns their ids."""
        ...

    async def erase(self, tenant: str, user: str) -> int:
        """Delete every memory of the person (their turns, the replies to them, the facts about them), for
        good (a redelivered turn does not bring one back); returns how many."""
        ...

    async def memories(self, tenant: str, conversation: str, limit: int) -> list[Recall]:
        """The newest ``limit`` memories made in the conversation (turns and facts), newest first, score 0:
        what an operator reads, not a search."""
        ...

    async def find(self, tenant: str, ids: Collection[uuid.UUID]) -> list[Recall]:
        """Those of ``ids`` the tenant has (another tenant's id finds nothing)."""
        ...

    async def delete(self, tenant: str, ids: Collection[uuid.UUID]) -> list[uuid.UUID]:
        """Delete those of ``ids`` the tenant has, everywhere they are searched, as ``forget`` does; returns
        the ids deleted (none a second time)."""
        ...


@dataclass(frozen=True)
class KnowledgeRow:
    """One chunk of a document of the tenant's knowledge base, with its vector (a passage's)."""

    id: uuid.UUID
    document: uuid.UUID
    title: str
    section: str | None
    position: int
    text: str
    loaded_at: datetime
    vector: list[float]


def knowledge_recall(point_id: uuid.UUID, document: uuid.UUID, title: str, section: str | None, position: int,
                     text: str, loaded_at: datetime, score: float) -> Recall:
    """A chunk as recall returns it: nobody said it (role system), it says where it comes from."""
    return Recall(text=text, score=score, role="system", at=loaded_at, event_id=point_id,
                  knowledge=KnowledgeSource(document=document, title=title, section=section, position=position,
                                            loaded_at=loaded_at))


class KnowledgeBase(Protocol):
    """The tenant's knowledge base: chunks of documents an operator loaded, for every user of the tenant. Kept
    apart from the memories of ``VectorStore``: a person's forget or erasure never reaches it, the in-process
    index's cap of a tenant's newest turns never evicts it, and a document is removed whole."""

    async def add(self, tenant: str, rows: Sequence[KnowledgeRow]) -> None:
        """Idempotent by chunk id."""
        ...

    async def search(self, tenant: str, vector: list[float], limit: int) -> list[Recall]:
        """The ``limit`` chunks of the tenant most like ``vector``, best first (another tenant's never)."""
        ...

    async def remove(self, tenant: str, document: uuid.UUID) -> int:
        """Delete every chunk of the document, everywhere it is searched; returns how many."""
        ...


@dataclass(frozen=True)
class KnowledgeDocument:
    """A document of the catalogue, as the operator lists it."""

    id: uuid.UUID
    tenant: str
    title: str
    source: str | None
    content_type: str | None
    parts: int
    parts_loaded: int
    chunks: int
    loaded_at: datetime | None
    requested_by: str
    removed_at: datetime | None


class KnowledgeCatalogue(Protocol):
    """The documents loaded and removed, which is also the processed record of ``knowledge.requested``."""

    async def applied(self, event: Event) -> bool: ...

    async def removed(self, tenant: str, document: uuid.UUID) -> bool:
        """Whether the document was removed (its parts are then never stored again)."""
        ...

    async def record(self, event: KnowledgeRequested, chunks: int) -> None:
        """Record the command as applied (a part stored with ``chunks`` chunks, or the document removed), with
        its processed record, both or neither."""
        ...

    async def documents(self, tenant: str, removed: bool = False) -> list[KnowledgeDocument]:
        """The tenant's documents, newest first (those removed too, with ``removed``)."""
        ...


@dataclass(frozen=True)
class Deferred:
    """A turn whose vector could not be made (the embeddings server was away), kept to be indexed later."""

    point_id: uuid.UUID
    tenant: str
    conversation: str
    role: str
    text: str
    at: datetime
    origin: Origin


class DeferredIndex(Protocol):
    """Turns waiting for their vector. ``take`` hands out a batch no other replica holds until it is
    ``done``, ``release``d (the server is still away) or its claim expires, so a crash in between only means
    the batch is indexed again (upserts are by id)."""

    async def defer(self, item: Deferred) -> None: ...

    async def take(self, limit: int) -> list[Deferred]: ...

    async def done(self, ids: Sequence[uuid.UUID]) -> None: ...

    async def release(self, ids: Sequence[uuid.UUID]) -> None: ...


class CommandLog(Protocol):
    """The record of applied ``memory.requested`` commands, which is also their processed-events record."""

    async def applied(self, event: Event) -> bool: ...

    async def record(self, event: MemoryRequested, deleted: Sequence[uuid.UUID]) -> None:
        """Record the command as applied (and what it deleted), with its processed record, both or neither."""
        ...


class TurnStore(Protocol):
    async def history(
        self, conversation: str, limit: int = 50, before: datetime | None = None, exclude: uuid.UUID | None = None,
        since: datetime | None = None,
    ) -> list[Turn]:
        """The newest ``limit`` turns of the conversation at ``before`` (all, without it) and not older than
        ``since``, oldest first, leaving out the turn of the event ``exclude`` (a redelivered event must not see
        itself)."""
        ...

    async def remember(self, event: Event, turn: Turn | None, outputs: Sequence[Event]) -> list[Event]:
        """Write ``turn`` (None: nothing to keep) with the record that ``event`` was processed into
        ``outputs``, both or neither. Returns the outputs recorded for the event: these, or, when the event
        was recorded before (a redelivery), those of the first time."""
        ...
