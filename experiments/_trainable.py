"""Checks of an experiment against its data, before anything is trained or registered.

An experiment file can be valid and still not fit the ingested data: label windows that run
past the last recorded event (outcomes after it would count as not happening), an as-of
date with nobody in the cohort, one outcome class only, or more citizens to act on than the
cohort holds. Each is an :class:`InputError` naming the experiment's key and the fix, raised
before the MLflow run starts (a half-trained run would otherwise be left behind).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from overblik.experiments._config import ExperimentConfig
from overblik.features._cohorts import label_window_end
from overblik.features._errors import InputError
from overblik.features._feature_spec import parse_feature_spec
from overblik.models._splits import TemporalSplit

__all__ = ["CENSORING_TOLERANCE_DAYS", "ShortHistory", "check_trainable",
           "describe_short_history", "short_history"]

# Monthly extracts end on the last event of a month: a window ending a few days after it
# loses next to nothing; beyond, labels are censored. The same slack at the data's start.
CENSORING_TOLERANCE_DAYS = 7


@dataclass(frozen=True)
class ShortHistory:
    """As-of dates whose longest feature window reaches back before the data begins."""

    block: int  # index of the block in features: with the longest window
    window_days: int
    begins: pd.Timestamp  # the first recorded event's day
    dates: tuple[pd.Timestamp, ...]  # the as-of dates that see less history, oldest first
    of_dates: int  # as-of dates in the grid
    accepted: bool  # as_of.accept_short_history

    def which(self, to: str = "to") -> str:
        """The dates as text: one date, or the first ``to`` the last ("til" in Danish)."""
        first, last = _day(self.dates[0]), _day(self.dates[-1])
        return first if len(self.dates) == 1 else f"{first} {to} {last}"


def short_history(config: ExperimentConfig, *,
                  span: tuple[pd.Timestamp, pd.Timestamp] | None,
                  dates: Sequence[pd.Timestamp] | None = None) -> ShortHistory | None:
    """The as-of dates at which the longest feature window reaches back before the data
    begins (more than the tolerance), or None when every date sees a full window.

    At such a date a count or sum over the window covers less history than at later dates,
    and than at serving time: the model learns from features that mean less there.

    Parameters
    ----------
    config
        The experiment.
    span
        ``EventTables.event_span()`` of the data: where it begins and ends.
    dates
        The as-of dates to check (default: the experiment's grid), e.g. a profile store's.
    """
    if span is None:
        return None
    spec = parse_feature_spec(config.features, section="features")
    windows = [(max(w), i) for i, b in enumerate(spec.blocks)
               if (w := getattr(b, "windows_days", ()))]
    if not windows:
        return None
    longest, block = max(windows, key=lambda pair: (pair[0], -pair[1]))
    begins = span[0].normalize()
    slack = pd.Timedelta(days=CENSORING_TOLERANCE_DAYS)
    dates = sorted(config.as_of.dates() if dates is None else dates)
    short = tuple(d for d in dates if d - pd.Timedelta(days=longest) < begins - slack)
    if not short:
        return None
    return ShortHistory(block=block, window_days=longest, begins=begins, dates=short,
                        of_dates=len(dates), accepted=config.as_of.accept_short_history)


def describe_short_history(found: ShortHistory | None, config: ExperimentConfig,
                           source: str) -> list[str]:
    """The warning naming the block, the dates and the fixes; none without short history.

    Not an error: the analyst may accept it for more training dates, and says so with
    ``as_of.accept_short_history: true`` (no warning then; the model card still says it).
    """
    if found is None or found.accepted:
        return []
    first_full = found.begins + pd.Timedelta(days=found.window_days)
    first_as_of = min(config.as_of.dates())
    return [f"{source}: section 'features', features[{found.block}]: its "
            f"{found.window_days}-day window reaches back before the data begins "
            f"({_day(found.begins)}) at {len(found.dates)} of {found.of_dates} as-of dates "
            f"({found.which()}): features over it cover less history there than at later dates "
            f"and at serving time. Start the as-of grid on or after {_day(first_full)} (key "
            "'as_of.start'), shorten the windows to at most "
            f"{(first_as_of - found.begins).days} days, or accept it with "
            "as_of.accept_short_history: true"]


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
        The latest event time in any silo (``EventTables.event_span()``), None without
        events.
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
