"""Writing a new version of the platform's configuration: validated first, then published once.

Used by the operator API and by ``agentbus config apply``. A writer holds a PostgreSQL advisory lock (one per
topic prefix) while it reads the newest version, builds the next one and publishes it, so two writers never
both build on the same version; a caller that names the version it edited gets a conflict if another write
came first. An invalid document is refused before anything is published, naming the key.
"""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from agentbus.config import ConfigError, parse_config
from agentbus.configdiff import changes
from agentbus.events import ConfigChanged, Event
from agentbus.liveconfig import changed_event, digest, read_log
from agentbus.security import InsecureConfiguration, check_secure_defaults
from agentbus.settings import Settings

Edit = Callable[[dict[str, Any]], dict[str, Any]]
Lock = Callable[[], AbstractAsyncContextManager[None]]


class Publisher(Protocol):
    async def publish(self, events: list[Event]) -> None: ...


class ConfigRefused(Exception):
    """The new document is not a valid configuration (the message names each key)."""


class ConfigConflict(Exception):
    """The version the caller edited is no longer the newest."""


class NoConfig(Exception):
    """Nothing is published yet (no service has started to seed the topic from its file)."""


@dataclass(frozen=True)
class Outcome:
    version: int  # the new version, or the current one when nothing changed (or on a dry run)
    base_version: int
    changes: list[str]
    published: ConfigChanged | None  # None: a dry run, or the same configuration


def pg_lock(database_url: str, prefix: str) -> Lock:
    """A session advisory lock on the platform's database, one per topic prefix."""

    @asynccontextmanager
    async def held() -> AsyncIterator[None]:
        import psycopg

        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            await conn.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"agentbus.config.{prefix}",))
            try:
                yield
            finally:
                await conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (f"agentbus.config.{prefix}",))

    return held


def validate(document: dict[str, Any], settings: Settings, source: str = "configuration") -> None:
    try:
        config = parse_config(document, source=source)
        check_secure_defaults(config, settings, source)
    except (ConfigError, InsecureConfiguration) as err:
        raise ConfigRefused(str(err)) from None


class ConfigWriter:
    def __init__(self, settings: Settings, producer: Publisher, lock: Lock, source: str) -> None:
        self._s = settings
        self._producer = producer
        self._lock = lock
        self._source = source

    async def current(self) -> ConfigChanged:
        latest, _ = await read_log(self._s)
        if latest is None:
            raise NoConfig("no configuration is published yet: start a service (it seeds the file) first")
        return latest

    async def write(self, edit: Edit, *, actor: str, reason: str, expected_version: int | None = None,
                    dry_run: bool = False) -> Outcome:
        async with self._lock():
            latest = await self.current()
            base = latest.data
            if expected_version is not None and expected_version != base.version:
                raise ConfigConflict(f"the configuration is at version {base.version}, not {expected_version}: "
                                     "read it again and redo the change")
            document = edit(copy.deepcopy(base.document))
            validate(document, self._s)
            diff = changes(base.document, document)
            if dry_run or digest(document) == base.digest:
                return Outcome(base.version, base.version, diff, None)
            event = changed_event(document, base.version + 1, actor=actor, reason=reason, changes=diff,
                                  source=self._source)
            await self._producer.publish([event])
            return Outcome(base.version + 1, base.version, diff, event)
