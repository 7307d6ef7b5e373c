"""The one helper every service seals and opens text with: the key store behind a short in-process cache.

A key found is kept for ``ttl_s`` seconds (a person's messages come in runs), and so is a key found missing
(deleted: the text reads ``[forgotten]``). Forgetting deletes the key in the store and drops it from this
process's cache at once; another process may use its cached copy for at most ``ttl_s`` more.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable
from typing import Any, Protocol

from agentbus.sealing.envelope import FORGOTTEN, DataKey, is_sealed, seal, unseal


class KeyStore(Protocol):
    async def key_for(self, tenant: str, user: str) -> DataKey:
        """The person's key, made now when they have none."""
        ...

    async def keys(self, kids: Collection[str]) -> dict[str, DataKey]:
        """The keys of these ids that exist (a deleted one is absent)."""
        ...

    async def forget(self, tenant: str, user: str) -> list[str]:
        """Delete the person's key; returns the ids deleted (none when there was nothing left)."""
        ...


class Keyring:
    def __init__(self, store: KeyStore, ttl_s: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._ttl = ttl_s
        self._clock = clock
        self._owners: dict[tuple[str, str], tuple[DataKey, float]] = {}
        self._kids: dict[str, tuple[DataKey | None, float]] = {}
        self._making: dict[tuple[str, str], asyncio.Future[DataKey]] = {}
        # the records last sealed, by the object sealed: a handler's outputs are sealed for its processed record
        # and again when they are published, the same objects (sealing is deterministic: the same bytes)
        self.sealed: OrderedDict[int, tuple[object, bytes]] = OrderedDict()

    async def key_for(self, tenant: str, user: str) -> DataKey:
        owner = (tenant, user)
        cached = self._owners.get(owner)
        if cached is not None and cached[1] > self._clock():
            return cached[0]
        pending = self._making.get(owner)
        if pending is not None:  # the same person's key asked for at the same moment: one read
            return await asyncio.shield(pending)
        future: asyncio.Future[DataKey] = asyncio.get_running_loop().create_future()
        self._making[owner] = future
        try:
            key = await self._store.key_for(tenant, user)
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()
            raise
        finally:
            self._making.pop(owner, None)
        future.set_result(key)
        self._keep(key)
        return key

    def _keep(self, key: DataKey) -> None:
        until = self._clock() + self._ttl
        self._owners[(key.tenant, key.user)] = (key, until)
        self._kids[key.kid] = (key, until)

    async def keys(self, kids: Iterable[str]) -> dict[str, DataKey | None]:
        """Each id's key, None for one deleted."""
        now = self._clock()
        found: dict[str, DataKey | None] = {}
        missing = set()
        for kid in kids:
            cached = self._kids.get(kid)
            if cached is not None and cached[1] > now:
                found[kid] = cached[0]
            else:
                missing.add(kid)
        if missing:
            read = await self._store.keys(missing)
            until = self._clock() + self._ttl
            for kid in missing:
                key = read.get(kid)
                self._kids[kid] = (key, until)
                if key is not None:
                    self._owners[(key.tenant, key.user)] = (key, until)
                found[kid] = key
        return found

    async def seal_text(self, tenant: str, user: str, text: str, where: str) -> dict[str, str]:
        return seal(await self.key_for(tenant, user), text, where)

    async def open_text(self, value: str | dict[str, Any]) -> str:
        """The text of a sealed value (``[forgotten]`` when its key was deleted); plain text as it is."""
        if not is_sealed(value):
            if isinstance(value, str):
                return value
            raise ValueError("neither text nor a sealed value")
        assert isinstance(value, dict)
        key = (await self.keys([value["kid"]]))[value["kid"]]
        return FORGOTTEN if key is None else unseal(key, value)

    async def forget(self, tenant: str, user: str) -> list[str]:
        """Delete the person's key in the store and in this process's cache."""
        deleted = await self._store.forget(tenant, user)
        self.evict(tenant, user, deleted)
        return deleted

    def evict(self, tenant: str, user: str, kids: Iterable[str] = ()) -> None:
        cached = self._owners.pop((tenant, user), None)
        gone = set(kids) | ({cached[0].kid} if cached is not None else set())
        gone |= {kid for kid, (key, _) in self._kids.items() if key is not None and (key.tenant, key.user) ==
                 (tenant, user)}
        for kid in gone:
            self._kids[kid] = (None, self._clock() + self._ttl)
