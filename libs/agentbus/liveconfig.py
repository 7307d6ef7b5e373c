"""The platform's configuration as events: every replica of every service applies the newest ``config.changed``.

The configuration lives on one compacted topic under one key, each event the whole document at a version, so
a replica that starts reads it to the end and has the platform's configuration, and one that runs follows it
and applies each new version without a restart. agentbus.yaml seeds the topic when it is empty (version 1);
after that the file is only read at start to warn that it differs from what runs (``agentbus config apply``
publishes it). A replica applies an event whose version is at least its own, so replicas that read the
topic before and after compaction end at the same document; a version older than the one applied is stale
and ignored. Writers serialise on a PostgreSQL advisory lock (``ConfigWriter``), so a version is never
written twice by two writers who each read the one before.

Services read the configuration through ``LiveConfig``, which stands in for a ``PlatformConfig`` and answers
from the version applied at that moment: a handler that reads ``config.agent(...)`` per message sees a
switched model on the next message. What a service builds once from the configuration (adapters per
channel, jobs in the scheduler's table) is rebuilt by the hooks it registers with ``on_change``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, cast

import orjson
import structlog

from agentbus import metrics
from agentbus.config import ConfigError, PlatformConfig, parse_config
from agentbus.events import ConfigChanged, ConfigChangedData, utcnow
from agentbus.settings import Settings
from agentbus.topics import config_topic

if TYPE_CHECKING:
    from agentbus.bus import Producer
    from agentbus.eventlog import Logged

log = structlog.get_logger("agentbus.config")
KEY = "_platform/config"
Hook = Callable[[PlatformConfig, PlatformConfig], Awaitable[None]]
Check = Callable[[PlatformConfig], list[str]]


def digest(document: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(document, option=orjson.OPT_SORT_KEYS)).hexdigest()


@dataclass
class Applied:
    version: int
    document: dict[str, Any]
    digest: str
    at: datetime | None = None
    actor: str = ""


@dataclass
class LiveConfig:
    """The configuration this replica runs with now; attribute access answers from the applied version."""

    _current: PlatformConfig
    _applied: Applied
    _hooks: list[Hook] = field(default_factory=list)
    _checks: list[Check] = field(default_factory=list)

    def __getattr__(self, name: str) -> Any:  # only called for what the dataclass does not have itself
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._current, name)

    @property
    def current(self) -> PlatformConfig:
        return self._current

    @property
    def applied(self) -> Applied:
        return self._applied

    @property
    def version(self) -> int:
        return self._applied.version

    def as_config(self) -> PlatformConfig:
        """This object typed as what services take: every read goes to the version applied at that moment."""
        return cast(PlatformConfig, self)

    def on_change(self, hook: Hook) -> None:
        """``hook(old, new)`` runs after a new version is applied (rebuild what was built from the old one)."""
        self._hooks.append(hook)

    def check(self, check: Check) -> None:
        """``check(new)`` lists why this service cannot run a version (it then keeps the one it has)."""
        self._checks.append(check)

    def problems(self, config: PlatformConfig) -> list[str]:
        return [p for c in self._checks for p in c(config)]

    async def apply(self, event: ConfigChanged) -> bool:
        """Apply ``event`` if it is not older than the version applied; False when stale or refused."""
        d = event.data
        if d.version < self._applied.version:
            return False
        if d.digest == self._applied.digest:  # the same document again (two services seeding at once)
            if d.version > self._applied.version:
                self._applied = Applied(d.version, d.document, d.digest, d.at, d.actor)
                metrics.CONFIG_VERSION.set(d.version)
            return False
        try:
            new = parse_config(d.document, source=f"configuration version {d.version}")
        except ConfigError as err:
            log.error("config_not_applied", version=d.version, error=str(err)[:1000])
            metrics.CONFIG_REFUSED.inc()
            return False
        if problems := self.problems(new):
            log.error("config_not_applied", version=d.version, error="; ".join(problems)[:1000])
            metrics.CONFIG_REFUSED.inc()
            return False
        old, self._current = self._current, new
        self._applied = Applied(d.version, d.document, d.digest, d.at, d.actor)
        metrics.CONFIG_VERSION.set(d.version)
        log.info("config_applied", version=d.version, actor=d.actor, reason=d.reason, changes=d.changes[:20])
        for hook in self._hooks:
            try:
                await hook(old, new)
            except Exception as exc:  # the new version is applied; what the hook rebuilds stays as it was
                log.error("config_hook_failed", version=d.version, error=f"{type(exc).__name__}: {exc}"[:500])
                metrics.CONFIG_REFUSED.inc()
        return True


def changed_event(document: dict[str, Any], version: int, *, actor: str, reason: str, changes: list[str],
                  source: str) -> ConfigChanged:
    data = ConfigChangedData.model_validate({
        "version": version, "document": document, "digest": digest(document), "actor": actor, "reason": reason,
        "changes": changes, "at": utcnow(),
    })
    return ConfigChanged.new(data, source=source, tenant="_platform", conversation=KEY)


async def read_log(settings: Settings) -> tuple[ConfigChanged | None, dict[Any, int]]:
    """The event a replica that reads the whole topic ends at, and where to follow on from."""
    from aiokafka.structs import TopicPartition

    from agentbus.eventlog import read

    topic = config_topic(settings.topic_prefix)
    logged = await read(settings, [topic], keep=lambda e: isinstance(e, ConfigChanged))
    latest: ConfigChanged | None = None
    start: dict[Any, int] = {}
    for item in sorted(logged, key=lambda x: (x.partition, x.offset)):
        start[TopicPartition(item.topic, item.partition)] = item.offset + 1
    for item in sorted(logged, key=lambda x: x.offset):
        event = cast(ConfigChanged, item.event)
        if latest is None or event.data.version >= latest.data.version:
            latest = event
    return latest, start


async def start_live_config(settings: Settings, service: str, seed: dict[str, Any], seed_config: PlatformConfig,
                            producer: Producer) -> tuple[LiveConfig, dict[Any, int]]:
    """The configuration to start with: the topic's newest version, or the file's, published as version 1."""
    latest, start = await read_log(settings)
    if latest is None:
        event = changed_event(seed, 1, actor=f"{service}:file", reason="seed", changes=["seeded from the file"],
                              source=service)
        await producer.publish([event])
        log.info("config_seeded", version=1, digest=event.data.digest[:12])
        latest = event
        live = LiveConfig(seed_config, Applied(1, seed, event.data.digest, event.data.at, event.data.actor))
    else:
        d = latest.data
        try:
            config = parse_config(d.document, source=f"configuration version {d.version}")
        except ConfigError as err:
            raise ConfigError(f"the platform's configuration (version {d.version}) does not apply here: {err}") \
                from None
        live = LiveConfig(config, Applied(d.version, d.document, d.digest, d.at, d.actor))
        if digest(seed) != d.digest:
            log.warning("config_file_differs", version=d.version, actor=d.actor,
                        hint="the running configuration wins; `agentbus config apply FILE` publishes the file")
    metrics.CONFIG_VERSION.set(live.version)
    return live, start


async def follow_config(settings: Settings, live: LiveConfig, start: dict[Any, int]) -> None:
    """Apply every new version as it is published (a background task of every service); a broker that goes
    away is waited for, and following resumes after the last record read."""
    from aiokafka.structs import TopicPartition

    from agentbus.eventlog import follow

    topic = config_topic(settings.topic_prefix)
    position = dict(start)
    item: Logged
    while True:
        try:
            async for item in follow(settings, [topic], keep=lambda e: isinstance(e, ConfigChanged),
                                     start=position, from_beginning=True):
                position[TopicPartition(item.topic, item.partition)] = item.offset + 1
                await live.apply(cast(ConfigChanged, item.event))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the broker is away: the running version stays; follow again shortly
            log.warning("config_follow_failed", error=f"{type(exc).__name__}: {exc}"[:300])
            await asyncio.sleep(2.0)


async def wait_for_version(live: LiveConfig, version: int, timeout_s: float = 15.0) -> bool:
    """Whether this replica has applied ``version`` (or a newer one) within ``timeout_s``."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    while live.version < version:
        if asyncio.get_running_loop().time() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


def channel_changes(old: PlatformConfig, new: PlatformConfig) -> tuple[list[Any], list[str]]:
    """The channels added or changed from ``old`` to ``new``, and the ids of those removed."""
    before = {c.id: c for c in old.channels}
    changed = [c for c in new.channels if before.get(c.id) != c]
    removed = [cid for cid in before if new.channel(cid) is None]
    return changed, removed


def live_of(config: object) -> LiveConfig | None:
    """The live configuration behind what a bootstrap was given (None for a plain one, as in unit tests)."""
    return config if isinstance(config, LiveConfig) else None
