"""The Helm chart's workloads as local processes: each container's command and environment exactly as
``helm template`` renders them, but for what cannot exist on this machine, which is stood in for by name and
listed (``Substitutions``), so a test can say what it changed and check that nothing else was.

What cannot exist here, and what stands in for it:
  - Secrets (``secretKeyRef``): the database URL is the tests' PostgreSQL (a fresh database), credentials are
    local values; a secret with no stand-in fails the test rather than starting a service without it.
  - Files the Pod mounts (the ConfigMap's ``agentbus.yaml``, Strimzi's CA): written to a scratch folder, or
    dropped with the TLS they belong to.
  - Cluster DNS names: the chart's own Services are 127.0.0.1 on free ports (one process per Deployment);
    the embeddings Service is the tests' embeddings server.
  - The image: ``ENTRYPOINT`` and ``ENV`` read from the Dockerfile, the virtualenv's ``agentbus`` for the
    image's, ``PATH`` led by the virtualenv's bin instead of /opt/agentbus/bin, ``HOME`` a scratch folder.
External endpoints (Kafka, Qdrant, the LLM, the OTLP collector, the chat platform) are each replaced in the
test that uses this module, through ``Substitutions.replace``/``drop``, each with its reason.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


@dataclass
class Change:
    container: str  # the Deployment's or Job's component ("*": every one)
    name: str  # the environment variable (or "agentbus.yaml: <path>", "argv")
    chart: str | None  # what the chart says (a Secret reference as "secret name/key")
    local: str | None  # what runs here (None: left out)
    why: str


@dataclass
class Substitutions:
    """Every place where what runs here differs from what the chart rendered, with the reason."""

    changes: list[Change] = field(default_factory=list)

    def record(self, container: str, name: str, chart: str | None, local: str | None, why: str) -> None:
        self.changes.append(Change(container, name, chart, local, why))

    def names(self, container: str) -> set[str]:
        return {c.name for c in self.changes if c.container in (container, "*")}

    def table(self) -> str:
        rows = [f"  {c.container:<10} {c.name:<36} {c.chart!s:<52} -> {c.local!s:<40} ({c.why})"
                for c in self.changes]
        return "substituted (everything else is the chart's):\n" + "\n".join(rows)


def component(doc: dict[str, Any]) -> str:
    return str(doc["metadata"]["labels"]["app.kubernetes.io/component"])


def image_entrypoint() -> list[str]:
    found = re.findall(r"^ENTRYPOINT\s+(\[.*\])\s*$", DOCKERFILE.read_text(encoding="utf-8"), re.MULTILINE)
    assert found, "the Dockerfile has no ENTRYPOINT"
    return list(json.loads(found[-1]))


def image_env() -> dict[str, str]:
    """The runtime stage's ``ENV`` (the last stage's instructions, continuation lines joined)."""
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    runtime = re.split(r"^FROM\s", text, flags=re.MULTILINE)[-1]
    env: dict[str, str] = {}
    for line in re.findall(r"^ENV\s+(.*)$", runtime, re.MULTILINE):
        for token in shlex.split(line):
            k, _, v = token.partition("=")
            env[k] = v
    return env


def local_executable(name: str) -> str:
    """The image's program (``agentbus`` on its PATH) as this virtualenv has it."""
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else name


def service_hosts(docs: list[dict[str, Any]], namespace: str) -> dict[str, str]:
    """Every DNS name of the chart's Services (short, with namespace, ``.svc``, ``.svc.cluster.local``) ->
    the component it leads to."""
    out: dict[str, str] = {}
    for d in docs:
        if d["kind"] == "Service":
            name = d["metadata"]["name"]
            for host in (name, f"{name}.{namespace}", f"{name}.{namespace}.svc",
                         f"{name}.{namespace}.svc.cluster.local"):
                out[host] = component(d)
    return out


def replace_host(url: str, netloc: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=netloc))


def container_of(doc: dict[str, Any]) -> dict[str, Any]:
    containers = doc["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1, f"{doc['metadata']['name']}: one container expected"
    return dict(containers[0])


def argv_of(container: dict[str, Any], subs: Substitutions, comp: str) -> list[str]:
    command = list(container.get("command") or image_entrypoint())
    local = [local_executable(command[0]), *command[1:]]
    if local[0] != command[0]:
        subs.record(comp, "argv[0]", command[0], local[0], "the image's program, from this virtualenv")
    return [*local, *container.get("args", [])]


def base_env(home: Path, subs: Substitutions) -> dict[str, str]:
    """The image's ``ENV``, with PATH and HOME of this machine (recorded once, for every container)."""
    env = image_env()
    venv_bin = str(Path(sys.executable).parent)
    chart_path = env.get("PATH", "")
    env["PATH"] = venv_bin + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")
    subs.record("*", "PATH", chart_path, f"{venv_bin}:$PATH", "the image's virtualenv is this one")
    env["HOME"] = str(home)
    subs.record("*", "HOME", "/home/agentbus", str(home), "the image user's home: a scratch folder")
    return env


def env_of(container: dict[str, Any], comp: str, secrets: dict[str, str | None], subs: Substitutions) -> dict[str, str]:
    """The container's ``env`` with each ``secretKeyRef`` replaced by its stand-in in ``secrets`` (by variable
    name; None leaves the variable out); any other ``valueFrom`` or a secret with no stand-in fails."""
    env: dict[str, str] = {}
    for e in container.get("env", []):
        name = e["name"]
        if "value" in e:
            env[name] = str(e["value"])
            continue
        ref = (e.get("valueFrom") or {}).get("secretKeyRef")
        assert ref is not None, f"{comp}: {name} comes from {e.get('valueFrom')}: this harness has no stand-in"
        assert name in secrets, f"{comp}: {name} comes from Secret {ref['name']}/{ref['key']}: no local stand-in"
        value = secrets[name]
        subs.record(comp, name, f"secret {ref['name']}/{ref['key']}", None if value is None else "(local value)",
                    "a Secret of the cluster")
        if value is not None:
            env[name] = value
    return env


def set_env(env: dict[str, str], comp: str, name: str, value: str | None, why: str, subs: Substitutions) -> None:
    """Replace (or with None, leave out) one variable the chart set, and record it; a name the chart does not
    set is an error (the substitution would hide nothing and mean nothing)."""
    assert name in env, f"{comp}: the chart sets no {name}"
    subs.record(comp, name, env[name], value, why)
    if value is None:
        del env[name]
    else:
        env[name] = value
