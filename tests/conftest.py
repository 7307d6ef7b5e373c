from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.support.platform import Infra, start_infra


@pytest.fixture(scope="session")
async def infra() -> AsyncIterator[Infra]:
    """Broker (Tansu), PostgreSQL and the embeddings server, once per test session."""
    async with start_infra() as i:
        yield i
