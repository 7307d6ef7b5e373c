"""The operator API's OpenAPI document: served by the app, committed as schemas/openapi.json."""

from __future__ import annotations

import json
from pathlib import Path

from agentbus.schemas import openapi_document
from tests.unit.fakes_api import served_api

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"


def test_the_committed_document_is_the_apps() -> None:
    committed = json.loads((SCHEMAS / "openapi.json").read_text(encoding="utf-8"))
    assert committed == json.loads(json.dumps(openapi_document())), "run `agentbus schemas` and commit the result"


async def test_the_document_is_served_and_describes_the_bearer_scheme_and_errors() -> None:
    async with served_api() as api:
        resp = await api.client.get(api.url + "/openapi.json")
        assert resp.status_code == 200
        doc = resp.json()
        assert doc["servers"] == [{"url": "/api/v1"}]
        assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
        create = doc["paths"]["/tenants/{tenant}/jobs"]["post"]
        assert {"202", "401", "403", "404", "422"} <= set(create["responses"])
        assert create["security"] == [{"HTTPBearer": []}]
