"""Schema evolution: the newer versions of inference.completed with their upcasters, and the compatibility rule for
committed schema versions (checked against every version of each schema file committed since the baseline)."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest

from agentbus.events import InferenceCompleted, InferenceCompletedData, InferenceCompletedV1, parse_event
from agentbus.schemacompat import incompatibilities
from agentbus.schemas import schema_of

ROOT = Path(__file__).parents[2]
SCHEMAS = ROOT / "schemas"


def v1_event() -> InferenceCompletedV1:
    return InferenceCompletedV1.new(
        InferenceCompletedData(agent="a", model="m", provider="p", prompt_tokens=12, completion_tokens=34,
                               finish_reason="stop"),
        source="reasoner", tenant="t", conversation="t/c/x",
    )


def test_a_v1_event_is_read_as_the_newest_version() -> None:
    """v1 → v2 moves the token counts; v2 → v3 starts sealing the text (a plain v2 payload stays as it is)."""
    old = v1_event()
    new = parse_event(old.to_bytes())
    assert type(new) is InferenceCompleted and new.version == 3
    assert new.data.usage.input_tokens == 12 and new.data.usage.output_tokens == 34
    assert new.id == old.id and new.data.finish_reason == "stop"
    assert type(parse_event(old.to_bytes(), upcast=False)) is InferenceCompletedV1


def test_compatible_and_incompatible_changes() -> None:
    base = schema_of("reply.generated", 1)
    data_def = base["$defs"]["ReplyGeneratedDataV1"]

    def changed(fn) -> list[str]:  # type: ignore[no-untyped-def]
        new = copy.deepcopy(base)
        fn(new["$defs"]["ReplyGeneratedDataV1"])
        return incompatibilities(base, new)

    assert incompatibilities(base, base) == []
    assert changed(lambda d: d["properties"].update(extra={"type": "string", "default": ""})) == []
    assert changed(lambda d: d["properties"].pop("model")) == ["$.data.model: removed"]
    assert changed(lambda d: d["properties"].update(extra={"type": "string"}) or d["required"].append("extra")) == [
        "$.data.extra: became required"]
    assert changed(lambda d: d["properties"]["text"].update(type="integer")) == [
        "$.data.text: type or allowed values changed"]
    assert changed(lambda d: d["properties"]["format"].update(enum=["text", "markdown", "html"])) == [
        "$.data.format: type or allowed values changed"]
    assert "text" in data_def["properties"]


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout


def test_committed_schema_versions_only_change_compatibly() -> None:
    """Every version of a schema file committed since schemas/BASELINE must be compatible with today's."""
    try:
        baseline = (SCHEMAS / "BASELINE").read_text().strip()
        _git("cat-file", "-e", f"{baseline}^{{commit}}")
    except (FileNotFoundError, subprocess.CalledProcessError):
        pytest.fail("schemas/BASELINE must name a commit present in this clone (clone with history)")
    checked = 0
    for path in sorted(SCHEMAS.glob("*.v[0-9]*.json")):  # event schemas (asyncapi.json is checked apart)
        current = json.loads(path.read_text())
        rel = path.relative_to(ROOT).as_posix()
        commits = _git("rev-list", f"{baseline}^..HEAD", "--", rel).split()
        for c in commits:
            try:
                old = json.loads(_git("show", f"{c}:{rel}"))
            except subprocess.CalledProcessError:
                continue  # not present in that commit
            problems = incompatibilities(old, current)
            assert not problems, f"{rel} changed incompatibly since {c[:10]}: {problems}; make a new version"
            checked += 1
    assert checked >= len(list(SCHEMAS.glob("*.v[0-9]*.json")))
