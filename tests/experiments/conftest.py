"""A small ingested synthetic municipality, shared by the experiment tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from overblik.features import SyntheticConfig, demo_key, generate_municipality, ingest


@pytest.fixture(scope="session")
def municipality(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Generated and ingested once: ``<root>/m/raw``, ``<root>/m/truth``, ``<root>/clean``."""
    root = tmp_path_factory.mktemp("municipality")
    generate_municipality(SyntheticConfig(citizens=8000, years=5, seed=7), root / "m")
    ingest(root / "m" / "raw", root / "clean", demo_key())
    return root
