"""Fixtures for the features tests: keys and a small valid raw set."""

from __future__ import annotations

import pytest

from overblik.features._pseudonym import PseudonymKey, demo_key
from tests.features.raw_factory import RawSet, make_raw


@pytest.fixture(scope="session")
def key() -> PseudonymKey:
    """A real (non-demo) key, as a municipality would hold it."""
    return PseudonymKey(b"test-key-0123456789abcdef-not-a-real-secret", is_demo=False)


@pytest.fixture(scope="session")
def demo() -> PseudonymKey:
    return demo_key()


@pytest.fixture
def raw_set() -> RawSet:
    """A fresh valid raw set (tests corrupt their own copy)."""
    return make_raw()
