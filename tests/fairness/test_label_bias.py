"""Label bias: the synthetic municipality's surveillance switch shows up, and only when on.

Two small municipalities from the same seed, one with the surveilled group's recording
multiplied by 3 and one without; no family support (its places would lower the recorded
placements below the need, which is not label bias). Recorded labels come from the
ingested data through ``cohort`` and ``label``, as in training; the true probability of the
need is the truth's ``p_need``. As-of dates one year apart, so the rows' windows do not
overlap and the ratio's interval holds.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from overblik.fairness import LabelBiasReport, label_bias_diagnostics
from overblik.features import (
    EventTables,
    InputError,
    Manifest,
    SyntheticConfig,
    cohort,
    demo_key,
    generate_municipality,
    ingest,
    label,
)

SURVEILLED = ("immigrant", "descendant")


def _diagnose(root: Path, bias: float) -> LabelBiasReport:
    generate_municipality(SyntheticConfig(citizens=10_000, years=5, seed=2, label_bias=bias,
                                          surveilled_group=SURVEILLED,
                                          capacity_family_support=0.0), root / "m")
    ingest(root / "m" / "raw", root / "clean", demo_key())
    tables = EventTables.load(root / "clean")
    dates = [pd.Timestamp(d) for d in Manifest.read(root / "m" / "manifest.json").as_of_dates
             if d.endswith("-01-01")]
    rows = cohort(tables, dates, "children_in_families")
    rows = rows.assign(y=label(tables, rows, "child_placement", 366).to_numpy())
    truth = pd.read_parquet(root / "m" / "truth" / "truth.parquet",
                            columns=["person_id", "as_of", "outcome", "p_need"])
    truth = truth[truth["outcome"] == "child_placement"]
    joined = rows.merge(truth, on=["person_id", "as_of"], how="left", validate="one_to_one")
    assert joined["p_need"].notna().all()
    joined = joined.merge(tables.population[["person_id", "origin"]], on="person_id")
    sensitive = pd.DataFrame({
        "surveilled": np.where(joined["origin"].isin(SURVEILLED), "yes", "no"),
        "origin": joined["origin"].to_numpy(),
    })
    return label_bias_diagnostics(joined["y"], joined["p_need"], sensitive, min_count=20)


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, LabelBiasReport]:
    return {name: _diagnose(tmp_path_factory.mktemp(name), bias)
            for name, bias in (("on", 3.0), ("off", 1.0))}


def test_surveilled_group_is_over_recorded_only_with_the_switch_on(reports) -> None:
    on = reports["on"].group("surveilled", "yes")
    off = reports["off"].group("surveilled", "yes")
    print(f"\nsurveilled ratio: on {on.ratio:.2f} [{on.ratio_ci_low:.2f}, "
          f"{on.ratio_ci_high:.2f}], off {off.ratio:.2f} [{off.ratio_ci_low:.2f}, "
          f"{off.ratio_ci_high:.2f}]")
    assert on.ratio > 1.5 and on.ratio_ci_low > 1.0
    assert on.recorded_rate > on.true_rate
    assert 0.7 < off.ratio < 1.3 and off.ratio_ci_low < 1.0 < off.ratio_ci_high
    for report in reports.values():  # the others are recorded as they are at risk
        rest = report.group("surveilled", "no")
        assert rest.ratio_ci_low < 1.0 < rest.ratio_ci_high


def test_table_suppresses_small_groups() -> None:
    rng = np.random.default_rng(0)
    p = rng.random(200) * 0.3
    y = (rng.random(200) < p).astype(int)
    sens = pd.DataFrame({"g": ["big"] * 190 + ["small"] * 10})
    report = label_bias_diagnostics(y, p, sens, min_count=20)
    table = report.table()
    assert list(table.columns) == ["attribute", "group", "n", "recorded_rate", "true_rate",
                                   "ratio", "ratio_ci_low", "ratio_ci_high"]
    small = table[table["group"] == "small"]
    assert small["n"].isna().all() and small[["recorded_rate", "ratio"]].isna().all(axis=None)
    big = report.group("g", "big")
    assert big.ratio == pytest.approx(y[:190].sum() / p[:190].sum())
    assert report.overall.n == 200


def test_bad_input() -> None:
    sens = pd.DataFrame({"g": ["a"] * 4})
    with pytest.raises(InputError, match=r"true_probability: 1\.5 at row 2"):
        label_bias_diagnostics([0, 1, 0, 1], [0.1, 0.2, 1.5, 0.3], sens)
    with pytest.raises(InputError, match="recorded: value 3 at row 0"):
        label_bias_diagnostics([3, 1, 0, 1], [0.1, 0.2, 0.5, 0.3], sens)
    with pytest.raises(InputError, match="true_probability has 3 rows but recorded has 4"):
        label_bias_diagnostics([0, 1, 0, 1], [0.1, 0.2, 0.5], sens)
