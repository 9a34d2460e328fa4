"""A drift-free synthetic panel with a known outcome probability, for the model tests.

Persons carry a persistent latent level and appear at several quarterly as-of dates; each
row's features are noisy readings of that level; the outcome is Bernoulli with a known,
non-linear logistic probability of the features (so a tree model can beat a linear one
and the oracle AUC is known).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

FEATURES = ["count_a", "count_b", "level_c", "level_d", "noise_e"]


@dataclass(frozen=True)
class Panel:
    X: pd.DataFrame
    y: np.ndarray
    p: np.ndarray  # the true probability of each row
    person: np.ndarray
    as_of: pd.Series


def true_probability(X: pd.DataFrame, intercept: float) -> np.ndarray:
    z = (intercept + 0.45 * np.log1p(X["count_a"]) + 0.3 * X["count_b"].clip(upper=4)
         + 0.8 * X["level_c"] + 0.9 * np.maximum(X["level_d"], 0.0) ** 2 * 0.6
         - 0.5 * (X["level_c"] > 1.2) * X["level_d"])
    return np.asarray(1.0 / (1.0 + np.exp(-z)))


def make_panel(*, persons: int, dates: int, intercept: float, seed: int) -> Panel:
    rng = np.random.default_rng(seed)
    as_of_dates = pd.date_range("2021-01-01", periods=dates, freq="QS")
    level = rng.normal(size=persons)
    rows = persons * dates
    lvl = np.repeat(level, dates)
    X = pd.DataFrame({
        "count_a": rng.poisson(np.exp(0.3 + 0.6 * lvl)).astype(float),
        "count_b": rng.poisson(np.exp(-0.5 + 0.4 * lvl)).astype(float),
        "level_c": 0.7 * lvl + rng.normal(scale=0.7, size=rows),
        "level_d": rng.normal(size=rows),
        "noise_e": rng.normal(size=rows),
    })
    # A missing reading now and then: the models must take NaN.
    X.loc[rng.random(rows) < 0.03, "level_d"] = np.nan
    p = true_probability(X.fillna({"level_d": 0.0}), intercept)
    y = (rng.random(rows) < p).astype(int)
    person = np.repeat(np.array([f"P{i:05d}" for i in range(persons)]), dates)
    as_of = pd.Series(np.tile(as_of_dates.to_numpy(), persons))
    return Panel(X, y, p, person, as_of)
