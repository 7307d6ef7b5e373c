"""``agentbus tokens create`` refuses what cannot be a token before it opens the database (exit code 2)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from agentbus.cli import app


@pytest.mark.parametrize(("args", "reason"), [
    (["--name", "x"], "either --owner or --tenant"),
    (["--name", "x", "--owner", "--tenant", "acme"], "either --owner or --tenant"),
    (["--name", "x", "--owner", "--role", "admin"], "an owner token has no tenant role"),
    (["--name", "x", "--tenant", "acme", "--role", "owner"], "role: one of admin, operator, viewer"),
    (["--name", "x", "--tenant", "acme"], "role: one of admin, operator, viewer"),
    (["--name", "x", "--tenant", "Not A Tenant", "--role", "viewer"], "is not a tenant id"),
    (["--name", "x", "--tenant", "nobody", "--role", "viewer"], "unknown tenant 'nobody'"),
    (["--name", "a\tb", "--owner"], "printable"),
])
def test_bad_token_requests_are_refused(args: list[str], reason: str, tmp_path: Path) -> None:
    cfg = tmp_path / "agentbus.yaml"
    cfg.write_text("tenants: [{id: acme}]\nagents: [{id: a}]\n", encoding="utf-8")
    # an unreachable database: a refusal must come before any connection is tried
    env = {"AGENTBUS_CONFIG_FILE": str(cfg), "AGENTBUS_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    result = CliRunner().invoke(app, ["tokens", "create", *args], env=env)
    assert result.exit_code == 2, result.output
    assert reason in result.output
