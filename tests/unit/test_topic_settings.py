"""What the settings put on the topics the platform creates: min.insync.replicas when set (the broker's
default otherwise), never more than the replicas there are."""

from __future__ import annotations

import pytest

from agentbus.bus.kafka import create_topics, settings_topic_configs
from agentbus.settings import Settings


def test_min_insync_replicas_from_the_settings_or_the_brokers_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AGENTBUS_TOPIC_MIN_INSYNC_REPLICAS", raising=False)
    assert settings_topic_configs(Settings()) == {}
    monkeypatch.setenv("AGENTBUS_TOPIC_MIN_INSYNC_REPLICAS", "2")
    monkeypatch.setenv("AGENTBUS_TOPIC_REPLICATION_FACTOR", "3")
    s = Settings()
    assert (s.topic_replication_factor, settings_topic_configs(s)) == (3, {"min.insync.replicas": "2"})


async def test_more_in_sync_replicas_than_replicas_is_refused_before_the_broker_is_asked() -> None:
    # nothing listens on port 9 (discard): had the check not come first, this would fail to connect instead
    s = Settings(kafka_bootstrap_servers="127.0.0.1:9", topic_replication_factor=1, topic_min_insync_replicas=2)
    with pytest.raises(ValueError, match="min.insync.replicas 2 is more than the replication factor 1"):
        await create_topics(s, ["t.a.v1"])
    with pytest.raises(ValueError, match="min.insync.replicas 3 is more than the replication factor 2"):
        await create_topics(s, ["t.a.v1"], replication_factor=2, configs={"min.insync.replicas": "3"})
