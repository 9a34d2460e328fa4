"""Who gets places per group against who needs them: counts, shares, suppression, report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from overblik.fairness import audit, render_report
from overblik.fairness._places import places_by_group
from overblik.fairness._wording import text
from tests.fairness.test_report import SUPPRESSED, article, synthetic_scores, table_rows


def _planted() -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame]:
    """1,000 citizens: immigrants are 30 % of those in need but get 10 % of the places."""
    origin = np.array(["danish"] * 690 + ["immigrant"] * 300 + ["descendant"] * 10)
    need = np.zeros(1000, dtype=bool)
    need[:140] = True  # 140 Danish in need
    need[690:750] = True  # 60 immigrants in need
    assignment = np.full(1000, -1)
    assignment[:90] = 0  # 90 places to Danish citizens in need
    assignment[690:700] = 1  # 10 places to immigrants in need
    assignment[800:805] = 1  # and 5 to immigrants not in need (expected to benefit all the same)
    benefit = need.copy()
    benefit[800:805] = True
    return assignment, need, benefit, pd.DataFrame({"origin": origin})


def test_counts_and_shares_per_group() -> None:
    assignment, need, benefit, sensitive = _planted()
    report = places_by_group(assignment, need, benefit, sensitive, programmes=("a", "b"))
    assert report.total_places == 105 and report.total_in_need == 200
    immigrants = report.group("origin", "immigrant")
    assert (immigrants.n, immigrants.in_need, immigrants.places) == (300, 60, 15)
    assert immigrants.places_in_need == 10
    table = report.table().set_index("group")
    assert table.loc["immigrant", "need_share"] == pytest.approx(0.30)
    assert table.loc["immigrant", "place_share"] == pytest.approx(15 / 105)
    assert table.loc["immigrant", "in_need_place_rate"] == pytest.approx(10 / 60)
    assert table.loc["danish", "in_need_place_rate"] == pytest.approx(90 / 140)
    # Ten descendants: below the minimum count, no number shown.
    assert table.loc["descendant"].drop("attribute").isna().all()
    assert report.group("origin", "descendant").suppressed


def test_a_share_of_a_few_persons_is_not_shown() -> None:
    """Eight children in need in all: "D05 12.5 %" was one identifiable child. A share
    whose denominator is below min_count is missing (the group stays, with its size)."""
    district = np.array(["D01"] * 500 + ["D05"] * 500)
    need = np.zeros(1000, dtype=bool)
    need[[0, 1, 2, 3, 4, 5, 6, 500]] = True  # 7 in D01, 1 in D05
    assignment = np.full(1000, -1)
    assignment[:30] = 0  # 30 places, 7 of them to children in need
    benefit = np.ones(1000, dtype=bool)
    report = places_by_group(assignment, need, benefit, pd.DataFrame({"district": district}))
    table = report.table().set_index("group")
    assert table["need_share"].isna().all() and table["in_need_place_rate"].isna().all()
    assert table.loc["D01", "place_share"] == pytest.approx(1.0)  # of 30 places: shown
    assert table.loc["D05", "n"] == 500 and table.loc["D05", "benefit_share"] == 0.5


def test_lengths_must_agree() -> None:
    assignment, need, benefit, sensitive = _planted()
    with pytest.raises(ValueError, match="one row per citizen"):
        places_by_group(assignment[:-1], need, benefit, sensitive)


def test_the_report_shows_the_places_section_in_both_languages() -> None:
    assignment, need, benefit, sensitive = _planted()
    places = places_by_group(assignment, need, benefit, sensitive, programmes=("mentor",))
    y, score, attrs = synthetic_scores(1000, gap=0.0, seed=1)
    html = render_report(audit(y, score, attrs, threshold=0.4, n_boot=20), places=places)
    for language in ("da", "en"):
        page = article(html, language)
        assert f">{text('places', language)}</h2>" in page
        assert "mentor" in page
    rows = table_rows(html)
    # A group is suppressed, so counts are rounded (≈) and shares shown as percentages.
    assert "Herkomst indvandrere ≈300 30,0 % 31,7 % 14,3 % 16,7 %" in rows
    assert "Origin immigrants ≈300 30.0% 31.7% 14.3% 16.7%" in rows
    assert any("efterkommere" in r and SUPPRESSED in r for r in rows)
