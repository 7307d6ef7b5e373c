"""Secure defaults: outside the development stack a service refuses `default:` credentials and the published
demo secrets, naming each key; `agentbus up` (and so every test platform) runs with AGENTBUS_DEV_MODE."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from agentbus.config import load_config, parse_config
from agentbus.security import InsecureConfiguration, check_secure_defaults, insecure_credentials
from agentbus.settings import Settings
from agentbus.stack.stack import Stack

ROOT = Path(__file__).resolve().parents[2]


def platform(secret_env: str = "AGENTBUS_TEST_HOOK_SECRET") -> dict[str, object]:
    return {
        "tenants": [{"id": "acme"}], "agents": [{"id": "a", "model": "m"}],
        "models": [{"name": "m", "base_url": "https://llm.example.com/v1", "model": "x",
                    "api_key": {"env": "AGENTBUS_TEST_LLM_KEY", "default": "sk-local"}}],
        "channels": [{"id": "hook", "type": "webhook", "tenant": "acme", "agent": "a",
                      "secret": {"env": secret_env, "default": "whsec_c2VjcmV0LWFjbWU="}}],
        "http_tools": [{"name": "tickets", "description": "d", "url": "https://t.example.com",
                        "headers": {"Authorization": {"env": "AGENTBUS_TEST_TICKETS", "default": "Bearer x"}}}],
    }


def test_every_default_credential_is_named_and_only_the_development_stack_may_use_them(
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AGENTBUS_TEST_HOOK_SECRET", "AGENTBUS_TEST_LLM_KEY", "AGENTBUS_TEST_TICKETS"):
        monkeypatch.delenv(name, raising=False)
    cfg = parse_config(platform())
    problems = insecure_credentials(cfg, Settings())
    assert [p.split(":")[0] for p in problems] == [
        "models[0].api_key", "channels[0].secret", "http_tools[0].headers.Authorization"]
    assert "set the environment variable AGENTBUS_TEST_HOOK_SECRET" in problems[1]
    with pytest.raises(InsecureConfiguration) as err:
        check_secure_defaults(cfg, Settings(environment="production"), "agentbus.yaml")
    assert "channels[0].secret" in str(err.value) and "AGENTBUS_ENVIRONMENT=production" in str(err.value)
    check_secure_defaults(cfg, Settings(dev_mode=True), "agentbus.yaml")  # agentbus up: allowed

    monkeypatch.setenv("AGENTBUS_TEST_HOOK_SECRET", "whsec_c2VjcmV0LWFjbWU=")  # set, but to the default itself
    monkeypatch.setenv("AGENTBUS_TEST_LLM_KEY", "sk-real-key-from-a-vault")
    monkeypatch.setenv("AGENTBUS_TEST_TICKETS", "Bearer real")
    assert [p.split(":")[0] for p in insecure_credentials(cfg, Settings())] == ["channels[0].secret"]
    monkeypatch.setenv("AGENTBUS_TEST_HOOK_SECRET", "whsec_ZGVtby1vbmx5LXNlY3JldC1jaGFuZ2UtbWUtcGxlYXNl")
    [problem] = insecure_credentials(cfg, Settings())
    assert "published demo secret" in problem
    monkeypatch.setenv("AGENTBUS_TEST_HOOK_SECRET", "whsec_" + "cmVhbC1zZWNyZXQtZnJvbS1hLXZhdWx0")
    assert insecure_credentials(cfg, Settings()) == []
    check_secure_defaults(cfg, Settings(environment="production"), "agentbus.yaml")


def test_settings_credentials_that_are_published_demo_values_are_refused() -> None:
    cfg = parse_config({"tenants": [{"id": "acme"}], "agents": [{"id": "a"}]})
    settings = Settings(database_url="postgresql://agentbus:agentbus@postgres:5432/agentbus", llm_api_key="unset")
    assert insecure_credentials(cfg, settings) == [
        "AGENTBUS_LLM_API_KEY: is a published demo secret",
        "AGENTBUS_DATABASE_URL: its password is a published demo secret"]
    assert insecure_credentials(cfg, Settings(database_url="postgresql://postgres@127.0.0.1:5432/postgres")) == []


def test_the_sample_configuration_runs_only_on_the_development_stack(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("AGENTBUS_DEMO_WEBHOOK_SECRET", "AGENTBUS_OTHER_WEBHOOK_SECRET", "DASHSCOPE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    cfg = load_config(ROOT / "infra" / "agentbus.yaml")
    keys = {p.split(":")[0] for p in insecure_credentials(cfg, Settings())}
    assert {"channels[0].secret", "channels[1].secret", "models[0].api_key"} <= keys
    stack = Stack(home=Path("/nonexistent"), config_file=ROOT / "infra" / "agentbus.yaml")
    assert stack.service_proc("ingress").env["AGENTBUS_DEV_MODE"] == "true"
    assert Stack(home=Path("/x"), config_file=Path("a.yaml"), env={"AGENTBUS_DEV_MODE": "false"}
                 ).service_proc("egress").env["AGENTBUS_DEV_MODE"] == "false"


async def test_a_service_started_outside_the_development_stack_refuses_and_names_the_keys() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTBUS_") and k != "DASHSCOPE_API_KEY"}
    env.update({"AGENTBUS_CONFIG_FILE": str(ROOT / "infra" / "agentbus.yaml"), "AGENTBUS_ENVIRONMENT": "staging",
                "AGENTBUS_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1"})  # refused before it connects anywhere
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "agentbus.cli", "run", "ingress", env=env,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 2, err.decode()[-2000:]
    text = err.decode()
    assert "refusing to start with demo or default credentials" in text
    assert "channels[0].secret" in text and "AGENTBUS_DEMO_WEBHOOK_SECRET" in text
