"""LiveConfig's rules for applying a version, and the change list an operator reads before applying one."""

from __future__ import annotations

from typing import Any

import pytest

from agentbus import metrics
from agentbus.config import PlatformConfig, parse_config
from agentbus.configdiff import changes
from agentbus.liveconfig import Applied, LiveConfig, changed_event, channel_changes, digest, live_of


def doc(model: str = "echo", **extra: Any) -> dict[str, Any]:
    return {"tenants": [{"id": "acme"}], "agents": [{"id": "assistant", "model": model}],
            "models": [{"name": "fast", "base_url": "http://127.0.0.1:9/v1", "model": "m"}], **extra}


def live(d: dict[str, Any], version: int = 1) -> LiveConfig:
    return LiveConfig(parse_config(d), Applied(version, d, digest(d)))


def event(d: dict[str, Any], version: int) -> Any:
    return changed_event(d, version, actor="cli", reason="apply", changes=[], source="test")


async def test_a_newer_version_is_applied_and_read_through_an_older_one_is_not() -> None:
    cfg = live(doc())
    view: PlatformConfig = cfg.as_config()
    assert view.agent("assistant").model == "echo"  # type: ignore[union-attr]
    assert await cfg.apply(event(doc("fast"), 2))
    assert view.agent("assistant").model == "fast"  # type: ignore[union-attr]  # the same object, now v2
    assert not await cfg.apply(event(doc("echo"), 1))  # stale
    assert cfg.version == 2 and view.agent("assistant").model == "fast"  # type: ignore[union-attr]
    assert live_of(view) is cfg and live_of(parse_config(doc())) is None


async def test_an_equal_version_from_a_racing_writer_wins_as_it_would_after_compaction() -> None:
    cfg = live(doc(), version=3)
    assert await cfg.apply(event(doc("fast"), 3))
    assert cfg.agent("assistant").model == "fast"


async def test_a_version_this_replica_cannot_run_is_refused_and_the_old_one_kept() -> None:
    cfg = live(doc())
    cfg.check(lambda new: [f"agents[0].model: {new.agents[0].model} is not allowed here"]
              if new.agents[0].model == "fast" else [])
    before = metrics.CONFIG_REFUSED._value.get()
    assert not await cfg.apply(event(doc("fast"), 2))
    assert not await cfg.apply(event(doc("nope"), 3))  # does not validate at all
    assert cfg.version == 1 and cfg.agent("assistant").model == "echo"
    assert metrics.CONFIG_REFUSED._value.get() == before + 2


async def test_a_failing_hook_does_not_undo_the_version_and_later_hooks_still_run() -> None:
    cfg = live(doc())
    ran: list[str] = []

    async def broken(old: PlatformConfig, new: PlatformConfig) -> None:
        raise RuntimeError("adapter could not be built")

    async def fine(old: PlatformConfig, new: PlatformConfig) -> None:
        ran.append(new.agents[0].model)

    cfg.on_change(broken)
    cfg.on_change(fine)
    assert await cfg.apply(event(doc("fast"), 2))
    assert ran == ["fast"] and cfg.version == 2


async def test_the_same_document_again_moves_the_version_without_running_hooks() -> None:
    cfg = live(doc())
    ran: list[int] = []

    async def hook(old: PlatformConfig, new: PlatformConfig) -> None:
        ran.append(1)

    cfg.on_change(hook)
    assert not await cfg.apply(event(doc(), 2))
    assert cfg.version == 2 and ran == []


def test_changes_are_named_per_entity_and_ignore_order() -> None:
    old = doc(channels=[{"id": "a", "type": "webhook", "tenant": "acme", "agent": "assistant",
                         "secret": {"env": "A"}}], jobs=[])
    new = doc("fast", channels=[], jobs=[{"id": "standup", "channel": "a", "chat": "t", "prompt": "p",
                                          "every_s": 60}])
    new["tenants"] = [{"id": "acme", "quotas": {"messages_per_minute": 5}}, {"id": "globex"}]
    assert changes(old, new) == [
        "~ agents.assistant.model: 'echo' → 'fast'",
        "- channels.a",
        "+ jobs.standup",
        "~ tenants.acme.quotas: set to {\"messages_per_minute\":5}",
        "+ tenants.globex",
    ]
    reordered = {**old, "tenants": list(reversed(old["tenants"]))}
    assert changes(old, reordered) == []


def test_long_values_are_cut_in_the_change_list() -> None:
    [line] = changes(doc(), {**doc(), "agents": [{"id": "assistant", "model": "echo", "system_prompt": "x" * 500}]})
    assert line.startswith("~ agents.assistant.system_prompt: set to 'xxx") and len(line) < 140


def test_channel_changes_lists_added_changed_and_removed() -> None:
    base = {"id": "a", "type": "webhook", "tenant": "acme", "agent": "assistant",
            "secret": {"env": "LIVE_CONFIG_UNIT_SECRET", "default": "for-tests"}}
    old = parse_config(doc(channels=[base, {**base, "id": "b"}]))
    new = parse_config(doc(channels=[{**base, "refusal_text": "no"}, {**base, "id": "c"}]))
    changed, removed = channel_changes(old, new)
    assert sorted(c.id for c in changed) == ["a", "c"] and removed == ["b"]


@pytest.mark.parametrize("name", ["_current", "_private"])
def test_private_names_are_not_forwarded(name: str) -> None:
    cfg = live(doc())
    if name == "_private":
        with pytest.raises(AttributeError):
            getattr(cfg, name)
    else:
        assert isinstance(getattr(cfg, name), PlatformConfig)
