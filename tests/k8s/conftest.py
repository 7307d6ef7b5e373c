"""Session fixtures for the chart tests: one Helm binary, the default and production renders."""

from __future__ import annotations

from typing import Any

import pytest

from tests.k8s.helpers import PRODUCTION, Helm, helm_binary


@pytest.fixture(scope="session")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(helm_binary(), tmp_path_factory.mktemp("helm-values"))


@pytest.fixture(scope="session")
def default_docs(helm: Helm) -> list[dict[str, Any]]:
    return helm.render()


@pytest.fixture(scope="session")
def production_docs(helm: Helm) -> list[dict[str, Any]]:
    return helm.render(PRODUCTION)
