"""The chart's Ingress routes only the public parts of ingress: webhooks, the chat API, the operator API, the
web console.

Each rendered rule is matched against request paths as Kubernetes defines Prefix (element-wise) and Exact
matching, so the test says what the internet can reach, not only which strings the values hold.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.k8s.helpers import PRODUCTION, Helm, by_kind

PUBLIC = ("/v1/webhooks/acme-hook", "/v1/chat/completions", "/api/v1/me", "/api/v1/auth/login/feishu",
          "/api/v1/openapi.json", "/api/v1", "/console", "/console/live", "/console/static/htmx.min.js")
INTERNAL = ("/", "/metrics", "/readyz", "/healthz", "/v1/channels", "/v1/jobs", "/v1/jobs/acme",
            "/v1/deliveries", "/v1/chat/completionsx", "/api/v10", "/v1/webhooksx", "/admin", "/consolex")


def matches(rule: dict[str, Any], path: str) -> bool:
    want = rule["path"]
    if rule["pathType"] == "Exact":
        return path == want
    assert rule["pathType"] == "Prefix", rule
    prefix = [p for p in want.split("/") if p]
    return [p for p in path.split("/") if p][:len(prefix)] == prefix


def reachable(docs: list[dict[str, Any]], path: str) -> bool:
    rules = [p for ing in by_kind(docs, "Ingress") for r in ing["spec"]["rules"] for p in r["http"]["paths"]]
    assert rules, "no Ingress rendered"
    return any(matches(rule, path) for rule in rules)


@pytest.mark.parametrize("values", ["default", "production"])
def test_only_webhooks_the_chat_api_and_the_operator_api_are_exposed(helm: Helm, values: str) -> None:
    docs = helm.render(values={"ingress": {"enabled": True}}) if values == "default" else helm.render(PRODUCTION)
    for path in PUBLIC:
        assert reachable(docs, path), f"{path} is not routed"
    for path in INTERNAL:
        assert not reachable(docs, path), f"{path} is reachable through the Ingress"
