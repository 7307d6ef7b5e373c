"""The operator API's resource groups: a new group is a module with a ``router``, listed here."""

from __future__ import annotations

from fastapi import APIRouter

from agentbus.services.ingress.api.audit_routes import router as audit
from agentbus.services.ingress.api.auth_routes import router as auth
from agentbus.services.ingress.api.channel_routes import router as channel_states
from agentbus.services.ingress.api.config_routes import router as config
from agentbus.services.ingress.api.config_write_routes import router as config_writes
from agentbus.services.ingress.api.deadletter_routes import router as dead_letters
from agentbus.services.ingress.api.erasure_routes import router as erasures
from agentbus.services.ingress.api.history_routes import router as history
from agentbus.services.ingress.api.job_routes import router as jobs
from agentbus.services.ingress.api.knowledge_routes import router as knowledge
from agentbus.services.ingress.api.memory_routes import router as memories
from agentbus.services.ingress.api.replay_routes import router as replays
from agentbus.services.ingress.api.token_routes import router as tokens
from agentbus.services.ingress.api.usage_routes import router as usage

ROUTERS: tuple[APIRouter, ...] = (config, config_writes, channel_states, jobs, history, memories, usage, dead_letters,
                                  replays, tokens, audit, auth, erasures, knowledge)
