"""Retention settings: the pruning horizon derived from the redelivery window, and bad values refused."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from agentbus.config import ConfigError, parse_config
from agentbus.retention import horizon_days, redelivery_window_days, tenant_days
from agentbus.settings import Settings

SAMPLE = Path(__file__).parents[2] / "infra" / "agentbus.yaml"
DAY_MS = 86_400_000


def test_the_horizon_is_twice_the_longest_redelivery_window() -> None:
    assert redelivery_window_days(None) == 7.0  # Kafka's default retention.ms
    assert horizon_days(Settings()) == 14.0
    assert horizon_days(Settings(topic_retention_ms=14 * DAY_MS)) == 28.0
    # topics that keep a few hours: a platform's retries (two days, with room) are then the longest window
    assert horizon_days(Settings(topic_retention_ms=3_600_000)) == 4.0
    assert horizon_days(Settings(topic_retention_ms=-1)) is None  # topics keep records forever: so do we
    assert horizon_days(Settings(prune_horizon_days=9)) == 9


def test_the_topics_retention_is_read_from_the_variable_agentbus_init_takes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTBUS_TOPIC_RETENTION_MS", str(30 * DAY_MS))
    assert horizon_days(Settings()) == 60.0


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"prune_horizon_days": 3}, r"prune_horizon_days \(3\) is shorter than the longest redelivery window \(7 days"),
        ({"prune_horizon_days": 20, "topic_retention_ms": 30 * DAY_MS}, r"shorter than .* \(30 days"),
        ({"prune_horizon_days": 30, "topic_retention_ms": -1}, "topic_retention_ms is -1"),
        ({"prune_horizon_days": 0}, "prune_horizon_days"),
        ({"retention_turns_days": -1}, "retention_turns_days"),
        ({"retention_batch": 0}, "retention_batch"),
        ({"retention_interval_s": 0}, "retention_interval_s"),
        ({"topic_retention_ms": -2}, "topic_retention_ms"),
    ],
)
def test_bad_retention_settings_are_refused_naming_the_setting(values: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(**values)


def sample() -> dict:
    return yaml.safe_load(SAMPLE.read_text())


def test_a_tenant_names_its_own_retention_and_inherits_the_rest() -> None:
    raw = sample()
    raw["tenants"][0]["retention"] = {"turns_days": 90, "deliveries_days": 0}
    cfg = parse_config(raw)
    first, second = raw["tenants"][0]["id"], raw["tenants"][1]["id"]
    settings = Settings(retention_turns_days=30, retention_deliveries_days=60)
    assert tenant_days(cfg, settings, "turns") == (30, {first: 90})
    assert tenant_days(cfg, settings, "deliveries") == (60, {first: 0})
    assert tenant_days(cfg, settings, "ledger") == (0, {})
    assert second not in tenant_days(cfg, settings, "turns")[1]


@pytest.mark.parametrize(
    ("retention", "key"),
    [
        ({"turns_days": -3}, "tenants[0].retention.turns_days: Input should be greater than or equal to 0"),
        ({"ledger_days": "a month"}, "tenants[0].retention.ledger_days"),
        ({"turn_days": 3}, "tenants[0].retention.turn_days: Extra inputs are not permitted"),
        ({"deliveries_days": 100_000}, "tenants[0].retention.deliveries_days"),
    ],
)
def test_a_bad_tenant_retention_is_refused_naming_the_key(retention: dict, key: str) -> None:
    raw = sample()
    raw["tenants"][0]["retention"] = retention
    with pytest.raises(ConfigError) as err:
        parse_config(raw)
    assert key in str(err.value)


def test_a_service_with_an_unsafe_horizon_refuses_to_start_saying_why(monkeypatch: pytest.MonkeyPatch,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    from agentbus.service import run

    monkeypatch.setenv("AGENTBUS_PRUNE_HORIZON_DAYS", "3")
    with pytest.raises(SystemExit) as exit_:
        run("memory")
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "agentbus memory: invalid settings" in err and "prune_horizon_days (3) is shorter" in err
