"""The Dockerfile and infra/docker-compose.yml, read as files (no Docker needed)."""

from __future__ import annotations

import json
import re
import shlex
from typing import Any

import pytest
import yaml

from agentbus.settings import SERVICES, Settings
from tests.k8s.helpers import ROOT

DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "infra" / "docker-compose.yml"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def stages(ins: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for i in ins:
        if i[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(i)
    return result


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text(encoding="utf-8"))


def test_dockerfile_is_multi_stage_on_slim_python_311(dockerfile: list[tuple[str, str]]) -> None:
    args = {a.split("=", 1)[0]: a.split("=", 1)[1] for k, a in dockerfile if k == "ARG" and "=" in a}
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+", args["PYTHON_IMAGE"]), "pin a slim Python 3.11 image"
    froms = [a for k, a in dockerfile if k == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS builder", "${PYTHON_IMAGE} AS runtime"]
    builder, runtime = stages(dockerfile)
    assert any(k == "RUN" and "python -m build --wheel" in a and "pip install /dist/agentbus-" in a for k, a in builder)
    # the runtime stage only copies the virtualenv: no compilers, no build front-end, no pip
    copies = [a for k, a in runtime if k == "COPY"]
    assert "--from=builder /opt/agentbus /opt/agentbus" in copies
    runtime_runs = " ".join(a for k, a in runtime if k == "RUN")
    for tool in ("apt-get install", "gcc", "build-essential", "python -m build"):
        assert tool not in runtime_runs
    assert "pip uninstall -y setuptools wheel pip" in runtime_runs


def test_dockerfile_runs_as_non_root_with_agentbus_entrypoint(dockerfile: list[tuple[str, str]]) -> None:
    runtime = stages(dockerfile)[-1]
    users = [a for k, a in runtime if k == "USER"]
    assert users and users[-1].split(":")[0] not in ("0", "root")
    assert int(users[-1].split(":")[0]) >= 10000  # numeric, so runAsNonRoot can check it
    assert [json.loads(a) for k, a in runtime if k == "ENTRYPOINT"] == [["agentbus"]]
    assert [json.loads(a) for k, a in runtime if k == "CMD"] == [["run", "ingress"]]
    assert ("EXPOSE", "8080") in runtime
    env = " ".join(a for k, a in runtime if k == "ENV")
    assert "AGENTBUS_HTTP_HOST=0.0.0.0" in env and "AGENTBUS_HTTP_PORT=8080" in env


def test_dockerfile_healthcheck_uses_python_not_curl(dockerfile: list[tuple[str, str]]) -> None:
    (hc,) = [a for k, a in stages(dockerfile)[-1] if k == "HEALTHCHECK"]
    options, _, cmd = hc.partition("CMD ")
    assert "--interval=" in options
    argv = json.loads(cmd)
    assert argv[:2] == ["python", "-c"] and "curl" not in hc
    code = argv[2]
    assert "/healthz" in code and "127.0.0.1" in code and "AGENTBUS_HTTP_PORT" in code
    compile(code, "healthcheck", "exec")


def test_dockerignore_keeps_the_context_small() -> None:
    ignored = (ROOT / ".dockerignore").read_text(encoding="utf-8").split()
    for entry in (".git", ".venv", ".agentbus", ".tools", "tests", "k8s"):
        assert entry in ignored
    for needed in ("libs", "services", "pyproject.toml", "README.md", "infra"):
        assert needed not in ignored
    dockerfile = instructions((ROOT / "Dockerfile").read_text())
    copied = [a.split()[0] for k, a in dockerfile if k == "COPY" and "--from" not in a]
    for src in copied:
        assert (ROOT / src).exists(), f"COPY {src}: not in the repository"


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def test_compose_has_the_infrastructure(compose: dict[str, Any]) -> None:
    s = compose["services"]
    images = {name: svc.get("image", "") for name, svc in s.items()}
    assert images["kafka"].startswith("apache/kafka:")
    assert s["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"  # KRaft, no ZooKeeper
    assert "zookeeper" not in s
    assert images["postgres"].startswith("postgres:")
    assert images["qdrant"].startswith("qdrant/qdrant:")
    assert images["jaeger"].startswith("jaegertracing/all-in-one:")
    assert "127.0.0.1:4318:4318" in s["jaeger"]["ports"]
    for name, image in images.items():
        assert ":" in image and not image.endswith(":latest"), f"{name}: pin the image version"
    assert "healthcheck" in s["kafka"] and "healthcheck" in s["postgres"]


def test_compose_runs_the_five_services_after_init(compose: dict[str, Any]) -> None:
    s = compose["services"]
    image = s["init"]["image"]
    assert s["init"]["command"][0] == "init"
    assert {"--replication-factor=1", "--min-insync-replicas=1"} <= set(s["init"]["command"])
    assert any(a.startswith("--partitions=") for a in s["init"]["command"])
    assert any(a.startswith("--retention-ms=") for a in s["init"]["command"])
    assert s["init"]["restart"] == "no"
    assert s["init"]["depends_on"] == {"kafka": {"condition": "service_healthy"},
                                       "postgres": {"condition": "service_healthy"}}
    for name in SERVICES:
        svc = s[name]
        assert svc["image"] == image and svc["build"]["context"] == ".."
        assert svc["command"] == ["run", name]
        assert svc["depends_on"]["init"] == {"condition": "service_completed_successfully"}
        for dep in svc["depends_on"]:
            assert dep in s, f"{name} depends on unknown service {dep}"
        assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]
    assert s["embeddings"]["image"] == image
    assert "127.0.0.1:8080:8080" in s["ingress"]["ports"]


def test_compose_binds_every_port_to_loopback(compose: dict[str, Any]) -> None:
    published = [(name, str(p)) for name, svc in compose["services"].items() for p in svc.get("ports", [])]
    assert {name for name, _ in published} >= {"ingress", "kafka", "jaeger"}
    for name, port in published:
        assert port.startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"


def test_the_image_carries_no_configuration(dockerfile: list[tuple[str, str]]) -> None:
    for stage in stages(dockerfile):
        for kind, arg in stage:
            if kind in ("COPY", "ADD"):
                assert "infra" not in arg and ".yaml" not in arg and ".env" not in arg, arg
            if kind == "ENV":
                assert "SECRET" not in arg and "whsec_" not in arg and "API_KEY" not in arg, arg


def test_compose_environment_is_made_of_real_settings(compose: dict[str, Any]) -> None:
    fields = {f"AGENTBUS_{name.upper()}" for name in Settings.model_fields}
    s = compose["services"]
    for name in (*SERVICES, "init"):
        env = s[name]["environment"]
        unknown = [k for k in env if k.startswith("AGENTBUS_") and k not in fields]
        assert not unknown, f"{name}: not settings: {unknown}"
        assert env["AGENTBUS_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
        assert env["AGENTBUS_KAFKA_IDEMPOTENT_PRODUCER"] == "true"
        assert env["AGENTBUS_CREATE_TOPICS"] == "false"
        url = env["AGENTBUS_DATABASE_URL"]
        assert url.startswith("postgresql://") and "@postgres:5432/" in url
        assert env["AGENTBUS_QDRANT_URL"] == "http://qdrant:6333"
        assert env["AGENTBUS_OTLP_ENDPOINT"] == "http://jaeger:4318"
        assert env["AGENTBUS_HTTP_HOST"] == "0.0.0.0"
        assert env["AGENTBUS_EMBEDDINGS_URL"] == "http://embeddings:8090/v1"
        for key in ("AGENTBUS_LLM_BASE_URL", "AGENTBUS_LLM_MODEL", "AGENTBUS_LLM_API_KEY"):
            assert env[key].startswith("${"), f"{key} comes from the host environment"
        # the endpoints point at compose services
        for url in (env["AGENTBUS_QDRANT_URL"], env["AGENTBUS_OTLP_ENDPOINT"], env["AGENTBUS_EMBEDDINGS_URL"]):
            assert url.split("//")[1].split(":")[0] in s
    # the settings parse as the services would parse them (compose fills ${...} from the host)
    env = {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)) for k, v in s["memory"]["environment"].items()}
    settings = Settings(**{k.removeprefix("AGENTBUS_").lower(): v for k, v in env.items()
                           if k.removeprefix("AGENTBUS_").lower() in Settings.model_fields})
    assert settings.kafka_idempotent_producer is True and settings.create_topics is False
    assert settings.port_for("memory") == 8080


def test_compose_mounts_the_config_the_services_read(compose: dict[str, Any]) -> None:
    s = compose["services"]
    for name in SERVICES:
        mounts = s[name]["volumes"]
        assert "./agentbus.yaml:/etc/agentbus/agentbus.yaml:ro" in mounts
        assert s[name]["environment"]["AGENTBUS_CONFIG_FILE"] == "/etc/agentbus/agentbus.yaml"
    assert (COMPOSE.parent / "agentbus.yaml").exists()


def test_compose_healthchecks_are_runnable(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        test = svc.get("healthcheck", {}).get("test")
        if not test:
            continue
        assert test[0] in ("CMD", "CMD-SHELL")
        if test[0] == "CMD" and test[1] == "python":
            compile(test[3], f"{name}-healthcheck", "exec")
        if test[0] == "CMD-SHELL":
            shlex.split(test[1])


def test_the_wheel_includes_every_services_migrations() -> None:
    import tomllib

    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"]
    package_data: dict[str, list[str]] = cfg.get("package-data", {})
    for service in SERVICES:
        pkg_dir = ROOT / "services" / service
        patterns = package_data.get("*", []) + package_data.get(f"agentbus.services.{service}", [])
        included = {p.resolve() for pattern in patterns for p in pkg_dir.glob(pattern)}
        sql = set((pkg_dir / "migrations").glob("*.sql"))
        assert sql, f"{service} has no migrations"
        missing = sorted(str(p.relative_to(ROOT)) for p in sql if p.resolve() not in included)
        assert not missing, f"not packaged: {missing}"
