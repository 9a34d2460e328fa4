"""Temporal splits: no training label window reaches past the test date, errors name the
problem, masks select the right rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from overblik.models import TemporalSplit, TemporalSplitter, split_masks

QUARTERS = list(pd.date_range("2023-01-01", "2025-01-01", freq="QS"))


def test_quarterly_dates_with_a_year_horizon() -> None:
    splits = TemporalSplitter(horizon_days=366).split(QUARTERS)
    # 2024-01-01 is 365 days after 2023-01-01: one day short of the horizon.
    assert [s.test_as_of for s in splits] == [pd.Timestamp(d) for d in
                                              ("2024-04-01", "2024-07-01", "2024-10-01",
                                               "2025-01-01")]
    last = splits[-1]
    assert last.train_as_of == tuple(pd.date_range("2023-01-01", "2024-01-01", freq="QS"))
    assert last.describe() == (
        "train on 5 as-of dates 2023-01-01 … 2024-01-01, test on 2025-01-01 (gap 366 days)"
    )


def test_n_splits_keeps_the_latest() -> None:
    splits = TemporalSplitter(horizon_days=366, n_splits=2).split(list(reversed(QUARTERS)) * 3)
    assert [s.test_as_of for s in splits] == [pd.Timestamp("2024-10-01"),
                                              pd.Timestamp("2025-01-01")]


def test_more_splits_than_possible_is_an_error() -> None:
    with pytest.raises(ValueError, match=r"n_splits=9 but .* allow only 4"):
        TemporalSplitter(horizon_days=366, n_splits=9).split(QUARTERS)


def test_too_few_dates_for_the_horizon_names_the_problem() -> None:
    with pytest.raises(ValueError, match=r"no temporal split possible: 5 as-of dates .* "
                                         r"horizon_days=366"):
        TemporalSplitter(horizon_days=366).split(QUARTERS[:5])


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"horizon_days": 0}, "horizon_days"), ({"horizon_days": 1.5}, "horizon_days"),
     ({"horizon_days": 30, "min_train_dates": 0}, "min_train_dates"),
     ({"horizon_days": 30, "n_splits": 0}, "n_splits")],
)
def test_config_is_checked_up_front(kwargs: dict[str, float], name: str) -> None:
    with pytest.raises(ValueError, match=name):
        TemporalSplitter(**kwargs)  # type: ignore[arg-type]


def test_a_split_cannot_train_on_its_test_date() -> None:
    with pytest.raises(ValueError, match="not before the test"):
        TemporalSplit(train_as_of=(QUARTERS[2],), test_as_of=QUARTERS[2])


def test_split_masks_select_rows_by_date() -> None:
    as_of = pd.Series(QUARTERS * 2)
    split = TemporalSplitter(horizon_days=366, n_splits=1).split(as_of)[0]
    train, test = split_masks(as_of, split)
    assert train.dtype == bool and test.dtype == bool
    assert set(as_of[train]) == set(split.train_as_of)
    assert set(as_of[test]) == {split.test_as_of}
    assert not (train & test).any()
    with pytest.raises(ValueError, match="no row has the test as-of date 2025-01-01"):
        split_masks(as_of[as_of < pd.Timestamp("2025-01-01")], split)


@settings(max_examples=200, deadline=None)
@given(
    offsets=st.sets(st.integers(0, 2000), min_size=1, max_size=25),
    horizon=st.integers(1, 800),
    min_train=st.integers(1, 4),
)
def test_no_training_label_window_reaches_past_the_test_date(
    offsets: set[int], horizon: int, min_train: int
) -> None:
    dates = [pd.Timestamp("2020-01-01") + pd.Timedelta(days=d) for d in offsets]
    splitter = TemporalSplitter(horizon_days=horizon, min_train_dates=min_train)
    eligible = {t: [d for d in dates if d + pd.Timedelta(days=horizon) <= t] for t in dates}
    expected = sorted(t for t, train in eligible.items() if len(train) >= min_train)
    if not expected:
        with pytest.raises(ValueError, match="no temporal split possible"):
            splitter.split(dates)
        return
    splits = splitter.split(dates)
    assert [s.test_as_of for s in splits] == expected
    for s in splits:
        # The label window (a, a + horizon] of every training date ends by the test date ...
        assert all(a + pd.Timedelta(days=horizon) <= s.test_as_of for a in s.train_as_of)
        # ... and every date that may be used is used, in order.
        assert list(s.train_as_of) == sorted(eligible[s.test_as_of])
        assert len(s.train_as_of) >= min_train
        assert s.gap_days >= horizon
        # Rows of a cohort over these dates: train and test rows are disjoint.
        train, test = split_masks(pd.Series(dates), s)
        assert test.sum() == 1 and not np.any(train & test)
