"""Benchmark: point-in-time profiles for every person x 9 quarterly as-of dates.

At 100k and 1M citizens (5 years; ``BENCH_CITIZENS`` picks the sizes) the profile builder
(``EventTables.load`` of the needed columns + ``build_profiles``) runs on the benchmark's
spec (``profiles_spec.yaml``: count, sum, max, days_since_last and cross-silo blocks, 38
features) next to two peers computing the same features in the same run:

- DuckDB: one SQL query over the same Parquet files (``profiles_peers.profile_sql``), using
  every core (ours uses one);
- featuretools 1.31 Deep Feature Synthesis (``profiles_featuretools.py``) in its own
  environment ``data/bench-ft`` (it needs pandas<2.3, numpy<2; made with uv on first use),
  at the smallest size, capped by ``BENCH_FT_CITIZENS`` (default 100,000; 0 = skip): it
  needs about 3 minutes at 100k, so half an hour at 1M.

Every step is a fresh process measured as a whole (imports and reading the files included),
so its peak memory is its own. Each peer's values for 500 persons at every as-of date are
checked against ours before the table is printed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from overblik.features._feature_spec import expand, parse_feature_spec
from tests.perf._measure import Measurement, measure_command, print_table, run_measured
from tests.perf.profiles_peers import feature_plan, plan_json, profile_sql

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
SPEC = HERE / "profiles_spec.yaml"
SIZES = [int(s) for s in os.environ.get("BENCH_CITIZENS", "100000,1000000").split(",")]
FT_CAP = int(os.environ.get("BENCH_FT_CITIZENS", "100000"))
FT_ENV = ROOT / "data" / "bench-ft"
FT_PACKAGES = ["featuretools==1.31.0", "pandas<2.3", "numpy<2", "pyarrow<18", "setuptools<81"]
DATES = [str(d.date()) for d in pd.date_range("2023-01-01", "2025-01-01", freq="QS")]
SAMPLE = 500  # persons (the first by id) whose rows are compared across the three


def _municipality(base: Path, citizens: int) -> Path:
    """Generate and ingest (not measured); returns the clean folder."""
    code = ("from pathlib import Path\n"
            "from overblik.features import SyntheticConfig, generate_municipality, ingest, "
            "demo_key\n"
            f"base = Path({str(base)!r})\n"
            f"generate_municipality(SyntheticConfig(citizens={citizens}, years=5, seed=1), "
            "base / 'm')\n"
            "ingest(base / 'm' / 'raw', base / 'clean', demo_key())\n")
    subprocess.run([sys.executable, "-c", code], check=True, stdout=subprocess.DEVNULL)
    return base / "clean"


def _ours(clean: Path, out: Path) -> Measurement:
    return run_measured(
        "from pathlib import Path\nimport numpy as np, pandas as pd, yaml\n"
        "from overblik.features._feature_spec import parse_feature_spec, required_columns\n"
        "from overblik.features._tables import EventTables\n"
        "from overblik.features._profiles import build_profiles\n"
        f"spec = parse_feature_spec(yaml.safe_load(Path({str(SPEC)!r}).read_text())"
        "['features'])\n"
        f"tables = EventTables.load(Path({str(clean)!r}), columns=required_columns(spec))\n"
        "ids = tables.population['person_id'].to_numpy()\n"
        f"dates = pd.to_datetime({DATES!r})\n"
        "rows = pd.DataFrame({'person_id': np.tile(ids, len(dates)),\n"
        "                     'as_of': np.repeat(dates, len(ids))})\n"
        "X = build_profiles(tables, rows, spec).X\n"
        f"sample = np.sort(ids)[:{SAMPLE}]\n"
        "X[X.index.get_level_values('person_id').isin(sample)].reset_index()"
        f".to_parquet({str(out)!r})\n")


def _duckdb(clean: Path, sql: Path, out: Path) -> Measurement:
    return run_measured(
        "from pathlib import Path\nimport duckdb, numpy as np, pandas as pd\n"
        f"res = duckdb.connect().sql(Path({str(sql)!r}).read_text()).df()\n"
        f"ids = pd.read_parquet({str(clean / 'population.parquet')!r}, columns=['person_id'])"
        "['person_id'].to_numpy()\n"
        f"res[res['person_id'].isin(np.sort(ids)[:{SAMPLE}])].to_parquet({str(out)!r})\n")


def _ft_python() -> Path | None:
    """The featuretools environment's interpreter (created with uv on first use)."""
    python = FT_ENV / "bin" / "python"
    if python.exists():
        return python
    uv = shutil.which("uv") or str(ROOT / ".tools" / "bin" / "uv")
    try:
        subprocess.run([uv, "venv", str(FT_ENV), "--python", "3.11", "-q"], check=True)
        subprocess.run([uv, "pip", "install", "-q", "--python", str(python), *FT_PACKAGES],
                       check=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"\nfeaturetools environment not available ({exc}): peer skipped")
        return None
    return python


def _assert_same(ours: Path, peer: Path, names: list[str], who: str) -> None:
    a = pd.read_parquet(ours).sort_values(["person_id", "as_of"]).reset_index(drop=True)
    b = pd.read_parquet(peer)
    b["as_of"] = b["as_of"].astype("datetime64[ns]")
    b = b.sort_values(["person_id", "as_of"]).reset_index(drop=True)
    assert len(a) == len(b) == SAMPLE * len(DATES), who
    assert (a["person_id"].to_numpy() == b["person_id"].to_numpy()).all(), who
    for name in names:
        np.testing.assert_allclose(a[name].to_numpy(), b[name].to_numpy(dtype=float),
                                   rtol=1e-9, err_msg=f"{who}: {name}")


@pytest.mark.parametrize("citizens", [SIZES])
def test_profiles_against_duckdb_and_featuretools(tmp_path_factory: pytest.TempPathFactory,
                                                  citizens: list[int]) -> None:
    spec = parse_feature_spec(yaml.safe_load(SPEC.read_text())["features"])
    names = [f.name for f in expand(spec)]
    plan = feature_plan(spec)
    ft_size = min(min(citizens), FT_CAP) if FT_CAP > 0 else None  # 0 switches the peer off
    table: list[list[str]] = []
    for n in sorted({*citizens, *([ft_size] if ft_size else [])}):
        base = tmp_path_factory.mktemp(f"profiles{n}")
        clean = _municipality(base, n)
        persons = len(pd.read_parquet(clean / "population.parquet", columns=["person_id"]))
        rows = persons * len(DATES)
        ours = _ours(clean, base / "ours.parquet")
        results: list[tuple[str, Measurement]] = [("overblik load + build_profiles", ours)]
        if n in citizens:
            sql = base / "profiles.sql"
            sql.write_text(profile_sql(plan, clean, DATES))
            duck = _duckdb(clean, sql, base / "duckdb.parquet")
            _assert_same(base / "ours.parquet", base / "duckdb.parquet", names, "duckdb")
            results.append(("DuckDB, one SQL query (peer)", duck))
        python = _ft_python() if n == ft_size else None
        if python is not None:
            plan_path = base / "plan.json"
            plan_path.write_text(json.dumps(plan_json(plan)))
            ft = measure_command([str(python), str(HERE / "profiles_featuretools.py"),
                                   str(clean), str(plan_path), ",".join(DATES),
                                   str(base / "featuretools.parquet")])
            _assert_same(base / "ours.parquet", base / "featuretools.parquet", names,
                         "featuretools")
            results.append(("featuretools 1.31 DFS (peer)", ft))
        for step, m in results:
            ratio = ("ours/peer " + f"{ours.seconds / m.seconds:.2f}x" if "DuckDB" in step
                     else f"peer/ours {m.seconds / ours.seconds:.1f}x" if "feature" in step
                     else "")
            table.append([step, f"{n:,}", f"{rows:,}", str(len(names)), f"{m.seconds:.1f}",
                          f"{m.peak_mib:,.0f}", f"{rows / m.seconds:,.0f}", ratio])
    print_table(
        "profiles: every person x 9 as-of dates, 38 features (each step a fresh process, "
        "imports and Parquet reads included; values of 500 persons checked equal)",
        ["step", "citizens", "rows", "features", "wall s", "peak MiB", "rows/s", "ratio"],
        table)
