"""The operator API's OpenAPI document without a running ingress: the app built on ports that are never
called (``agentbus schemas`` writes it to ``schemas/openapi.json``; a test compares the two)."""

from __future__ import annotations

from typing import Any, cast

from agentbus.config import PlatformConfig
from agentbus.services.ingress.api.app import ApiDeps, operator_api


def document() -> dict[str, Any]:
    config = PlatformConfig(tenants=(), agents=())
    unused = cast(Any, None)
    app = operator_api(ApiDeps(config=config, tokens=unused, audit=unused, jobs=unused, publisher=unused))
    return app.openapi()
