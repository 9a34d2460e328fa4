"""Measuring helpers for benchmarks: wall time and peak memory of a child process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    """Wall time (s) and peak resident memory (MiB) of one child process."""

    seconds: float
    peak_mib: float


def measure_command(argv: list[str]) -> Measurement:
    """Run a command (any interpreter); measure it as a whole (imports included)."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - start
    stderr = proc.stderr.read() if proc.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"benchmark child failed:\n{stderr[-3000:]}")
    return Measurement(seconds=seconds, peak_mib=usage.ru_maxrss / 1024)


def run_measured(code: str) -> Measurement:
    """Run Python ``code`` in a fresh interpreter of this environment, measured."""
    return measure_command([sys.executable, "-c", code])


def print_table(title: str, header: list[str], rows: list[list[str]]) -> None:
    """Print an aligned plain-text table (benchmarks are read in a terminal or CI log)."""
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
    line = "  ".join("-" * w for w in widths)
    print(f"\n{title}\n{line}")
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    print(line)
    for row in rows:
        print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    print(line)
