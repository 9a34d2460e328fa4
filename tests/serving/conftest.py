"""One trained, approved champion with a profile store and keys for every role, shared by all
service tests; the service runs in process through BentoML's ASGI app."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.serving._setup import Served, build_served, in_process

if TYPE_CHECKING:
    from starlette.testclient import TestClient


@pytest.fixture(scope="session")
def served(tmp_path_factory: pytest.TempPathFactory) -> Served:
    """Municipality (4,000 citizens), small child_placement model as champion, profiles."""
    return build_served(tmp_path_factory.mktemp("served"))


@pytest.fixture(scope="session")
def client(served: Served) -> Iterator[TestClient]:
    """The BentoML service in process (its lifespan starts and stops the engine)."""
    with in_process(served.settings()) as c:
        yield c
