"""Wrong values fail `helm template` and `helm lint` with a message that names the key."""

from __future__ import annotations

from typing import Any

import pytest

from tests.k8s.helpers import CHART, Helm

# values.schema.json
SCHEMA_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("replicas-not-a-number", {"services": {"ingress": {"replicas": "two"}}}, "/services/ingress/replicas"),
    ("unknown-service", {"services": {"gateway": {"replicas": 2}}}, "'gateway' not allowed"),
    ("missing-image-repository", {"image": {"repository": None}}, "missing property 'repository'"),
    ("empty-image-repository", {"image": {"repository": ""}}, "/image/repository"),
    ("unknown-top-level-key", {"replica": 3}, "'replica' not allowed"),
    ("unknown-service-key", {"services": {"memory": {"replcas": 3}}}, "'replcas' not allowed"),
    ("negative-replicas", {"services": {"egress": {"replicas": -1}}}, "/services/egress/replicas"),
    ("bad-security-protocol", {"kafka": {"securityProtocol": "TLS"}}, "/kafka/securityProtocol"),
    ("bad-sasl-mechanism", {"kafka": {"sasl": {"mechanism": "SCRAM"}}}, "/kafka/sasl/mechanism"),
    ("zero-partitions", {"init": {"topics": {"partitions": 0}}}, "/init/topics/partitions"),
    ("retention-as-text", {"init": {"topics": {"retentionMs": "7d"}}}, "/init/topics/retentionMs"),
    ("database-url-scheme", {"database": {"url": "mysql://db/agentbus"}}, "/database/url"),
    ("inline-env-without-value", {"extraEnv": [{"name": "X"}]}, "/extraEnv/0"),
    ("lag-metric-without-target", {"services": {"reasoner": {"autoscaling": {"consumerLag": {"metricName": "lag"}}}}},
     "/services/reasoner/autoscaling/consumerLag"),
    ("bad-port", {"services": {"scheduler": {"port": 80}}}, "/services/scheduler/port"),
]

# checks in the templates (combinations a schema cannot express clearly)
TEMPLATE_CASES: list[tuple[str, dict[str, Any], str]] = [
    ("no-database", {"database": {"url": "", "existingSecret": ""}}, "database: set database.existingSecret"),
    ("sasl-without-password", {"kafka": {"securityProtocol": "SASL_SSL",
                                         "sasl": {"mechanism": "SCRAM-SHA-512", "username": "u"}}},
     "kafka.sasl: with kafka.sasl.mechanism set"),
    ("sasl-without-username", {"kafka": {"securityProtocol": "SASL_SSL",
                                         "sasl": {"mechanism": "SCRAM-SHA-512", "existingSecret": "s"}}},
     "kafka.sasl.username"),
    ("sasl-on-plaintext", {"kafka": {"sasl": {"mechanism": "PLAIN", "username": "u", "existingSecret": "s"}}},
     "kafka.securityProtocol"),
    ("sasl-protocol-without-mechanism", {"kafka": {"securityProtocol": "SASL_SSL"}}, "kafka.sasl.mechanism"),
    ("tls-without-ca", {"kafka": {"securityProtocol": "SSL", "tls": {"enabled": True}}}, "kafka.tls.caSecret.name"),
    ("min-isr-above-replication", {"init": {"topics": {"replicationFactor": 1, "minInsyncReplicas": 2}}},
     "init.topics.minInsyncReplicas"),
]


@pytest.mark.parametrize(("values", "message"), [c[1:] for c in SCHEMA_CASES + TEMPLATE_CASES],
                         ids=[c[0] for c in SCHEMA_CASES + TEMPLATE_CASES])
def test_helm_template_rejects_bad_values(helm: Helm, values: dict[str, Any], message: str) -> None:
    res = helm.run("template", "ab", str(CHART), values=values)
    assert res.returncode != 0, f"accepted: {values}"
    assert message in res.stderr, res.stderr


# `helm lint` reports the template's `fail` checks as information only, by design; the schema it enforces.
@pytest.mark.parametrize(("values", "message"), [c[1:] for c in SCHEMA_CASES[:3]], ids=[c[0] for c in SCHEMA_CASES[:3]])
def test_helm_lint_rejects_bad_values(helm: Helm, values: dict[str, Any], message: str) -> None:
    res = helm.run("lint", "--strict", str(CHART), values=values)
    assert res.returncode != 0
    assert message in res.stdout + res.stderr


def test_good_variants_are_accepted(helm: Helm) -> None:
    for values in (
        {"services": {"ingress": {"replicas": 0}}},
        {"image": {"digest": "sha256:" + "a" * 64}},
        {"kafka": {"securityProtocol": "SASL_PLAINTEXT", "sasl": {"mechanism": "SCRAM-SHA-256", "username": "u",
                                                                  "existingSecret": "kafka-user"}}},
        {"init": {"topics": {"retentionMs": -1}}},
        {"services": {"memory": {"pdb": {"enabled": False}}}},
        {"networkPolicy": {"enabled": False}},
        {"embeddings": {"server": {"enabled": False}}},
    ):
        res = helm.run("template", "ab", str(CHART), values=values)
        assert res.returncode == 0, f"{values}: {res.stderr}"
