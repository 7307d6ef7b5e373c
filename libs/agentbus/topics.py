"""Topic names: ``<prefix>.<type>.v<version>``, keyed by conversation so one conversation stays in order."""

from __future__ import annotations

from agentbus.events import CATALOGUE, Event


def topic_for(prefix: str, event_type: str, version: int = 1) -> str:
    return f"{prefix}.{event_type}.v{version}"


def topic_of(prefix: str, event: Event | type[Event]) -> str:
    return topic_for(prefix, event.TYPE, event.VERSION)


CONFIG = ("config.changed", 1)  # one partition, compacted: created by ``ensure_config_topic``


def all_topics(prefix: str) -> list[str]:
    """The event topics created with the settings' partitions (every one but the configuration's)."""
    return sorted(topic_for(prefix, t, v) for (t, v) in CATALOGUE if (t, v) != CONFIG)


def config_topic(prefix: str) -> str:
    return topic_for(prefix, *CONFIG)


def dead_letter_topic(prefix: str) -> str:
    return topic_for(prefix, "dead.lettered", 1)


def topics_of_type(prefix: str, event_type: str) -> list[str]:
    """Every version's topic of ``event_type``: a consumer reads them all and upcasts to the newest."""
    return sorted(topic_for(prefix, t, v) for (t, v) in CATALOGUE if t == event_type)
