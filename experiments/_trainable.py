"""Checks of an experiment against its data, before anything is trained or registered.

An experiment file can be valid and still not fit the ingested data: label windows that run
past the last recorded event (outcomes after it would count as not happening), an as-of
date with nobody in the cohort, one outcome class only, or more citizens to act on than the
cohort holds. Each is an :class:`InputError` naming the experiment's key and the fix, raised
before the MLflow run starts (a half-trained run would otherwise be left behind).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from overblik.experiments._config import ExperimentConfig
from overblik.features._cohorts import label_window_end
from overblik.features._errors import InputError
from overblik.features._tables import EventTables
from overblik.models._splits import TemporalSplit

__all__ = ["CENSORING_TOLERANCE_DAYS", "check_trainable", "last_recorded_event"]

# Monthly extracts end on the last event of a month: a window ending a few days after it
# loses next to nothing; beyond, labels are censored.
CENSORING_TOLERANCE_DAYS = 7


def last_recorded_event(tables: EventTables) -> pd.Timestamp | None:
    """The latest event time in any silo (where the data ends), or None without events."""
    span = tables.event_span()
    return None if span is None else span[1]


def _day(t: pd.Timestamp) -> str:
    return str(pd.Timestamp(t).date())


def check_trainable(config: ExperimentConfig, source: str, *, as_of: pd.Series,
                    y: np.ndarray, splits: Sequence[TemporalSplit],
                    last_event: pd.Timestamp | None) -> None:
    """Raise :class:`InputError` when the experiment cannot be trained on this data.

    Parameters
    ----------
    config, source
        The experiment and its file (named in messages).
    as_of, y
        Each dataset row's as-of date and label.
    splits
        The temporal splits (the last one's test date is audited and registered).
    last_event
        :func:`last_recorded_event` of the data.
    """
    horizon = config.label.horizon_days
    last = max(config.as_of.dates())
    if last_event is None:
        raise InputError(f"{source}: the ingested data holds no events: nothing to learn from")
    end = label_window_end(last, horizon)
    late = (end - last_event.normalize()).days
    if late > CENSORING_TOLERANCE_DAYS:
        latest_as_of = last_event.normalize() - pd.Timedelta(days=horizon)
        raise InputError(
            f"{source}: section 'as_of', key 'as_of.end': the label window of {_day(last)} "
            f"ends on {_day(end)}, {late} days after the last recorded event "
            f"({_day(last_event)}): outcomes after the data ends would count as not happening. "
            f"End the as-of grid by {_day(latest_as_of)}, or shorten label.horizon_days")
    dates = pd.to_datetime(as_of).to_numpy()
    for split in splits:
        test = dates == np.datetime64(split.test_as_of)
        train = np.isin(dates, np.array(split.train_as_of, dtype="datetime64[ns]"))
        for rows, what in ((test, f"test as-of date {_day(split.test_as_of)}"),
                           (train, f"training as-of dates up to {_day(max(split.train_as_of))}")):
            if not rows.any():
                raise InputError(
                    f"{source}: section 'as_of': nobody is in the cohort {config.cohort} at the "
                    f"{what}: move the as-of grid into the period the data covers")
            classes = np.unique(y[rows])
            if len(classes) < 2:
                raise InputError(
                    f"{source}: section 'label': every row at the {what} has outcome "
                    f"{int(classes[0])} ({config.label.outcome} within {horizon} days): a model "
                    "needs both outcomes; check label.horizon_days and the as-of grid")
    n_test = int((dates == np.datetime64(splits[-1].test_as_of)).sum())
    for key, k in (("capacity_k", config.capacity_k),
                   ("fairness.decision.top_k", config.fairness.decision.top_k)):
        if k is not None and k > n_test:
            raise InputError(
                f"{source}: key '{key}': {k} is more citizens than the cohort holds at the test "
                f"as-of date {_day(splits[-1].test_as_of)} ({n_test}): give at most {n_test}")
