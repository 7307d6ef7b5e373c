"""The Helm chart against the real thing (``make test-kafka``): ``helm template`` with the production example
values, then the chart's init Job and each service Deployment's container run here as processes, with the
command and environment the chart renders, against the three-node Apache Kafka cluster. A signed webhook goes
in through ingress and its reply must reach the channel's endpoint once; the topics must have the partitions,
replication and min.insync.replicas the chart asks for, and the consumer groups the chart's autoscalers
watch must exist.

What cannot exist here is stood in for, and only that (``tests/support/chart_local.py``; the table of every
substitution is printed, ``-s`` shows it):
  - Kafka: the bootstrap servers are the local cluster's; the example's SASL_SSL (SCRAM-SHA-512 user,
    Strimzi's cluster CA) becomes PLAINTEXT, the listener the local cluster has, so the SASL mechanism,
    user, password and CA file are left out;
  - PostgreSQL: the CloudNativePG Secret's URI is a fresh database on the tests' PostgreSQL;
  - Qdrant: the server URL and its API key are left out and memory uses Qdrant's local mode (the same
    client and collection) in a scratch folder;
  - the LLM (``llm.baseUrl`` and the agent file's ``deepseek-chat`` model): the tests' fake OpenAI-compatible
    LLM, each with a local key, which the fake checks;
  - the embeddings Service: the tests' embeddings server; the OTLP collector: the tests' collector;
  - the chart's Services: 127.0.0.1 on free ports (one process per Deployment, not the example's replicas);
  - the channel's ``push_url`` and its webhook secret in the ConfigMap's agentbus.yaml: the tests' signed-push
    sink and a local secret; the file itself is written to a scratch folder instead of the Pod's mount.
Everything else (topic and group prefixes, partitions, idempotence, ports' roles, timeouts, environment,
log settings, the init Job's arguments) is the chart's, unchanged; the test asserts so.
"""

from __future__ import annotations

import asyncio
import base64
import secrets as pysecrets
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
import pytest
import yaml
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from agentbus.cli.tools import signed_request
from agentbus.settings import SERVICES
from agentbus.stack.kafka_cluster import KafkaCluster
from agentbus.stack.procs import Proc, free_port
from agentbus.stack.stack import service_ready
from agentbus.topics import all_topics, config_topic
from tests.k8s.helpers import PRODUCTION, Helm, helm_binary
from tests.support import chart_local as cl
from tests.support.otlp import Collector
from tests.support.platform import Infra
from tests.support.servers import FakeLLM, WebhookSink

pytestmark = [pytest.mark.integration, pytest.mark.broker]

RELEASE, NAMESPACE = "ab", "agentbus"
CHANNEL = "support"  # the production example's webhook channel


@dataclass
class Rendered:
    docs: list[dict[str, Any]]
    config: dict[str, Any]  # the ConfigMap's agentbus.yaml

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [d for d in self.docs if d["kind"] == kind]

    def deployment(self, comp: str) -> dict[str, Any]:
        [d] = [d for d in self.of("Deployment") if cl.component(d) == comp]
        return d

    @property
    def init_job(self) -> dict[str, Any]:
        [job] = self.of("Job")
        return job

    def init_arg(self, name: str) -> str:
        args = cl.container_of(self.init_job)["args"]
        [value] = [a.split("=", 1)[1] for a in args if a.startswith(f"--{name}=")]
        return str(value)


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Rendered:
    helm = Helm(helm_binary(), tmp_path_factory.mktemp("helm"))
    docs = [d for d in yaml.safe_load_all(helm.template(PRODUCTION, release=RELEASE, namespace=NAMESPACE)) if d]
    [cm] = [d for d in docs if d["kind"] == "ConfigMap" and "agentbus.yaml" in d.get("data", {})]
    return Rendered(docs, yaml.safe_load(cm["data"]["agentbus.yaml"]))


@dataclass
class Local:
    home: Path
    kafka: KafkaCluster
    database_url: str
    embeddings_url: str
    llm: FakeLLM
    fallback_llm: FakeLLM
    sink: WebhookSink
    collector: Collector
    webhook_secret: str
    ports: dict[str, int]
    subs: cl.Substitutions

    def secrets(self) -> dict[str, str | None]:
        """Stand-ins for the Secrets the example's containers read, by variable (None: left out)."""
        return {
            "AGENTBUS_DATABASE_URL": self.database_url,
            "AGENTBUS_KAFKA_SASL_PASSWORD": None,  # the local cluster's listener has no SASL
            "AGENTBUS_QDRANT_API_KEY": None,  # Qdrant's local mode has no key
            "AGENTBUS_LLM_API_KEY": self.llm.api_key,
            "AGENTBUS_DEEPSEEK_API_KEY": self.fallback_llm.api_key,
            "AGENTBUS_SUPPORT_WEBHOOK_SECRET": self.webhook_secret,
        }

    def netloc(self, comp: str) -> str:
        if comp == "embeddings":
            return urlsplit(self.embeddings_url).netloc
        return f"127.0.0.1:{self.ports[comp]}"


@pytest.fixture(scope="module")
async def local(infra: Infra) -> AsyncIterator[Local]:
    if infra.kafka is None:
        pytest.skip("runs on Apache Kafka (make test-kafka): the chart's topics have three replicas")
    db = f"chart_{uuid.uuid4().hex[:10]}"
    async with await psycopg.AsyncConnection.connect(infra.database_url, autocommit=True) as conn:
        await conn.execute(f'CREATE DATABASE "{db}"')
    database_url = urlunsplit(urlsplit(infra.database_url)._replace(path=f"/{db}"))
    llm = await FakeLLM(reply_prefix="qwen says: ", api_key=f"sk-local-{uuid.uuid4().hex}").start()
    fallback = await FakeLLM(reply_prefix="deepseek says: ", api_key=f"sk-local-{uuid.uuid4().hex}").start()
    secret = "whsec_" + base64.b64encode(pysecrets.token_bytes(24)).decode()
    sink = await WebhookSink({CHANNEL: secret}).start()
    collector = await Collector().start()
    home = Path(tempfile.mkdtemp(prefix="agentbus-chart-"))
    try:
        yield Local(home, infra.kafka, database_url, infra.embeddings_url, llm, fallback, sink, collector, secret,
                    {s: free_port() for s in SERVICES}, cl.Substitutions())
    finally:
        for server in (llm, fallback, sink, collector):
            await server.stop()
        async with await psycopg.AsyncConnection.connect(infra.database_url, autocommit=True) as conn:
            await conn.execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


def local_config(r: Rendered, loc: Local) -> Path:
    """The ConfigMap's agentbus.yaml with the chat platform and the LLM endpoints of this machine."""
    cfg = yaml.safe_load(yaml.safe_dump(r.config))
    for ch in cfg["channels"]:
        if ch["id"] == CHANNEL:
            loc.subs.record("*", f"agentbus.yaml: channels[{CHANNEL}].push_url", ch["push_url"],
                            loc.sink.url_for(CHANNEL), "the chat platform: the tests' signed-push sink")
            ch["push_url"] = loc.sink.url_for(CHANNEL)
    for m in cfg["models"]:
        loc.subs.record("*", f"agentbus.yaml: models[{m['name']}].base_url", m["base_url"], loc.fallback_llm.base_url,
                        "an LLM provider: the tests' fake LLM")
        m["base_url"] = loc.fallback_llm.base_url
    path = loc.home / "config" / "agentbus.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return path


def local_env(doc: dict[str, Any], loc: Local, config_file: Path, hosts: dict[str, str]) -> dict[str, str]:
    """The container's environment as it runs here: the chart's, with only the listed stand-ins."""
    comp = cl.component(doc)
    container = cl.container_of(doc)
    env = cl.env_of(container, comp, loc.secrets(), loc.subs)

    def put(name: str, value: str | None, why: str) -> None:
        if name in env:
            cl.set_env(env, comp, name, value, why, loc.subs)

    put("AGENTBUS_KAFKA_BOOTSTRAP_SERVERS", loc.kafka.bootstrap, "Strimzi's bootstrap Service: the local cluster")
    put("AGENTBUS_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", "SASL_SSL: the local cluster's listener is plaintext")
    for name in ("AGENTBUS_KAFKA_SASL_MECHANISM", "AGENTBUS_KAFKA_SASL_USERNAME", "AGENTBUS_KAFKA_SSL_CAFILE"):
        put(name, None, "SASL and TLS of the cluster's listener: none here")
    put("AGENTBUS_CONFIG_FILE", str(config_file), "the ConfigMap's mount: the file in a scratch folder")
    if comp in loc.ports:
        put("AGENTBUS_HTTP_PORT", str(loc.ports[comp]), "one process per Deployment: a free port each")
    put("AGENTBUS_QDRANT_URL", None, "no Qdrant server here: Qdrant's local mode (AGENTBUS_QDRANT_PATH)")
    if comp == "memory" and "AGENTBUS_QDRANT_COLLECTION" in env:
        env["AGENTBUS_QDRANT_PATH"] = str(loc.home / "qdrant")
        loc.subs.record(comp, "AGENTBUS_QDRANT_PATH", None, env["AGENTBUS_QDRANT_PATH"], "Qdrant's local mode")
    put("AGENTBUS_LLM_BASE_URL", loc.llm.base_url, "the LLM provider: the tests' fake LLM")
    put("AGENTBUS_OTLP_ENDPOINT", loc.collector.url, "Jaeger's collector: the tests' OTLP collector")
    for name, value in list(env.items()):  # the chart's own Services, wherever a URL names one
        host = urlsplit(value).hostname if "://" in value else None
        if host in hosts:
            put(name, cl.replace_host(value, loc.netloc(hosts[host])), f"Service {host}: this machine")
    leftover = {k: v for k, v in env.items() if ".svc" in v}
    assert not leftover, f"{comp}: cluster DNS names with no stand-in: {leftover}"
    return env


def assert_unchanged(doc: dict[str, Any], env: dict[str, str], loc: Local) -> None:
    """Every variable the chart set and no substitution names is in the process's environment, unchanged."""
    comp = cl.component(doc)
    changed = loc.subs.names(comp)
    chart = {e["name"]: e.get("value") for e in cl.container_of(doc).get("env", [])}
    for name, value in chart.items():
        if name not in changed:
            assert env.get(name) == value, f"{comp}: {name} is {env.get(name)!r}, the chart says {value!r}"


async def run_init(r: Rendered, loc: Local, base: dict[str, str], hosts: dict[str, str]) -> str:
    job = r.init_job
    env = {**base, **local_env(job, loc, loc.home / "unused.yaml", hosts)}
    assert_unchanged(job, env, loc)
    argv = cl.argv_of(cl.container_of(job), loc.subs, "init")
    proc = await asyncio.create_subprocess_exec(*argv, env=env, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT, stdin=asyncio.subprocess.DEVNULL)
    out, _ = await asyncio.wait_for(proc.communicate(), 300)
    text = out.decode("utf-8", "replace")
    assert proc.returncode == 0, f"the chart's init Job failed here:\n{text[-3000:]}"
    return text


@pytest.fixture(scope="module")
async def chart(rendered: Rendered, local: Local) -> AsyncIterator[dict[str, Proc]]:
    """The init Job run to completion, then one process per service Deployment, ready."""
    loc = local
    hosts = cl.service_hosts(rendered.docs, NAMESPACE)
    base = cl.base_env(loc.home, loc.subs)
    config_file = local_config(rendered, loc)
    out = await run_init(rendered, loc, base, hosts)
    assert "agentbus init: done" in out, out
    procs: dict[str, Proc] = {}
    try:
        for comp in SERVICES:
            doc = rendered.deployment(comp)
            env = {**base, **local_env(doc, loc, config_file, hosts)}
            assert_unchanged(doc, env, loc)
            procs[comp] = Proc(comp, cl.argv_of(cl.container_of(doc), loc.subs, comp), env=env, inherit_env=False,
                               ready=partial(service_ready, loc.ports[comp], comp), log_dir=loc.home / "logs",
                               echo=False)
        print("\n" + loc.subs.table())
        for p in procs.values():  # as Kubernetes starts them: all at once, the topics already there
            await p.start()
        await asyncio.gather(*(p.wait_ready(180) for p in procs.values()))
        yield procs
    except BaseException:
        for name in procs:
            log = loc.home / "logs" / f"{name}.log"
            if log.exists():
                print(f"---- {name} log (tail) ----\n" + "\n".join(log.read_text().splitlines()[-25:]))
        raise
    finally:
        await asyncio.gather(*(p.stop(30) for p in procs.values()), return_exceptions=True)


async def send(loc: Local, conversation: str, text: str) -> httpx.Response:
    body, headers = signed_request(loc.webhook_secret, {"conversation": conversation, "sender": {"id": "alice"},
                                                        "text": text})
    async with httpx.AsyncClient(timeout=30) as c:
        return await c.post(f"http://127.0.0.1:{loc.ports['ingress']}/v1/webhooks/{CHANNEL}", content=body,
                            headers=headers)


async def test_a_signed_webhook_is_answered_once_on_the_charts_settings(
        rendered: Rendered, local: Local, chart: dict[str, Proc]) -> None:
    conv = f"chart-{uuid.uuid4().hex[:6]}"
    r = await send(local, conv, "What is on the agenda today?")
    assert r.status_code == 202, r.text
    [first] = await local.sink.wait_for(lambda m: m["conversation"] == conv, timeout=90)
    assert first["text"] == "qwen says: What is on the agenda today?"
    # a later message of the same conversation arriving gives a duplicate of the first its chance to show up
    assert (await send(local, conv, "And tomorrow?")).status_code == 202
    await local.sink.wait_for(lambda m: m["conversation"] == conv and "tomorrow" in m["text"], timeout=60)
    pushes = [m for m in local.sink.received if m["conversation"] == conv and "agenda" in m["text"]]
    assert len(pushes) == 1 and len(local.sink.by_reply[first["_webhook_id"]]) == 1, pushes
    assert not local.sink.rejected
    # the chart's model, with the key from the LLM Secret (the fake refuses any other)
    reasoner_env = {e["name"]: e.get("value") for e in cl.container_of(rendered.deployment("reasoner"))["env"]}
    assert {c["model"] for c in local.llm.calls} == {reasoner_env["AGENTBUS_LLM_MODEL"]}
    assert all(p.alive for p in chart.values())
    async with asyncio.timeout(15):  # the spans are exported in the background, about once a second
        while not {s.service for s in local.collector.spans}:
            await asyncio.sleep(0.5)


async def test_topics_have_the_charts_partitions_replication_and_min_insync_replicas(
        rendered: Rendered, local: Local, chart: dict[str, Proc]) -> None:
    env = {e["name"]: e.get("value") for e in cl.container_of(rendered.deployment("ingress"))["env"]}
    prefix = env["AGENTBUS_TOPIC_PREFIX"]
    partitions, replication = int(rendered.init_arg("partitions")), int(rendered.init_arg("replication-factor"))
    min_isr, retention = rendered.init_arg("min-insync-replicas"), rendered.init_arg("retention-ms")
    assert (replication, min_isr) == (3, "2"), "the production example asks for three replicas, two in sync"
    events, config = all_topics(prefix), config_topic(prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=local.kafka.bootstrap, request_timeout_ms=10000)
    await admin.start()
    try:
        described = {t["topic"]: t for t in await admin.describe_topics([*events, config])}
        resources = await admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, t) for t in [*events, config]])
        groups = {g[0] for g in await admin.list_consumer_groups()}
    finally:
        await admin.close()
    configs = {res[3]: {name: value for (name, value, *_rest) in res[4]}
               for resp in resources for res in resp.resources}
    for topic in events:
        parts = described[topic]["partitions"]
        assert len(parts) == partitions, topic
        assert {len(p["replicas"]) for p in parts} == {replication}, topic
        assert configs[topic]["min.insync.replicas"] == min_isr, topic
        assert configs[topic]["retention.ms"] == retention, topic
    assert len(described[config]["partitions"]) == 1
    assert {len(p["replicas"]) for p in described[config]["partitions"]} == {replication}
    assert configs[config]["min.insync.replicas"] == min_isr, "the configuration's topic, too"
    assert configs[config]["cleanup.policy"] == "compact"
    # the consumer groups the chart's autoscalers scale on are the ones the services join
    watched = {m["external"]["metric"]["selector"]["matchLabels"]["consumergroup"]
               for hpa in rendered.of("HorizontalPodAutoscaler") for m in hpa["spec"]["metrics"]
               if m["type"] == "External"}
    assert watched and watched <= groups, (watched, groups)
