"""Temporal validation: train on earlier as-of dates, test on a later one, with a gap.

A label at as-of date ``a`` with horizon ``h`` looks at the window ``(a, a + h]``. A training
date is allowed for a test date ``t`` only when ``a + h <= t``: no training label may see
anything that happens after the test date's profiles were taken, otherwise the model learns
from the test period itself (its outcomes leak back through overlapping label windows).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = ["TemporalSplit", "TemporalSplitter", "split_masks"]


def _day(ts: pd.Timestamp) -> str:
    return ts.strftime("%Y-%m-%d")


@dataclass(frozen=True)
class TemporalSplit:
    """One temporal split: the as-of dates to train on and the later date to test on.

    Attributes
    ----------
    train_as_of : tuple of Timestamp
        Training as-of dates, ascending.
    test_as_of : Timestamp
        The test as-of date, later than every training date.
    """

    train_as_of: tuple[pd.Timestamp, ...]
    test_as_of: pd.Timestamp

    def __post_init__(self) -> None:
        if not self.train_as_of:
            raise ValueError("TemporalSplit.train_as_of is empty: a split needs a training date")
        late = [d for d in self.train_as_of if d >= self.test_as_of]
        if late:
            raise ValueError(
                f"TemporalSplit: training as-of date {_day(late[0])} is not before the test "
                f"as-of date {_day(self.test_as_of)}"
            )

    @property
    def gap_days(self) -> int:
        """Days between the last training as-of date and the test as-of date."""
        return int((self.test_as_of - max(self.train_as_of)).days)

    def describe(self) -> str:
        """One line for logs and reports.

        Returns
        -------
        str
            For example ``"train on 5 as-of dates 2023-01-01 … 2024-01-01, test on
            2025-01-01 (gap 366 days)"``.
        """
        first, last = self.train_as_of[0], self.train_as_of[-1]
        dates = _day(first) if len(self.train_as_of) == 1 else f"{_day(first)} … {_day(last)}"
        n = len(self.train_as_of)
        return (
            f"train on {n} as-of date{'s' if n != 1 else ''} {dates}, "
            f"test on {_day(self.test_as_of)} (gap {self.gap_days} days)"
        )


class TemporalSplitter:
    """Rolling temporal splits over as-of dates, with a gap of one label horizon.

    Each split tests on one as-of date and trains on every earlier date whose label window
    ``(as_of, as_of + horizon_days]`` ends on or before the test date. Test dates are the
    dates with at least ``min_train_dates`` such training dates, in time order; ``n_splits``
    keeps only the latest ones.

    Parameters
    ----------
    horizon_days : int
        Length of the label window in days. For labels over calendar months use the longest
        such window (366 days for 12 months) so a leap year cannot open a one-day overlap.
    min_train_dates : int, default 2
        Fewest training as-of dates a split may have.
    n_splits : int or None, default None
        Keep only the latest ``n_splits`` splits; ``None`` keeps all. Asking for more splits
        than the dates allow is an error rather than silently fewer.

    Raises
    ------
    ValueError
        At construction, naming the parameter, when a setting is out of range.
    """

    def __init__(
        self, *, horizon_days: int, min_train_dates: int = 2, n_splits: int | None = None
    ) -> None:
        # Checked up front (like triage's timechop) so a bad experiment config fails before
        # any data is read.
        for name, value, least in (
            ("horizon_days", horizon_days, 1),
            ("min_train_dates", min_train_dates, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < least:
                raise ValueError(
                    f"TemporalSplitter: {name} must be an integer >= {least}, got {value!r}"
                )
        if n_splits is not None and (
            isinstance(n_splits, bool) or not isinstance(n_splits, int | np.integer)
            or n_splits < 1
        ):
            raise ValueError(
                f"TemporalSplitter: n_splits must be None or an integer >= 1, got {n_splits!r}"
            )
        self.horizon_days = int(horizon_days)
        self.min_train_dates = int(min_train_dates)
        self.n_splits = None if n_splits is None else int(n_splits)

    def __repr__(self) -> str:
        return (
            f"TemporalSplitter(horizon_days={self.horizon_days}, "
            f"min_train_dates={self.min_train_dates}, n_splits={self.n_splits})"
        )

    def split(
        self, as_of_dates: Sequence[pd.Timestamp] | pd.Index | pd.Series
    ) -> list[TemporalSplit]:
        """Make the splits for a set of as-of dates.

        Parameters
        ----------
        as_of_dates : sequence of Timestamp
            The as-of dates (duplicates and order do not matter, so a cohort's ``as_of``
            column can be passed directly).

        Returns
        -------
        list of TemporalSplit
            In time order of the test date.

        Raises
        ------
        ValueError
            If a date is missing (NaT), or no split (or fewer than ``n_splits``) is possible;
            the message says how many dates there are, the span they need and what to change.
        """
        dates = _unique_dates(as_of_dates)
        horizon = pd.Timedelta(days=self.horizon_days)
        splits = []
        for test in dates:
            train = tuple(d for d in dates if d + horizon <= test)
            if len(train) >= self.min_train_dates:
                splits.append(TemporalSplit(train_as_of=train, test_as_of=test))
        if not splits:
            span = (
                f"{len(dates)} as-of date{'s' if len(dates) != 1 else ''}"
                + (f" from {_day(dates[0])} to {_day(dates[-1])}" if dates else "")
            )
            raise ValueError(
                f"TemporalSplitter: no temporal split possible: {span}, but with "
                f"horizon_days={self.horizon_days} a test date needs min_train_dates="
                f"{self.min_train_dates} earlier as-of dates at least {self.horizon_days} days "
                f"before it. Add as-of dates (a longer history), shorten horizon_days or "
                f"lower min_train_dates."
            )
        if self.n_splits is not None:
            if self.n_splits > len(splits):
                raise ValueError(
                    f"TemporalSplitter: n_splits={self.n_splits} but these {len(dates)} as-of "
                    f"dates allow only {len(splits)} split(s) with horizon_days="
                    f"{self.horizon_days} and min_train_dates={self.min_train_dates}; lower "
                    f"n_splits or add as-of dates."
                )
            splits = splits[-self.n_splits :]
        return splits


def _unique_dates(values: Sequence[pd.Timestamp] | pd.Index | pd.Series) -> list[pd.Timestamp]:
    index = pd.DatetimeIndex(pd.to_datetime(pd.Index(list(values))))
    if index.hasnans:
        raise ValueError("TemporalSplitter.split: an as-of date is missing (NaT)")
    return [pd.Timestamp(d) for d in index.unique().sort_values()]


def split_masks(
    as_of: pd.Series | pd.Index, split: TemporalSplit
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Boolean row masks of a split's training and test rows.

    Parameters
    ----------
    as_of : Series or Index of datetimes
        Each row's as-of date (for example a cohort's ``as_of`` column).
    split : TemporalSplit
        The split.

    Returns
    -------
    train, test : ndarray of bool
        Rows whose as-of date is one of ``split.train_as_of``; rows at ``split.test_as_of``.

    Raises
    ------
    ValueError
        If no row falls on a training date, or none on the test date.
    """
    index = pd.DatetimeIndex(pd.to_datetime(pd.Index(as_of)))
    train = np.asarray(index.isin(pd.DatetimeIndex(list(split.train_as_of))), dtype=bool)
    test = np.asarray(index == pd.Timestamp(split.test_as_of), dtype=bool)
    if not test.any():
        raise ValueError(
            f"split_masks: no row has the test as-of date {_day(split.test_as_of)} "
            f"({split.describe()}); split the same as-of dates the rows carry"
        )
    if not train.any():
        raise ValueError(
            f"split_masks: no row has any training as-of date ({split.describe()}); "
            f"split the same as-of dates the rows carry"
        )
    return train, test
