"""Benchmark: the audit's bootstrap against fairlearn's own (``MetricFrame(n_boot=...)``).

The input: 1,000,000 scored rows (``BENCH_FAIRNESS_ROWS`` to shrink) with 4 sensitive
attributes (sex 2, age_band 5, origin 3, district 12): 4 attributes plus 6 pairs, 10
groupings. Ours: :func:`overblik.fairness.audit` with 1,000 Poisson resamples of every
group metric (rates, AUC, Brier, ECE) of every grouping, measured in a fresh process
(imports and data included).

The peer: fairlearn's ``MetricFrame`` with its bootstrap (``n_boot``, ``ci_quantiles``,
``random_state``) and the rate metrics only (selection rate, TPR, FPR, FNR, precision,
count), one frame per grouping. Each fairlearn resample recomputes the frame on resampled
rows, seconds per grouping at 100,000 rows, so 1,000 resamples of a million rows would take
days: it is measured with the point estimate and with 1 resample at a tenth and a twentieth
of the rows, and time = point + 1,000 x per-resample is extrapolated to the full rows with a
straight line through the two sizes (fairlearn has a fixed cost per metric call, so a line
through the origin would overstate it; a slope made negative by timing noise counts as flat,
which understates fairlearn). The table says what is measured and what is
extrapolated.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.perf._measure import print_table, run_measured

ROWS = int(os.environ.get("BENCH_FAIRNESS_ROWS", "1000000"))
N_BOOT = 1000
PEER_ROWS = sorted({max(2_000, ROWS // 20), max(4_000, ROWS // 10)})
PEER_BOOT = 1

DATA = """
import numpy as np, pandas as pd
def data(n):
    rng = np.random.default_rng(1)
    sens = pd.DataFrame({
        "sex": rng.choice(["F", "M"], n),
        "age_band": rng.choice(["18-24", "25-34", "35-49", "50-64", "65+"], n),
        "origin": rng.choice(["danish", "immigrant", "descendant"], n, p=[0.8, 0.12, 0.08]),
        "district": rng.choice([f"D{i:02d}" for i in range(12)], n),
    })
    latent = -1.5 + 0.5 * (sens["origin"] != "danish").to_numpy() + rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-latent))).astype(int)
    s = 1 / (1 + np.exp(-(latent + 0.7 * rng.normal(size=n))))
    return y, s, sens
"""

OURS = """
import json, time
from overblik.fairness import audit
y, s, sens = data({rows})
began = time.perf_counter()
res = audit(y, s, sens, threshold=0.3, n_boot={n_boot}, seed=0)
seconds = time.perf_counter() - began
with open({out!r}, "w") as f:
    json.dump({{"seconds": seconds, "groups": len(res.groups),
               "disparities": len(res.disparities)}}, f)
"""

PEER = """
import json, time
from itertools import combinations
from fairlearn.metrics import (MetricFrame, count, false_negative_rate, false_positive_rate,
                               selection_rate, true_positive_rate)
from sklearn.metrics import precision_score
metrics = {{"selection_rate": selection_rate, "tpr": true_positive_rate,
           "fpr": false_positive_rate, "fnr": false_negative_rate, "ppv": precision_score,
           "count": count}}
out = {{}}
for rows in {peer_rows}:
    y, s, sens = data(rows)
    pred = (s >= 0.3).astype(int)
    groupings = [[c] for c in sens.columns] + [list(p) for p in combinations(sens.columns, 2)]
    for n_boot in (0, {peer_boot}):
        began = time.perf_counter()
        for cols in groupings:
            MetricFrame(metrics=metrics, y_true=y, y_pred=pred, sensitive_features=sens[cols],
                        n_boot=n_boot or None,
                        ci_quantiles=[0.025, 0.975] if n_boot else None, random_state=0)
        out[f"{{rows}}_{{n_boot}}"] = time.perf_counter() - began
with open({out_path!r}, "w") as f:
    json.dump(out, f)
"""


def _line(x: list[int], t: list[float], at: int) -> float:
    """Straight line through two (rows, seconds) points, evaluated at ``at`` rows."""
    if len(x) == 1:
        return t[0] * at / x[0]
    slope = max((t[1] - t[0]) / (x[1] - x[0]), 0.0)  # timing noise must not make it shrink
    return t[1] + slope * (at - x[1])


@pytest.mark.parametrize("rows", [ROWS])
def test_bootstrap_against_fairlearn(tmp_path: Path, rows: int) -> None:
    ours_file = tmp_path / "ours.json"
    ours = run_measured(DATA + OURS.format(rows=rows, n_boot=N_BOOT, out=str(ours_file)))
    mine = json.loads(ours_file.read_text())
    point_file = tmp_path / "point.json"
    run_measured(DATA + OURS.format(rows=rows, n_boot=0, out=str(point_file)))
    point = json.loads(point_file.read_text())["seconds"]
    peer_file = tmp_path / "peer.json"
    peer = run_measured(DATA + PEER.format(peer_rows=PEER_ROWS, peer_boot=PEER_BOOT,
                                    out_path=str(peer_file)))
    fl = json.loads(peer_file.read_text())
    t0 = [fl[f"{r}_0"] for r in PEER_ROWS]
    per = [(fl[f"{r}_{PEER_BOOT}"] - fl[f"{r}_0"]) / PEER_BOOT for r in PEER_ROWS]
    fl_point = _line(PEER_ROWS, t0, rows)
    fl_total = fl_point + N_BOOT * _line(PEER_ROWS, per, rows)
    assert mine["groups"] > 150 and mine["disparities"] > 1000

    table = [
        ["ours: audit, point estimates", f"{rows:,}", "0", f"{point:.1f}", "measured",
         "1.00x"],
        ["ours: audit + bootstrap", f"{rows:,}", f"{N_BOOT:,}", f"{mine['seconds']:.1f}",
         f"measured ({ours.peak_mib:,.0f} MiB peak)", "1.00x"],
    ]
    for r, a, b in zip(PEER_ROWS, t0, per, strict=True):
        table.append(["fairlearn: point estimates", f"{r:,}", "0", f"{a:.1f}", "measured",
                      "-"])
        table.append(["fairlearn: one resample", f"{r:,}", "1", f"{b:.1f}",
                      f"measured (n_boot={PEER_BOOT})", "-"])
    table.append(["fairlearn: point estimates", f"{rows:,}", "0", f"{fl_point:,.0f}",
                  "extrapolated (line in rows)", f"{fl_point / point:,.0f}x"])
    table.append(["fairlearn: point + bootstrap", f"{rows:,}", f"{N_BOOT:,}",
                  f"{fl_total:,.0f}", "extrapolated (line in rows)",
                  f"{fl_total / mine['seconds']:,.0f}x"])
    print_table(
        f"fairness audit: 4 attributes + 6 pairs ({mine['groups']} groups), threshold 0.3; "
        f"wall seconds of the audit call (data made outside the timing); peer child "
        f"{peer.seconds:.0f} s in all",
        ["method", "rows", "resamples", "wall s", "how", "vs ours (same resamples)"],
        table,
    )
