"""The blob store in memory: the same contract as PostgreSQL's (content-addressed, idempotent put)."""

from __future__ import annotations

from dataclasses import dataclass, field

from agentbus.blobs import ref_of


@dataclass
class FakeBlobStore:
    blobs: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    puts: int = 0
    down: bool = False  # the database unreachable: put and get raise

    async def put(self, data: bytes, content_type: str) -> str:
        if self.down:
            raise ConnectionError("blob store down")
        self.puts += 1
        ref = ref_of(data)
        self.blobs.setdefault(ref, (data, content_type))
        return ref

    async def get(self, ref: str) -> tuple[bytes, str] | None:
        if self.down:
            raise ConnectionError("blob store down")
        return self.blobs.get(ref)
