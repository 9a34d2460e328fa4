"""Overlap diagnostics: trimming counts, quantiles per arm, and the three warning rules."""

from __future__ import annotations

import numpy as np
import pytest

from overblik.models._propensity import (
    QUANTILES,
    check_trim,
    overlap_report,
    trimmed_mask,
)


def test_trimmed_mask_is_outside_the_closed_bounds() -> None:
    e = np.array([0.0, 0.01, 0.02, 0.5, 0.99, 0.995, 1.0])
    assert trimmed_mask(e, (0.01, 0.99)).tolist() == [True, False, False, False, False, True,
                                                      True]


def test_counts_reconcile_with_the_mask() -> None:
    rng = np.random.default_rng(0)
    e = rng.beta(0.5, 0.5, size=2000)
    t = rng.binomial(1, e)
    report = overlap_report(e, t, trim=(0.05, 0.95))
    mask = trimmed_mask(e, (0.05, 0.95))
    assert report.n == 2000
    assert report.n_treated == int(t.sum())
    assert report.trimmed == int(mask.sum()) > 0
    assert report.trimmed_treated == int((mask & (t == 1)).sum())
    assert report.trimmed_share == pytest.approx(mask.mean())
    assert set(report.quantiles) == {"min", "p01", "p05", "p10", "p25", "p50", "p75", "p90",
                                     "p95", "p99", "max"}
    assert len(report.quantiles) == len(QUANTILES)
    assert report.quantiles["min"] == pytest.approx(e.min())
    assert report.quantiles_treated["p50"] == pytest.approx(np.median(e[t == 1]))
    assert report.quantiles_untreated["max"] == pytest.approx(e[t == 0].max())
    # A beta(0.5, 0.5) propensity puts far more than 5 % of rows near 0 and 1.
    assert any("poor overlap" in w and "trimmed" in w for w in report.warnings)
    as_json = report.as_dict()
    assert as_json["trimmed"] == report.trimmed
    assert as_json["propensity_quantiles"] == report.quantiles


def test_good_overlap_gives_no_warning() -> None:
    rng = np.random.default_rng(1)
    e = rng.uniform(0.3, 0.7, size=1000)
    t = rng.binomial(1, e)
    report = overlap_report(e, t)
    assert report.trimmed == 0
    assert report.warnings == []
    # Weights between 1/0.7 and 1/0.3: the effective sample size stays near the arm size.
    assert report.ess_treated > 0.8 * t.sum()


def test_uneven_weights_warn_about_effective_sample_size() -> None:
    # One treated row with a tiny (but untrimmed) propensity carries most of the weight.
    e = np.full(400, 0.5)
    e[0] = 0.011
    t = np.zeros(400, dtype=int)
    t[:30] = 1
    report = overlap_report(e, t, label="mentor")
    assert report.trimmed == 0
    assert report.ess_treated < 0.2 * 30
    assert any("effective sample size" in w and "mentor" in w and "treated" in w
               for w in report.warnings)


def test_too_few_rows_after_trimming_warn() -> None:
    e = np.r_[np.full(10, 0.5), np.full(10, 0.999), np.full(200, 0.4)]
    t = np.r_[np.ones(20, dtype=int), np.zeros(200, dtype=int)]
    report = overlap_report(e, t)
    assert report.trimmed == 10 and report.trimmed_treated == 10
    assert any("only 10 treated rows remain" in w for w in report.warnings)


@pytest.mark.parametrize("trim", [(0.5, 0.4), (-0.1, 0.9), (0.1, 1.2), ("a", 0.9), (0.1,)])
def test_bad_trim_bounds_are_refused(trim: tuple[float, float]) -> None:
    with pytest.raises(ValueError, match="trim="):
        check_trim(trim)


def test_check_trim_accepts_strings_of_numbers() -> None:
    assert check_trim(("0.05", "0.95")) == (0.05, 0.95)  # type: ignore[arg-type]


@pytest.mark.parametrize(("e", "t", "match"), [
    (np.full(4, 0.5), ["yes", "no", "yes", "no"], "T must be 0/1"),
    (np.full(4, 0.5), [0, 2, 0, 2], "value 2 at row 1"),
    (np.full(4, 0.5), [0, 1, 0], r"T must be .* per row of propensity \(4\)"),
    (np.array([0.5, np.nan, 0.5, 0.5]), [0, 1, 0, 1], "propensity .* nan at row 1"),
    (np.array([0.5, 0.5, 1.5, 0.5]), [0, 1, 0, 1], r"in \[0, 1\]; 1\.5 at row 2")])
def test_malformed_treatment_or_propensity_is_refused(e: np.ndarray, t: list[object],
                                                      match: str) -> None:
    with pytest.raises(ValueError, match=match):
        overlap_report(e, t)
