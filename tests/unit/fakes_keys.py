"""An in-memory key store (the ``KeyStore`` port) that counts its reads, for the keyring's unit tests and the
services' handler tests."""

from __future__ import annotations

import os
import uuid
from collections.abc import Collection

from agentbus.sealing import DataKey


class MemoryKeyStore:
    def __init__(self) -> None:
        self.by_owner: dict[tuple[str, str], DataKey] = {}
        self.forgotten: list[str] = []
        self.reads = 0

    async def key_for(self, tenant: str, user: str) -> DataKey:
        self.reads += 1
        key = self.by_owner.get((tenant, user))
        if key is None:
            key = self.by_owner[(tenant, user)] = DataKey(uuid.uuid4().hex, tenant, user, os.urandom(32))
        return key

    async def keys(self, kids: Collection[str]) -> dict[str, DataKey]:
        self.reads += 1
        return {k.kid: k for k in self.by_owner.values() if k.kid in kids}

    async def forget(self, tenant: str, user: str) -> list[str]:
        key = self.by_owner.pop((tenant, user), None)
        if key is None:
            return []
        self.forgotten.append(key.kid)
        return [key.kid]
