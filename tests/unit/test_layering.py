"""The direction of dependencies, read from the source: handlers know ports, adapters know libraries.

A handler that imports a PostgreSQL or HTTP class (or another service) can no longer be tested with fakes
and hides its side effects; these tests name the module and the import when that happens."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ROOT / "services"

# each service's handler module, and the modules of its own service it may import: its ports and pure
# domain modules that import no adapter or client library themselves
HANDLERS = {
    "ingress": ("accept.py", {"ports", "inbound"}),
    "memory": ("handlers.py", {"ports", "recallgate"}),
    "reasoner": ("handlers.py", {"ports", "prompt", "loop", "parts", "progress", "masking", "summaries"}),
    "scheduler": ("handlers.py", {"ports", "schedule"}),
    "egress": ("handlers.py", {"ports"}),
}
CLIENT_LIBRARIES = {"psycopg", "psycopg_pool", "httpx", "aiohttp", "aiokafka", "qdrant_client", "starlette",
                    "uvicorn"}


def imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


def _own(service: str, name: str) -> str | None:
    """The module of ``service`` that ``name`` imports (``agentbus.services.memory.ports`` → ``ports``)."""
    prefix = f"agentbus.services.{service}."
    return name.removeprefix(prefix).split(".")[0] if name.startswith(prefix) else None


@pytest.mark.parametrize("service", sorted(HANDLERS))
def test_handlers_import_only_the_kernel_their_ports_and_pure_modules(service: str) -> None:
    module, allowed = HANDLERS[service]
    problems = []
    for path in [SERVICES / service / module, *(SERVICES / service / f"{m}.py" for m in allowed)]:
        for name in imports(path):
            own = _own(service, name)
            if own is not None and own not in allowed:
                problems.append(f"{path.name} imports {name}")
            elif name.startswith("agentbus.services.") and own is None:
                problems.append(f"{path.name} imports another service: {name}")
            elif name.split(".")[0] in CLIENT_LIBRARIES:
                problems.append(f"{path.name} imports the client library {name}")
    assert not problems, problems


@pytest.mark.parametrize("service", sorted(HANDLERS))
def test_no_service_imports_another_service(service: str) -> None:
    problems = [f"{path.relative_to(ROOT)} imports {name}"
                for path in (SERVICES / service).rglob("*.py") for name in imports(path)
                if name.startswith("agentbus.services.") and _own(service, name) is None]
    assert not problems, problems


def test_the_kernel_imports_no_service_except_through_importlib() -> None:
    problems = [f"{path.relative_to(ROOT)} imports {name}" for path in (ROOT / "libs" / "agentbus").rglob("*.py")
                for name in imports(path) if name.startswith("agentbus.services")]
    assert not problems, problems
