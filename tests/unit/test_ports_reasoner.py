"""The reasoner's adapters and its unit-test fakes implement its ports, member by member."""

from __future__ import annotations

import pytest

from agentbus.services.reasoner.ledger import Ledger
from agentbus.services.reasoner.llm import ChatClient
from agentbus.services.reasoner.ports import ChatModel, InferenceLedger, Tool, Toolbox
from agentbus.services.reasoner.tools.base import TypedTool
from tests.support.ports import assert_implements
from tests.unit.fakes_reasoner import FakeInferenceLedger, FakeToolbox, RecordingTool, ScriptedLLM


@pytest.mark.parametrize(("impl", "port"), [
    (Ledger, InferenceLedger), (FakeInferenceLedger, InferenceLedger),
    (ChatClient, ChatModel), (ScriptedLLM, ChatModel),
    (RecordingTool, Tool), (TypedTool, Tool),
    (FakeToolbox, Toolbox),
])
def test_implements(impl: type, port: type) -> None:
    assert_implements(impl, port)
