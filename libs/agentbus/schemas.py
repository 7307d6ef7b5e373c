"""JSON Schemas of the event catalogue, generated from the pydantic models into ``schemas/``, the AsyncAPI
document of the topics beside them (``asyncapi.json``), and the operator API's OpenAPI document
(``openapi.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agentbus.events import CATALOGUE


def schema_of(type_: str, version: int) -> dict[str, Any]:
    cls = CATALOGUE[(type_, version)]
    schema = cls.model_json_schema()
    schema["$id"] = f"https://agentbus.dev/schemas/{type_}.v{version}.json"
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


ASYNCAPI = "asyncapi.json"
OPENAPI = "openapi.json"


def openapi_document() -> dict[str, Any]:
    """The operator API's OpenAPI document, from the app ingress serves (built on fakes: nothing is opened)."""
    import importlib

    module = importlib.import_module("agentbus.services.ingress.api.openapi")
    doc: dict[str, Any] = module.document()
    return doc


def generated() -> dict[str, str]:
    """Every generated file's name and text."""
    from agentbus.asyncapi import document

    files = {f"{t}.v{v}.json": render(schema_of(t, v)) for (t, v) in sorted(CATALOGUE)}
    files[ASYNCAPI] = render(document())
    files[OPENAPI] = render(openapi_document())
    return files


def write_schemas(out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in generated().items():
        path = out / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written


def diff_schemas(out: Path) -> list[str]:
    problems = []
    for name, text in generated().items():
        path = out / name
        if not path.exists():
            problems.append(f"{path}: missing (run `agentbus schemas`)")
        elif path.read_text(encoding="utf-8") != text:
            problems.append(f"{path}: differs from the models (run `agentbus schemas`)")
    return problems
