"""The in-process index of one tenant's newest vectors, with the scope filter applied inside the scan.

A search's scope (one conversation, one person, group chats only) becomes a boolean mask over the ring, built
from small integer columns kept beside the matrix: the masked rows never take a place in the best k, so a
person with few memories among a tenant's many still gets their own best matches, not an empty top k.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from agentbus.events import Recall
from agentbus.services.memory.ports import Kind, Origin, Scope

# id, conversation, role, text, at, kind, origin
Meta = tuple[uuid.UUID, str, str, str, datetime, Kind, Origin]
Row = tuple[uuid.UUID, str, str, str, datetime, Kind, Origin, np.ndarray]
Ask = tuple[int, Collection[uuid.UUID], Scope]  # limit, ids to leave out, scope
_NONE = -1  # the code of "no owner"
_UNKNOWN = -2  # the code of a value never stored: matches nothing


def unit(vector: list[float] | np.ndarray) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float32)
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


@dataclass
class TenantIndex:
    """A ring of the newest ``capacity`` vectors of one tenant."""

    capacity: int
    dim: int
    matrix: np.ndarray = field(init=False)
    meta: list[Meta | None] = field(init=False)
    conv: np.ndarray = field(init=False)  # per slot: the code of its conversation
    owner: np.ndarray = field(init=False)  # per slot: the code of its owner, or _NONE
    group: np.ndarray = field(init=False)  # per slot: said in a group chat
    codes: dict[str, int] = field(default_factory=dict)  # conversation and owner strings → small integers
    slots: dict[uuid.UUID, int] = field(default_factory=dict)
    dead: set[int] = field(default_factory=set)  # slots whose vector was forgotten (until the ring reuses them)
    count: int = 0  # vectors ever added (the next slot is count % capacity)
    seq: int = 0  # highest database sequence number seen
    recent: dict[uuid.UUID, int] = field(default_factory=dict)  # ids read within the margin, and their seq
    refreshed: float = 0.0

    def __post_init__(self) -> None:
        rows = min(self.capacity, 1024)
        self.matrix = np.zeros((rows, self.dim), dtype=np.float32)
        self.meta = [None] * rows
        self.conv = np.full(rows, _UNKNOWN, dtype=np.int32)
        self.owner = np.full(rows, _UNKNOWN, dtype=np.int32)
        self.group = np.zeros(rows, dtype=bool)

    def _code(self, value: str) -> int:
        return self.codes.setdefault(value, len(self.codes))

    def _grow(self) -> None:
        """Double the arrays, up to the capacity."""
        old = self.matrix.shape[0]
        rows = min(self.capacity, old * 2)
        grown = np.zeros((rows, self.dim), dtype=np.float32)
        grown[:old] = self.matrix
        self.matrix = grown
        self.meta.extend([None] * (rows - len(self.meta)))
        self.conv = np.concatenate([self.conv, np.full(rows - old, _UNKNOWN, dtype=np.int32)])
        self.owner = np.concatenate([self.owner, np.full(rows - old, _UNKNOWN, dtype=np.int32)])
        self.group = np.concatenate([self.group, np.zeros(rows - old, dtype=bool)])

    def add(self, row: Row) -> None:
        point_id, conversation, role, text, at, kind, origin, vector = row
        if point_id in self.slots:
            return
        slot = self.count % self.capacity
        if slot >= self.matrix.shape[0]:
            self._grow()
        old = self.meta[slot]
        if old is not None:
            self.slots.pop(old[0], None)
        self.matrix[slot] = vector
        self.meta[slot] = (point_id, conversation, role, text, at, kind, origin)
        self.conv[slot] = self._code(conversation)
        self.owner[slot] = _NONE if origin.owner is None else self._code(origin.owner)
        self.group[slot] = origin.chat_type == "group"
        self.slots[point_id] = slot
        self.dead.discard(slot)
        self.count += 1

    def remove(self, point_id: uuid.UUID) -> None:
        slot = self.slots.pop(point_id, None)
        if slot is None:
            return
        self.matrix[slot] = 0.0
        self.meta[slot] = None
        self.conv[slot] = self.owner[slot] = _UNKNOWN
        self.dead.add(slot)

    @property
    def size(self) -> int:
        return min(self.count, self.capacity) - len(self.dead)

    def _outside(self, scope: Scope, n: int) -> np.ndarray | None:
        """The slots (of the first ``n``) a search of ``scope`` must not see; None when it sees them all."""
        keep: np.ndarray | None = None
        if scope.conversation is not None:
            keep = self.conv[:n] == self.codes.get(scope.conversation, _UNKNOWN)
        if scope.owner is not None:
            mine = self.owner[:n] == self.codes.get(scope.owner, _UNKNOWN)
            keep = mine if keep is None else keep & mine
        if scope.group_only:
            keep = self.group[:n] if keep is None else keep & self.group[:n]
        return None if keep is None else ~keep

    def search(self, queries: np.ndarray, asks: list[Ask]) -> list[list[Recall]]:
        """Several searches in one pass over the matrix (``queries`` row i answers ``asks[i]``).
        A scan is bound by memory bandwidth, so answering the searches waiting together costs about one."""
        n = min(self.count, self.capacity)
        if n == 0:
            return [[] for _ in asks]
        # (rows x dim) @ (dim x queries): for a few queries this runs about twice as fast as the transposed
        # product, which BLAS treats as a skinny matrix-matrix product
        all_scores = np.ascontiguousarray((self.matrix[:n] @ queries.T).T)
        if self.dead:  # forgotten slots never take a place in the best k
            all_scores[:, list(self.dead)] = -np.inf
        for row, (_, exclude, scope) in enumerate(asks):
            outside = self._outside(scope, n)
            if outside is not None:
                all_scores[row, outside] = -np.inf
            for point_id in exclude:
                if (slot := self.slots.get(point_id)) is not None:
                    all_scores[row, slot] = -np.inf
        k = min(max(limit for limit, _, _ in asks), n)
        if k <= 0:
            return [[] for _ in asks]
        # the best k of every row at once, then sorted within those k
        top = np.argpartition(all_scores, n - k, axis=1)[:, n - k:] if k < n else np.tile(np.arange(n), (len(asks), 1))
        out: list[list[Recall]] = []
        for scores, best, (limit, _, _) in zip(all_scores, top, asks, strict=True):
            found = []
            for i in sorted(best.tolist(), key=lambda j: -scores[j])[: max(limit, 0)]:
                meta = self.meta[i]
                score = float(scores[i])
                if meta is None or score == -np.inf:
                    continue
                found.append(recall_of(meta, score))
            out.append(found)
        return out


def recall_of(meta: Meta, score: float) -> Recall:
    point_id, conversation, role, text, at, kind, o = meta
    return Recall(text=text, score=score, role=role, at=at, conversation=conversation, kind=kind, event_id=point_id,
                  sender=o.sender, sender_name=o.sender_name, channel=o.channel, chat=o.chat, chat_name=o.chat_name,
                  chat_type=o.chat_type, owner=o.owner)
