"""The ``card`` and ``attach`` tools for an end-to-end platform, installed as a tool plugin, and a scripted model
that calls ``card``.

The reasoner does not offer these tools to agents by itself yet; a platform under test gets them the way an
operator adds any tool, an ``agentbus.tools`` entry point of an installed distribution (a ``*.dist-info``
folder on the services' ``PYTHONPATH``), so the reasoner code under test is the one that ships.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from tests.support.servers import tool_call

ENTRY_POINTS = """[agentbus.tools]
card = agentbus.services.reasoner.tools.card:CardTool
attach = agentbus.services.reasoner.tools.card:AttachTool
"""


def card_tools_env() -> dict[str, str]:
    """Environment for ``run_platform``: a distribution declaring the two tools, first on ``PYTHONPATH``."""
    root = Path(tempfile.mkdtemp(prefix="agentbus-card-tools-"))
    info = root / "agentbus_card_tools-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: agentbus-card-tools\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    path = os.pathsep.join(p for p in (str(root), os.environ.get("PYTHONPATH", "")) if p)
    return {"PYTHONPATH": path}


def card_script(trigger: str, card: dict[str, Any], text: str,
                attachments: tuple[dict[str, Any], ...] = ()) -> Any:
    """A model that answers a user message containing ``trigger`` with the ``card`` (arguments of the card
    tool) and ``attachments`` (of attach), then ``text``; anything else with ``answer: <message>``."""

    def script(body: dict[str, Any]) -> dict[str, Any]:
        last = body["messages"][-1]
        if last["role"] == "tool":
            return {"content": text}
        content = last["content"] if isinstance(last["content"], str) else str(last["content"])
        if trigger in content:
            calls = [tool_call("card", card, "call_card")]
            calls += [tool_call("attach", a, f"call_attach_{i}") for i, a in enumerate(attachments)]
            return {"tool_calls": calls}
        return {"content": f"answer: {content}"}

    return script
