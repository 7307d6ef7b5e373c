from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.platform import Infra, secret_for, start_infra
from tests.support.servers import FakeLLM, WebhookSink

pytest_plugins = ["tests.support.browser"]  # the console's browser fixtures (chromium, page)


@pytest.fixture(scope="session")
async def infra() -> AsyncIterator[Infra]:
    """Broker (Tansu), PostgreSQL and the embeddings server, once per test session."""
    async with start_infra() as i:
        yield i


@pytest.fixture(scope="module")
async def llm() -> AsyncIterator[FakeLLM]:
    """A fake OpenAI-compatible LLM per test module (a module may define its own ``llm`` instead)."""
    f = await FakeLLM().start()
    yield f
    await f.stop()


@pytest.fixture(scope="module")
async def sink() -> AsyncIterator[WebhookSink]:
    """A signed-push receiver per test module for the base config's channels (acme, globex)."""
    s = await WebhookSink({t: secret_for(t) for t in ("acme", "globex")}).start()
    yield s
    await s.stop()
