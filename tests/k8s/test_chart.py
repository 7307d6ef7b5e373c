"""The Helm chart: lint, render, validate every manifest offline against the Kubernetes API schemas, and
check the parts that matter (one Deployment per service, probes, security, credentials, init hook, policies)."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.k8s.helpers import CHART, PRODUCTION, SERVICES, Helm, by_kind, component, containers, env_of, one

KUBERNETES_VERSION = "1.35.0"
# Custom resources have no schema in kubernetes-validate; these kinds (and only these) are not validated.
CRD_KINDS = {"ServiceMonitor"}

# Test credentials given inline: they may appear only (base64-encoded) in the chart's own Secret.
INLINE_SECRETS = {
    "database": {"url": "postgresql://agentbus:db-pw-7c1e9f@postgres:5432/agentbus"},
    "kafka": {"securityProtocol": "SASL_SSL",
              "sasl": {"mechanism": "SCRAM-SHA-512", "username": "agentbus", "password": "kafka-pw-4b8d2a"},
              "tls": {"enabled": True, "caSecret": {"name": "kafka-ca"}, "clientSecret": {"name": "kafka-user"}}},
    "llm": {"baseUrl": "https://llm.example.com/v1", "model": "m", "apiKey": "llm-key-93f0c1"},
    "qdrant": {"apiKey": "qdrant-key-1d6e7b"},
    "embeddings": {"url": "https://embed.example.com/v1", "apiKey": "embed-key-5a2f88"},
}
SECRET_STRINGS = ["db-pw-7c1e9f", "kafka-pw-4b8d2a", "llm-key-93f0c1", "qdrant-key-1d6e7b", "embed-key-5a2f88"]
SECRET_ENV = re.compile(r"(PASSWORD|API_KEY|DATABASE_URL|SECRET|TOKEN)")


def workloads(docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] in ("Deployment", "Job")]


# --- lint and schema validation -----------------------------------------------------------------------


@pytest.mark.parametrize("files", [(), (PRODUCTION,)], ids=["default", "production"])
def test_helm_lint_strict(helm: Helm, files: tuple[Path, ...]) -> None:
    res = helm.run("lint", "--strict", str(CHART), files=files)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 chart(s) failed" in res.stdout


@pytest.mark.parametrize("case", ["default", "production", "inline-credentials"])
def test_every_manifest_is_valid_for_kubernetes(helm: Helm, default_docs: list[dict[str, Any]],
                                               production_docs: list[dict[str, Any]], case: str) -> None:
    docs = {"default": default_docs, "production": production_docs}.get(case) or helm.render(values=INLINE_SECRETS)
    validated = 0
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as err:
            path = ".".join(str(p) for p in err.path)
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {err.message}")
        validated += 1
    assert validated >= 25


def test_only_crd_kinds_are_left_unvalidated(production_docs: list[dict[str, Any]]) -> None:
    kinds = {d["kind"] for d in production_docs}
    assert "ServiceMonitor" in kinds
    assert kinds - CRD_KINDS == {
        "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "Ingress", "Job", "NetworkPolicy",
        "PodDisruptionBudget", "Service", "ServiceAccount",
    }


# --- workloads -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["default", "production"])
def test_exactly_one_deployment_per_service(default_docs: list[dict[str, Any]],
                                            production_docs: list[dict[str, Any]], which: str) -> None:
    docs = default_docs if which == "default" else production_docs
    agentbus = [d for d in by_kind(docs, "Deployment") if component(d) in SERVICES]
    assert sorted(component(d) for d in agentbus) == sorted(SERVICES)
    images = set()
    for d in agentbus:
        (c,) = containers(d)
        assert c["args"] == ["run", component(d)]
        assert "command" not in c  # the image's ENTRYPOINT is agentbus
        images.add(c["image"])
    assert len(images) == 1
    # the only other Deployment is the optional embeddings server from the same image
    others = [component(d) for d in by_kind(docs, "Deployment") if component(d) not in SERVICES]
    assert others == ["embeddings"]
    assert containers(one(docs, "Deployment", "embeddings"))[0]["image"] in images


def test_replicas_and_resources_are_per_service(helm: Helm) -> None:
    docs = helm.render(values={"services": {
        "reasoner": {"replicas": 7, "resources": {"requests": {"cpu": "1500m", "memory": "2Gi"}}},
        "scheduler": {"replicas": 1},
    }})
    assert one(docs, "Deployment", "reasoner")["spec"]["replicas"] == 7
    reasoner = containers(one(docs, "Deployment", "reasoner"))[0]
    assert reasoner["resources"]["requests"] == {"cpu": "1500m", "memory": "2Gi"}
    assert one(docs, "Deployment", "scheduler")["spec"]["replicas"] == 1
    assert one(docs, "Deployment", "ingress")["spec"]["replicas"] == 2


def test_probes_use_the_service_http_port(default_docs: list[dict[str, Any]]) -> None:
    ports = {"ingress": 8080, "memory": 8081, "reasoner": 8082, "scheduler": 8083, "egress": 8084}
    for name, port in ports.items():
        (c,) = containers(one(default_docs, "Deployment", name))
        assert c["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
        env = env_of(c)
        assert env["AGENTBUS_HTTP_PORT"]["value"] == str(port)
        assert env["AGENTBUS_HTTP_HOST"]["value"] == "0.0.0.0"
        assert c["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert c["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
        assert c["startupProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_pods_are_locked_down(production_docs: list[dict[str, Any]]) -> None:
    for d in workloads(production_docs):
        spec = d["spec"]["template"]["spec"]
        assert spec["automountServiceAccountToken"] is False
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True
            assert sc["readOnlyRootFilesystem"] is True
            assert sc["allowPrivilegeEscalation"] is False
            assert sc["capabilities"] == {"drop": ["ALL"]}
            assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
            assert {"name": "tmp", "mountPath": "/tmp"} in c["volumeMounts"]
        assert any(v["name"] == "tmp" and "emptyDir" in v for v in spec["volumes"])


def test_a_service_account_per_service_without_token(default_docs: list[dict[str, Any]]) -> None:
    accounts = {component(a): a for a in by_kind(default_docs, "ServiceAccount")}
    assert sorted(accounts) == sorted(SERVICES)
    for name, sa in accounts.items():
        assert sa["automountServiceAccountToken"] is False
        dep = one(default_docs, "Deployment", name)
        assert dep["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_config_map_is_mounted_and_pointed_at(helm: Helm) -> None:
    docs = helm.render(values={"agentbusYaml": "tenants: [{id: t1}]\nagents: [{id: a1}]\n"})
    cm = one(docs, "ConfigMap", "config")
    assert yaml.safe_load(cm["data"]["agentbus.yaml"]) == {"tenants": [{"id": "t1"}], "agents": [{"id": "a1"}]}
    for name in SERVICES:
        dep = one(docs, "Deployment", name)
        (c,) = containers(dep)
        assert env_of(c)["AGENTBUS_CONFIG_FILE"]["value"] == "/etc/agentbus/config/agentbus.yaml"
        assert {"name": "config", "mountPath": "/etc/agentbus/config", "readOnly": True} in c["volumeMounts"]
        vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
        assert vols["config"]["configMap"]["name"] == cm["metadata"]["name"]
        # a new agentbus.yaml rolls the pods
        assert dep["spec"]["template"]["metadata"]["annotations"]["checksum/config"]


def test_the_agentbus_yaml_shipped_in_values_is_a_valid_configuration(default_docs: list[dict[str, Any]],
                                                                      production_docs: list[dict[str, Any]],
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from agentbus.config import parse_config

    monkeypatch.setenv("AGENTBUS_SUPPORT_WEBHOOK_SECRET", "whsec_dGVzdA==")
    monkeypatch.setenv("AGENTBUS_DEEPSEEK_API_KEY", "x")
    for docs in (default_docs, production_docs):
        parse_config(yaml.safe_load(one(docs, "ConfigMap", "config")["data"]["agentbus.yaml"]))


def test_spread_and_disruption_budgets(production_docs: list[dict[str, Any]]) -> None:
    for name in SERVICES:
        dep = one(production_docs, "Deployment", name)
        spread = dep["spec"]["template"]["spec"]["topologySpreadConstraints"]
        assert {s["topologyKey"] for s in spread} == {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        for s in spread:
            assert s["labelSelector"]["matchLabels"] == dep["spec"]["selector"]["matchLabels"]
        pdb = one(production_docs, "PodDisruptionBudget", name)
        assert pdb["spec"]["selector"] == dep["spec"]["selector"]
    assert one(production_docs, "PodDisruptionBudget", "ingress")["spec"] == {
        "minAvailable": 2, "selector": one(production_docs, "Deployment", "ingress")["spec"]["selector"]}


def test_autoscaling_on_cpu_and_consumer_lag(production_docs: list[dict[str, Any]]) -> None:
    hpas = {component(h): h for h in by_kind(production_docs, "HorizontalPodAutoscaler")}
    assert sorted(hpas) == ["egress", "ingress", "memory", "reasoner"]
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"]["name"] == one(production_docs, "Deployment", name)["metadata"]["name"]
        assert "replicas" not in one(production_docs, "Deployment", name)["spec"]  # the HPA owns it
        kinds = [m["type"] for m in hpa["spec"]["metrics"]]
        assert kinds[0] == "Resource" and hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
        assert kinds == (["Resource"] if name == "ingress" else ["Resource", "External"])
    lag = hpas["reasoner"]["spec"]["metrics"][1]["external"]
    assert lag["metric"]["name"] == "kafka_consumergroup_lag"
    assert lag["metric"]["selector"]["matchLabels"] == {"consumergroup": "agentbus.agentbus.reasoner"}
    assert lag["target"] == {"type": "AverageValue", "averageValue": "50"}
    assert "replicas" in one(production_docs, "Deployment", "scheduler")["spec"]


# --- the init hook ---------------------------------------------------------------------------------------


def test_init_job_is_a_pre_install_and_pre_upgrade_hook(production_docs: list[dict[str, Any]]) -> None:
    (job,) = by_kind(production_docs, "Job")
    ann = job["metadata"]["annotations"]
    assert ann["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(ann["helm.sh/hook-weight"]) < 0
    assert "before-hook-creation" in ann["helm.sh/hook-delete-policy"]
    (c,) = containers(job)
    assert c["args"] == ["init", "--partitions=24", "--replication-factor=3", "--retention-ms=1209600000",
                         "--min-insync-replicas=2", "--wait=180"]
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    env = env_of(c)
    assert env["AGENTBUS_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": "agentbus-pg-app", "key": "uri"}
    assert env["AGENTBUS_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "agentbus-kafka-user"
    # the services leave topic creation to the hook, and keep their redelivery records for the topics' retention
    for name in SERVICES:
        env = env_of(containers(one(production_docs, "Deployment", name))[0])
        assert env["AGENTBUS_CREATE_TOPICS"]["value"] == "false"
        assert env["AGENTBUS_TOPIC_RETENTION_MS"]["value"] == "1209600000"


def test_init_values_reach_the_job_and_disabling_it_lets_services_create_topics(helm: Helm) -> None:
    docs = helm.render(values={"init": {"topics": {"partitions": 3, "replicationFactor": 1, "retentionMs": -1,
                                                   "minInsyncReplicas": 1}}})
    (job,) = by_kind(docs, "Job")
    assert containers(job)[0]["args"][1:5] == ["--partitions=3", "--replication-factor=1", "--retention-ms=-1",
                                                "--min-insync-replicas=1"]
    assert env_of(containers(one(docs, "Deployment", "egress"))[0])["AGENTBUS_TOPIC_RETENTION_MS"]["value"] == "-1"
    docs = helm.render(values={"init": {"enabled": False}})
    assert by_kind(docs, "Job") == []
    assert env_of(containers(one(docs, "Deployment", "memory"))[0])["AGENTBUS_CREATE_TOPICS"]["value"] == "true"


def test_inline_credentials_secret_exists_before_the_hook_job(helm: Helm) -> None:
    docs = helm.render(values=INLINE_SECRETS)
    (secret,) = by_kind(docs, "Secret")
    (job,) = by_kind(docs, "Job")
    s_ann, j_ann = secret["metadata"]["annotations"], job["metadata"]["annotations"]
    assert s_ann["helm.sh/hook"] == j_ann["helm.sh/hook"]
    assert int(s_ann["helm.sh/hook-weight"]) < int(j_ann["helm.sh/hook-weight"])


# --- credentials -----------------------------------------------------------------------------------------


def test_inline_credentials_appear_only_in_the_charts_secret(helm: Helm) -> None:
    docs = helm.render(values=INLINE_SECRETS)
    (secret,) = by_kind(docs, "Secret")
    assert secret["metadata"]["name"] == "ab-agentbus-credentials"
    decoded = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert decoded == {
        "database-url": INLINE_SECRETS["database"]["url"],
        "kafka-sasl-password": "kafka-pw-4b8d2a",
        "llm-api-key": "llm-key-93f0c1",
        "qdrant-api-key": "qdrant-key-1d6e7b",
        "embeddings-api-key": "embed-key-5a2f88",
    }
    for doc in docs:
        if doc["kind"] == "Secret":
            continue
        text = yaml.safe_dump(doc)
        for s in SECRET_STRINGS:
            assert s not in text, f"{s} leaked into {doc['kind']}/{doc['metadata']['name']}"
            assert base64.b64encode(s.encode()).decode()[:12] not in text
    # and every credential reaches the containers through secretKeyRef
    chart_secret = secret["metadata"]["name"]
    refs = {name: env_of(containers(one(docs, "Deployment", name))[0]) for name in SERVICES}
    assert refs["ingress"]["AGENTBUS_DATABASE_URL"]["valueFrom"]["secretKeyRef"] == {"name": chart_secret,
                                                                                     "key": "database-url"}
    assert refs["reasoner"]["AGENTBUS_LLM_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "llm-api-key"
    assert refs["memory"]["AGENTBUS_QDRANT_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "qdrant-api-key"
    assert refs["memory"]["AGENTBUS_EMBEDDINGS_API_KEY"]["valueFrom"]["secretKeyRef"]["key"] == "embeddings-api-key"


def test_existing_secrets_win_and_no_credential_value_is_rendered(helm: Helm) -> None:
    # the production example names existing Secrets; inline values given as well must be ignored
    text = helm.template(PRODUCTION, values={
        "database": {"url": INLINE_SECRETS["database"]["url"]},
        "kafka": {"sasl": {"password": "kafka-pw-4b8d2a"}},
        "llm": {"apiKey": "llm-key-93f0c1"},
        "qdrant": {"apiKey": "qdrant-key-1d6e7b"},
    })
    for s in SECRET_STRINGS:
        assert s not in text
        assert base64.b64encode(s.encode()).decode()[:12] not in text
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert by_kind(docs, "Secret") == []


@pytest.mark.parametrize("which", ["default", "production", "inline"])
def test_credentials_come_only_from_secret_key_refs(helm: Helm, default_docs: list[dict[str, Any]],
                                                    production_docs: list[dict[str, Any]], which: str) -> None:
    docs = {"default": default_docs, "production": production_docs}.get(which) or helm.render(values=INLINE_SECRETS)
    seen = 0
    for d in workloads(docs):
        for c in containers(d):
            for e in c.get("env", []):
                if SECRET_ENV.search(e["name"]):
                    seen += 1
                    assert "value" not in e, f"{e['name']} has an inline value in {d['metadata']['name']}"
                    assert set(e["valueFrom"]) == {"secretKeyRef"}
    assert seen >= 6
    for cm in by_kind(docs, "ConfigMap"):
        for value in cm["data"].values():
            for s in SECRET_STRINGS:
                assert s not in value


def test_kafka_sasl_scram_and_tls_from_secrets(production_docs: list[dict[str, Any]]) -> None:
    dep = one(production_docs, "Deployment", "egress")
    env = env_of(containers(dep)[0])
    assert env["AGENTBUS_KAFKA_BOOTSTRAP_SERVERS"]["value"] == "events-kafka-bootstrap.kafka.svc:9093"
    assert env["AGENTBUS_KAFKA_SECURITY_PROTOCOL"]["value"] == "SASL_SSL"
    assert env["AGENTBUS_KAFKA_SASL_MECHANISM"]["value"] == "SCRAM-SHA-512"
    assert env["AGENTBUS_KAFKA_SASL_USERNAME"]["value"] == "agentbus"
    assert env["AGENTBUS_KAFKA_SASL_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "agentbus-kafka-user",
                                                                                "key": "password"}
    assert env["AGENTBUS_KAFKA_SSL_CAFILE"]["value"] == "/etc/agentbus/kafka-tls/ca/ca.crt"
    assert "AGENTBUS_KAFKA_SSL_CERTFILE" not in env
    vols = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert vols["kafka-ca"]["secret"]["secretName"] == "events-cluster-ca-cert"


def test_kafka_mtls_mounts_the_client_certificate(helm: Helm) -> None:
    docs = helm.render(values={"kafka": {"securityProtocol": "SSL", "tls": {
        "enabled": True, "caSecret": {"name": "events-cluster-ca-cert"}, "clientSecret": {"name": "agentbus-user"}}}})
    for d in workloads(docs):
        if component(d) == "embeddings":
            continue
        c = containers(d)[0]
        env = env_of(c)
        assert env["AGENTBUS_KAFKA_SSL_CAFILE"]["value"] == "/etc/agentbus/kafka-tls/ca/ca.crt"
        assert env["AGENTBUS_KAFKA_SSL_CERTFILE"]["value"] == "/etc/agentbus/kafka-tls/client/user.crt"
        assert env["AGENTBUS_KAFKA_SSL_KEYFILE"]["value"] == "/etc/agentbus/kafka-tls/client/user.key"
        assert "AGENTBUS_KAFKA_SASL_MECHANISM" not in env
        mounts = {m["name"]: m for m in c["volumeMounts"]}
        assert mounts["kafka-client"] == {"name": "kafka-client", "mountPath": "/etc/agentbus/kafka-tls/client",
                                          "readOnly": True}
        vols = {v["name"]: v for v in d["spec"]["template"]["spec"]["volumes"]}
        assert vols["kafka-client"]["secret"]["secretName"] == "agentbus-user"


def test_endpoints_reach_only_the_services_that_use_them(production_docs: list[dict[str, Any]]) -> None:
    env = {n: env_of(containers(one(production_docs, "Deployment", n))[0]) for n in SERVICES}
    assert env["memory"]["AGENTBUS_QDRANT_URL"]["value"] == "http://qdrant.qdrant.svc:6333"
    assert env["memory"]["AGENTBUS_QDRANT_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "agentbus-qdrant"
    assert env["memory"]["AGENTBUS_EMBEDDINGS_URL"]["value"] == "http://ab-agentbus-embeddings:8090/v1"
    assert env["reasoner"]["AGENTBUS_LLM_BASE_URL"]["value"].startswith("https://")
    assert env["reasoner"]["AGENTBUS_LLM_MODEL"]["value"] == "qwen-plus"
    assert env["reasoner"]["AGENTBUS_LLM_API_KEY"]["valueFrom"]["secretKeyRef"] == {"name": "agentbus-llm",
                                                                                     "key": "api-key"}
    for n in SERVICES:
        assert env[n]["AGENTBUS_OTLP_ENDPOINT"]["value"] == "http://jaeger-collector.observability.svc:4318"
        assert env[n]["AGENTBUS_JAEGER_URL"]["value"] == "https://jaeger.example.com"  # trace links
        assert env[n]["AGENTBUS_KAFKA_IDEMPOTENT_PRODUCER"]["value"] == "true"
        assert env[n]["AGENTBUS_SUPPORT_WEBHOOK_SECRET"]["valueFrom"]["secretKeyRef"]["name"] == "agentbus-channels"
        if n != "memory":
            assert "AGENTBUS_QDRANT_API_KEY" not in env[n]
        if n != "reasoner":
            assert "AGENTBUS_LLM_API_KEY" not in env[n]


# --- network ---------------------------------------------------------------------------------------------


def test_network_policies(production_docs: list[dict[str, Any]]) -> None:
    policies = {component(p): p for p in by_kind(production_docs, "NetworkPolicy")}
    assert sorted(policies) == sorted([*SERVICES, "init", "embeddings"])
    release = {"app.kubernetes.io/name": "agentbus", "app.kubernetes.io/instance": "ab"}
    monitoring = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
    for name, p in policies.items():
        spec = p["spec"]
        assert spec["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == name
        assert spec["policyTypes"] == ["Ingress", "Egress"]
        egress = spec["egress"]
        assert {"port": 53, "protocol": "UDP"} in egress[0]["ports"]
        if name == "init":
            assert spec["ingress"] == []
        elif name == "embeddings":
            (rule,) = spec["ingress"]
            assert rule["from"][0]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] == "memory"
            assert len(egress) == 1  # DNS only
        elif name == "ingress":
            # from outside the release: only through the ingress controller namespace
            assert spec["ingress"][0]["from"] == [
                {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress-nginx"}}}]
            assert spec["ingress"][1]["from"] == [monitoring]
        else:
            assert spec["ingress"][0]["from"] == [{"podSelector": {"matchLabels": release}}]
            assert spec["ingress"][1]["from"] == [monitoring]
            assert all(r["ports"] == [{"port": "http", "protocol": "TCP"}] for r in spec["ingress"])
        if name not in ("embeddings",):
            cidrs = [r for r in egress if "ipBlock" in r["to"][0]]
            assert cidrs and cidrs[0]["to"][0]["ipBlock"]["cidr"] == "0.0.0.0/0"
            assert "169.254.0.0/16" in cidrs[0]["to"][0]["ipBlock"]["except"]
            assert cidrs[0]["ports"] == [{"port": 443, "protocol": "TCP"}]
            assert any(r.get("ports") == [{"port": 9093, "protocol": "TCP"}] for r in egress)


def test_network_policy_defaults_leave_egress_open_but_ingress_restricted(default_docs: list[dict[str, Any]]) -> None:
    for p in by_kind(default_docs, "NetworkPolicy"):
        assert p["spec"]["policyTypes"] == ["Ingress"]
        assert "egress" not in p["spec"]
    ingress = one(default_docs, "NetworkPolicy", "ingress")["spec"]["ingress"]
    assert ingress[0] == {"ports": [{"port": "http", "protocol": "TCP"}]}  # anyone may send webhooks


def test_ingress_with_tls_and_service(production_docs: list[dict[str, Any]]) -> None:
    (ing,) = by_kind(production_docs, "Ingress")
    svc = one(production_docs, "Service", "ingress")
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["tls"] == [{"secretName": "agentbus-tls", "hosts": ["agentbus.example.com"]}]
    backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": svc["metadata"]["name"], "port": {"name": "http"}}
    assert svc["spec"]["ports"] == [{"name": "http", "port": 80, "targetPort": "http", "protocol": "TCP"}]
    assert svc["spec"]["selector"] == one(production_docs, "Deployment", "ingress")["spec"]["selector"]["matchLabels"]


def test_no_ingress_by_default(default_docs: list[dict[str, Any]]) -> None:
    assert by_kind(default_docs, "Ingress") == []
    assert by_kind(default_docs, "ServiceMonitor") == []
    assert by_kind(default_docs, "HorizontalPodAutoscaler") == []


# --- observability ---------------------------------------------------------------------------------------


def test_service_monitor_scrapes_every_service(production_docs: list[dict[str, Any]]) -> None:
    (sm,) = by_kind(production_docs, "ServiceMonitor")
    assert sm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert sm["spec"]["endpoints"][0]["port"] == "http" and sm["spec"]["endpoints"][0]["path"] == "/metrics"
    expr = sm["spec"]["selector"]["matchExpressions"][0]
    assert expr["key"] == "app.kubernetes.io/component" and sorted(expr["values"]) == sorted(SERVICES)
    for name in SERVICES:
        assert one(production_docs, "Service", name)["spec"]["ports"][0]["name"] == "http"


def test_dashboard_config_map_uses_the_exported_metrics(production_docs: list[dict[str, Any]]) -> None:
    from prometheus_client import REGISTRY

    import agentbus.metrics  # noqa: F401 - registers the metrics
    import agentbus.quota_metrics  # noqa: F401 - and the quota gauges
    import agentbus.retention  # noqa: F401 - and the pruning counters

    cm = one(production_docs, "ConfigMap", "dashboard")
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dashboard = json.loads(cm["data"]["agentbus.json"])
    assert dashboard == json.loads((CHART / "dashboards" / "agentbus.json").read_text())
    families = {f.name: f.type for f in REGISTRY.collect() if f.name.startswith("agentbus_")}
    series: set[str] = set()
    for name, kind in families.items():
        series |= {"counter": {f"{name}_total"}, "histogram": {f"{name}_bucket", f"{name}_count", f"{name}_sum"}}.get(
            kind, {name})
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    used = {m for e in exprs for m in re.findall(r"\bagentbus_[a-z_]+", e)}
    assert used, "the dashboard queries no agentbus metric"
    assert used <= series, f"unknown metrics in the dashboard: {sorted(used - series)}"
    missing = [n for n in families if not any(u == n or u.startswith(n + "_") for u in used)]
    assert not missing, f"metrics missing from the dashboard: {missing}"


def test_notes_tell_the_next_steps(helm: Helm) -> None:
    res = helm.run("install", "ab", str(CHART), "--dry-run=client", "--namespace", "agentbus", files=(PRODUCTION,))
    assert res.returncode == 0, res.stderr
    notes = res.stdout.split("NOTES:", 1)[1]
    assert "https://agentbus.example.com/v1/webhooks/<channel-id>" in notes
    assert "ab-agentbus-init" in notes and "24 partitions" in notes
    assert "http://jaeger-collector.observability.svc:4318" in notes
    assert "WARNING" not in notes


def test_the_reasoners_tools_reach_memory_and_the_scheduler_through_their_services(
    default_docs: list[dict[str, Any]],
) -> None:
    (c,) = containers(one(default_docs, "Deployment", "reasoner"))
    env = env_of(c)
    for name, var in (("memory", "AGENTBUS_MEMORY_URL"), ("scheduler", "AGENTBUS_SCHEDULER_URL")):
        svc = one(default_docs, "Service", name)
        assert env[var]["value"] == f"http://{svc['metadata']['name']}:{svc['spec']['ports'][0]['port']}"
    for other in ("memory", "scheduler", "egress"):
        (oc,) = containers(one(default_docs, "Deployment", other))
        assert "AGENTBUS_MEMORY_URL" not in env_of(oc)


def test_the_operator_api_reads_the_schedulers_jobs_and_the_reasoners_model_health(
    default_docs: list[dict[str, Any]],
) -> None:
    (c,) = containers(one(default_docs, "Deployment", "ingress"))
    env = env_of(c)
    for name, var in (("scheduler", "AGENTBUS_SCHEDULER_URL"), ("reasoner", "AGENTBUS_REASONER_URL"),
                      ("memory", "AGENTBUS_MEMORY_URL"), ("egress", "AGENTBUS_EGRESS_URL")):
        svc = one(default_docs, "Service", name)
        assert env[var]["value"] == f"http://{svc['metadata']['name']}:{svc['spec']['ports'][0]['port']}"
    for other in ("memory", "reasoner", "scheduler", "egress"):
        (oc,) = containers(one(default_docs, "Deployment", other))
        assert "AGENTBUS_REASONER_URL" not in env_of(oc) and "AGENTBUS_EGRESS_URL" not in env_of(oc)


def test_without_a_qdrant_url_memory_searches_postgresql_as_vector_index_says(helm: Helm) -> None:
    memory = env_of(containers(one(helm.render(), "Deployment", "memory"))[0])
    assert memory["AGENTBUS_VECTOR_INDEX"]["value"] == "auto"
    docs = helm.render(values={"qdrant": {"url": "", "vectorIndex": "pgvector"}})
    memory = env_of(containers(one(docs, "Deployment", "memory"))[0])
    assert memory["AGENTBUS_VECTOR_INDEX"]["value"] == "pgvector"
    assert "AGENTBUS_QDRANT_URL" not in memory and "AGENTBUS_QDRANT_API_KEY" not in memory
    with pytest.raises(Exception, match="vectorIndex"):
        helm.render(values={"qdrant": {"vectorIndex": "faiss"}})
