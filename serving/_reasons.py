"""Reasons a caseworker can read: SHAP contributions turned into sentences.

SHAP values come from ``shap.TreeExplainer`` on the LightGBM booster and explain the raw
margin (log-odds) of the uncalibrated score: ``base value + sum of contributions = margin``.
The probability the service reports is the calibrated one, a monotone map of that margin, so
a contribution says which way and how strongly a feature moved the score, not how many
percentage points it added. Sentences use the feature descriptions of the experiment's
feature spec in Danish (the default, for caseworkers) or English.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from overblik.features._feature_spec import FeatureDef
from overblik.models._estimators import LightGBMRisk

__all__ = ["Explainer", "Language", "ReasonText", "format_value", "pick_language",
           "positive_class", "reasons_for"]

Language = Literal["da", "en"]
F64 = npt.NDArray[np.float64]
_LANG = re.compile(r"^\s*([A-Za-z]{1,8}|\*)(?:-[A-Za-z0-9]{1,8})*\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*$")


def pick_language(accept_language: str | None) -> Language:
    """Danish unless ``Accept-Language`` prefers English (q-values respected)."""
    if not accept_language:
        return "da"
    best: tuple[float, int, Language] | None = None
    for i, part in enumerate(accept_language.split(",")[:20]):
        m = _LANG.match(part)
        if m is None:
            continue
        tag = m[1].lower()
        try:
            q = float(m[2]) if m[2] else 1.0
        except ValueError:
            continue
        lang: Language | None = "da" if tag in ("da", "*") else "en" if tag == "en" else None
        if lang is None or q <= 0:
            continue
        if best is None or (q, -i) > (best[0], -best[1]):
            best = (q, i, lang)
    return best[2] if best else "da"


def positive_class(values: object, n: int) -> F64:
    """SHAP values of the positive class as ``(n, n_features)`` from any of shap's shapes
    for a binary model: ``[negative, positive]``, ``(n, p, 2)`` or ``(n, p)``."""
    if isinstance(values, list):
        values = values[-1]
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 3:
        arr = arr[..., -1]
    return arr.reshape(n, -1)


class Explainer:
    """SHAP contributions of a fitted :class:`LightGBMRisk` on the raw margin (log-odds).

    Attributes
    ----------
    base_value : float
        The expected margin; ``base_value + contributions.sum(axis=1)`` is the margin.
    """

    def __init__(self, estimator: LightGBMRisk) -> None:
        import shap

        self._booster = estimator.booster_
        self._tree = shap.TreeExplainer(estimator.booster_)
        expected = np.atleast_1d(np.asarray(self._tree.expected_value, dtype=np.float64))
        self.base_value = float(expected[-1])

    def contributions(self, X: F64) -> F64:
        """SHAP values of the positive class, shape ``(n, n_features)``.

        shap returns a list ``[negative, positive]``, an ``(n, p, 2)`` array or an
        ``(n, p)`` array for a LightGBM binary model depending on its version: all give the
        positive class here.
        """
        with warnings.catch_warnings():
            # shap announces the list output on every call; positive_class handles it, and
            # the warning would otherwise fill the service log once per request.
            warnings.filterwarnings("ignore", category=UserWarning,
                                    message="LightGBM binary classifier with TreeExplainer")
            values = self._tree.shap_values(np.asarray(X, dtype=np.float64))
        return positive_class(values, len(X))

    def margin(self, X: F64) -> F64:
        """The booster's raw margin (log-odds), which the contributions add up to."""
        return np.asarray(self._booster.predict(X, raw_score=True, num_threads=1),
                          dtype=np.float64)


_UNITS: dict[str, tuple[str, str]] = {"days": ("dage", "days"), "years": ("år", "years"),
                                      "hours": ("timer", "hours")}


def _number(value: float, lang: Language, decimals: int) -> str:
    text = f"{value:,.{decimals}f}"
    if lang == "da":  # 12,345.5 -> 12.345,5
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
    return text


def format_value(value: float, unit: str, lang: Language) -> str:
    """A feature value as a caseworker reads it (unit and decimal comma in Danish)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "ukendt" if lang == "da" else "unknown"
    if unit == "flag":
        yes = value >= 0.5
        return ("ja" if yes else "nej") if lang == "da" else ("yes" if yes else "no")
    if unit == "dkk":
        amount = _number(value, lang, 0)
        return f"{amount} kr." if lang == "da" else f"DKK {amount}"
    whole = float(value).is_integer()
    if unit in _UNITS:
        return f"{_number(value, lang, 0 if whole else 1)} {_UNITS[unit][lang == 'en']}"
    if unit == "count":
        return _number(value, lang, 0 if whole else 1)
    return _number(value, lang, 0 if whole else 2)


@dataclass(frozen=True)
class ReasonText:
    """One feature's contribution, in words."""

    feature: str
    description: str
    value: float | None
    value_text: str
    contribution: float
    direction: Literal["raises", "lowers"]
    sentence: str


_MOVES: dict[str, dict[Language, tuple[str, str]]] = {
    "risk": {"da": ("trækker risikoen op", "trækker risikoen ned"),
             "en": ("raises the risk", "lowers the risk")},
    "effect": {"da": ("øger den forventede effekt", "mindsker den forventede effekt"),
               "en": ("raises the expected effect", "lowers the expected effect")},
}


def _reason(f: FeatureDef, value: float, contribution: float, lang: Language,
            of: Literal["risk", "effect"] = "risk") -> ReasonText:
    description = f.description_da if lang == "da" else f.description_en
    shown = format_value(value, f.unit, lang)
    raises = contribution > 0
    effect = _MOVES[of][lang][0 if raises else 1]
    return ReasonText(feature=f.name, description=description,
                      value=None if math.isnan(value) else float(value), value_text=shown,
                      contribution=float(contribution),
                      direction="raises" if raises else "lowers",
                      sentence=f"{description}: {shown} – {effect}")


def reasons_for(features: tuple[FeatureDef, ...] | list[FeatureDef], values: F64,
                contributions: F64, lang: Language, top: int | None = None,
                of: Literal["risk", "effect"] = "risk", min_size: float = 0.0
                ) -> list[ReasonText]:
    """Features of one citizen ordered by the size of their contribution.

    Parameters
    ----------
    features
        The model's features, in column order.
    values, contributions
        One row: the feature values and their SHAP contributions.
    lang
        ``da`` or ``en``.
    top
        Keep this many (features that did not move the score are left out); all when None.
    of
        What the contributions move: the risk (SHAP of the risk model) or a programme's
        estimated effect (its effect model's contributions).
    min_size
        Leave out contributions smaller than this in absolute value (those that do not
        move the score in any way that matters).
    """
    order = np.argsort(-np.abs(contributions), kind="stable")
    out: list[ReasonText] = []
    for j in order:
        size = abs(float(contributions[j]))
        if size < min_size or (top is not None and (len(out) >= top or size == 0.0)):
            break
        out.append(_reason(features[j], float(values[j]), float(contributions[j]), lang, of))
    return out

