"""The start-up check of secure defaults: outside the embedded development stack (``agentbus up``, which sets
``AGENTBUS_DEV_MODE``), a service refuses to start while a credential of its configuration is the ``default:``
of its ``{env: NAME, default: ...}`` reference, or one of the demo secrets this repository publishes.

A default exists so that ``make up`` runs with no setup; the same file deployed as it is would put secrets
that anyone can read on GitHub in front of the internet. The check names every key, so one run says all
that has to be set.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from agentbus.channeltypes import EnvRef
from agentbus.config import PlatformConfig, _env_refs
from agentbus.settings import Settings

# the webhook secrets of infra/agentbus.yaml and the README, and compose's default database password
DEMO_SECRETS = frozenset({
    "whsec_ZGVtby1vbmx5LXNlY3JldC1jaGFuZ2UtbWUtcGxlYXNl",
    "whsec_b3RoZXItZGVtby1zZWNyZXQtY2hhbmdlLW1lLXBsZWFzZQ==",
    "agentbus",
    "unset",
})
_SECRET_SETTINGS = ("kafka_sasl_password", "qdrant_api_key", "embeddings_api_key", "llm_api_key")


class InsecureConfiguration(Exception):
    """Credentials a deployment must not run with; the message names each key."""


def _ref_problem(key: str, ref: EnvRef) -> str | None:
    given = os.environ.get(ref.env)
    if ref.default is not None and (given is None or given == ref.default):
        return f"{key}: is the default: value of its reference (set the environment variable {ref.env})"
    if given is not None and given in DEMO_SECRETS:
        return f"{key}: environment variable {ref.env} holds a published demo secret"
    return None


def insecure_credentials(config: PlatformConfig, settings: Settings) -> list[str]:
    """Every credential of ``config`` and ``settings`` that is a default or a published demo secret."""
    problems = []
    for name in type(config).model_fields:
        for key, ref in _env_refs(getattr(config, name), name):
            problem = _ref_problem(key, ref)
            if problem:
                problems.append(problem)
    for field in _SECRET_SETTINGS:
        secret = getattr(settings, field)
        if secret is not None and secret.get_secret_value() in DEMO_SECRETS:
            problems.append(f"AGENTBUS_{field.upper()}: is a published demo secret")
    password = urlsplit(settings.database_url).password
    if password is not None and password in DEMO_SECRETS:
        problems.append("AGENTBUS_DATABASE_URL: its password is a published demo secret")
    return problems


def check_secure_defaults(config: PlatformConfig, settings: Settings, source: str) -> None:
    """Raise ``InsecureConfiguration`` naming the keys, unless this is the development stack."""
    if settings.dev_mode:
        return
    problems = insecure_credentials(config, settings)
    if problems:
        lines = "\n".join(f"  {p}" for p in problems)
        raise InsecureConfiguration(
            f"{source}: refusing to start with demo or default credentials (AGENTBUS_ENVIRONMENT="
            f"{settings.environment}; only `agentbus up` allows them):\n{lines}")
