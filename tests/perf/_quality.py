"""The synthetic municipality the quality benches share (100k citizens, 5 years, seed 1).

Generated and ingested once into ``data/bench-quality/c<N>`` through the installed
``overblik`` command, and reused by every bench that compares with the truth.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CITIZENS = int(os.environ.get("BENCH_QUALITY_CITIZENS", "100000"))
BASE = ROOT / "data" / "bench-quality" / f"c{CITIZENS}"


def overblik(*args: str) -> None:
    """Run the installed ``overblik`` command; its output is not part of the bench table."""
    cli = Path(sys.executable).with_name("overblik")
    subprocess.run([str(cli), *args], check=True, stdout=subprocess.DEVNULL)


def quality_municipality() -> tuple[Path, Path]:
    """The ingested ``clean`` folder and the ``truth`` folder, made on first use."""
    clean, truth = BASE / "clean", BASE / "municipality" / "truth"
    if not (clean / "ingest_report.json").exists():
        overblik("generate", "--citizens", str(CITIZENS), "--years", "5", "--seed", "1",
                 "--out", str(BASE / "municipality"))
        overblik("ingest", "--raw", str(BASE / "municipality" / "raw"), "--out", str(clean),
                 "--demo-key")
    return clean, truth
