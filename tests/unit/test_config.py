from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from agentbus.config import ConfigError, load_config, parse_config

SAMPLE = Path(__file__).parents[2] / "infra" / "agentbus.yaml"


def sample() -> dict:
    return yaml.safe_load(SAMPLE.read_text())


def test_sample_config_loads() -> None:
    cfg = load_config(SAMPLE)
    assert cfg.channel("demo") is not None and cfg.channel("demo").type == "webhook"
    assert cfg.agent("assistant").fallback_models == ("echo",)


@pytest.mark.parametrize(
    ("mutate", "key"),
    [
        (lambda c: c["channels"][0].update(tenant="nobody"), "channels[0].tenant: unknown tenant 'nobody'"),
        (lambda c: c["channels"][1].update(agent="ghost"), "channels[1].agent: unknown agent 'ghost'"),
        (lambda c: c["agents"][0].update(model="gpt-9"), "agents[0].model: unknown model 'gpt-9'"),
        (lambda c: c["channels"][0].update(type="fax"), "channels[0]"),
        (lambda c: c["channels"][0].pop("secret"), "channels[0].secret"),
        (lambda c: c["jobs"][0].update(cron="every tuesday"), "jobs[0]"),
        (lambda c: c["jobs"][0].update(channel="nope"), "jobs[0].channel: unknown channel 'nope'"),
        (lambda c: c["jobs"][0].update(timezone="Mars/Base"), "jobs[0].timezone: unknown time zone 'Mars/Base'"),
        (lambda c: c["jobs"][0].update(cron=None, at="not-a-date"),
         "jobs[0].at: not an ISO-8601 date and time: 'not-a-date'"),
        (lambda c: c["jobs"][0].update(cron="0 0 31 2 *"), "jobs[0].cron: cron expression '0 0 31 2 *' never matches"),
        (lambda c: c["jobs"][0].update(cron=None, every_s=0), "jobs[0].every_s"),
        (lambda c: c["jobs"][0].update(cron=None, every_s=float("inf")), "jobs[0].every_s: the period must be"),
        (lambda c: c["agents"][0]["memory"].update(history_turns=-1), "agents[0].memory.history_turns"),
        (lambda c: c["tenants"].append({"id": "demo"}), "tenants[2].id: duplicate id 'demo'"),
        (lambda c: c.update(surprise=1), "surprise"),
    ],
)
def test_config_errors_name_the_key(mutate, key: str) -> None:
    c = sample()
    mutate(c)
    with pytest.raises(ConfigError) as err:
        parse_config(c, "agentbus.yaml")
    assert key in str(err.value)


def test_an_unquoted_yaml_timestamp_is_an_at_schedule() -> None:
    c = yaml.safe_load(SAMPLE.read_text().replace('cron: "0 9 * * 1-5"', "at: 2026-05-01T09:00:00"))
    assert parse_config(c).jobs[0].at == "2026-05-01T09:00:00"


def test_missing_env_credential_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    c = sample()
    c["channels"][0]["secret"] = {"env": "AGENTBUS_TEST_UNSET_SECRET"}
    monkeypatch.delenv("AGENTBUS_TEST_UNSET_SECRET", raising=False)
    with pytest.raises(ConfigError, match=r"channels\[0\]\.secret: environment variable AGENTBUS_TEST_UNSET_SECRET"):
        parse_config(c)


def test_env_credential_overrides_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTBUS_DEMO_WEBHOOK_SECRET", "whsec_b3ZlcnJpZGRlbg==")
    cfg = parse_config(sample())
    assert cfg.channel("demo").secret.value() == "whsec_b3ZlcnJpZGRlbg=="


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "none.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("tenants: [unclosed")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_nested_credentials_are_checked_with_their_key(monkeypatch: pytest.MonkeyPatch) -> None:
    from agentbus.channeltypes import EnvRef
    from agentbus.config import _env_refs

    monkeypatch.delenv("AGENTBUS_TEST_NESTED", raising=False)
    refs = _env_refs({"robots": [{"secret": EnvRef(env="AGENTBUS_TEST_NESTED")}]}, "channels[3]")
    assert [(k, r.env) for k, r in refs] == [("channels[3].robots[0].secret", "AGENTBUS_TEST_NESTED")]
