"""Benchmark: generate and ingest at 100k and 1M citizens (5 years).

Each step runs in a fresh interpreter so its peak memory is its own. The peer is the I/O
floor measured in the same run: reading every raw extract and writing it again with
pyarrow, with no validation — ingest's ratio to it says what validation and
pseudonymisation cost on top of moving the bytes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from tests.perf._measure import print_table, run_measured

SIZES = [int(s) for s in os.environ.get("BENCH_CITIZENS", "100000,1000000").split(",")]


def _rows(folder: Path) -> int:
    return sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("*.parquet"))


@pytest.mark.parametrize("citizens", [SIZES])
def test_generate_and_ingest(tmp_path_factory: pytest.TempPathFactory, citizens: list[int]) -> None:
    rows_out: list[list[str]] = []
    for n in citizens:
        base = tmp_path_factory.mktemp(f"bench{n}")
        gen = run_measured(
            "from pathlib import Path\n"
            "from overblik.features import SyntheticConfig, generate_municipality\n"
            f"generate_municipality(SyntheticConfig(citizens={n}, years=5, seed=1), "
            f"Path({str(base)!r}))\n"
        )
        raw_rows = _rows(base / "raw")
        ing = run_measured(
            "from pathlib import Path\n"
            "from overblik.features import ingest, demo_key\n"
            f"ingest(Path({str(base / 'raw')!r}), Path({str(base / 'clean')!r}), demo_key())\n"
        )
        floor = run_measured(
            "from pathlib import Path\nimport pyarrow.parquet as pq\n"
            f"out = Path({str(base / 'floor')!r}); out.mkdir()\n"
            f"for p in Path({str(base / 'raw')!r}).glob('*.parquet'):\n"
            "    pq.write_table(pq.read_table(p), out / p.name)\n"
        )
        report = json.loads((base / "clean" / "ingest_report.json").read_text())
        accepted = sum(s["accepted"] for s in report["sources"].values())
        quarantined = sum(s["quarantined"] for s in report["sources"].values())
        assert accepted + quarantined == raw_rows
        for step, m in (("generate", gen), ("ingest", ing), ("I/O floor (peer)", floor)):
            rows_out.append([
                step, f"{n:,}", f"{raw_rows:,}", f"{m.seconds:.1f}", f"{m.peak_mib:,.0f}",
                f"{raw_rows / m.seconds:,.0f}", f"{m.seconds / floor.seconds:.1f}x",
            ])
    print_table(
        "generate and ingest, 5 years (each step a fresh process, imports included)",
        ["step", "citizens", "rows", "wall s", "peak MiB", "rows/s", "vs I/O floor"],
        rows_out,
    )
