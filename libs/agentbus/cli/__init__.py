"""The ``agentbus`` command: run the stack, run one service, send a signed message, export schemas, jobs,
operator API tokens, the audit log, the running configuration, forgetting a person, and the tenants' knowledge bases."""

from __future__ import annotations

import typer

from agentbus.cli.admin import register as register_admin
from agentbus.cli.audit import register as register_audit
from agentbus.cli.configcmd import register as register_config
from agentbus.cli.dlq import register as register_dlq
from agentbus.cli.forget import register as register_forget
from agentbus.cli.jobs import register as register_jobs
from agentbus.cli.knowledge import register as register_knowledge
from agentbus.cli.observe import register as register_observe
from agentbus.cli.stackcmds import register as register_stack
from agentbus.cli.tokens import register as register_tokens
from agentbus.cli.tools import register as register_tools

app = typer.Typer(no_args_is_help=True, add_completion=False, help="agentbus: event-sourced AI agents for chat.")
register_stack(app)
register_tools(app)
register_admin(app)
register_dlq(app)
register_observe(app)
register_jobs(app)
register_tokens(app)
register_audit(app)
register_config(app)
register_forget(app)
register_knowledge(app)


def main() -> None:
    app()
