"""Feature payloads (a client's own feature values): what a value of each unit may be.

A payload that no profile could produce is refused rather than scored: a negative count, a
flag of 7 or a value of 1e308 would get a confident score and reasons from the model's
outermost leaves, and the caseworker would not see that the input was impossible.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from overblik.features._feature_spec import FeatureDef

__all__ = ["MAX_MAGNITUDE", "MAX_YEARS", "payload_problem"]

# No count, duration or amount (DKK) of one citizen comes near this.
MAX_MAGNITUDE = 1e9
# No one's age, or time lived anywhere, comes near this.
MAX_YEARS = 130.0


@dataclass(frozen=True)
class _Domain:
    what: str
    non_negative: bool = False
    whole: bool = False
    flag: bool = False
    high: float = MAX_MAGNITUDE


_UP_TO = f"from 0 to {MAX_MAGNITUDE:g}"
_DOMAINS: dict[str, _Domain] = {
    "count": _Domain(f"a whole number {_UP_TO} (a count)", non_negative=True, whole=True),
    "days": _Domain(f"a number of days {_UP_TO}", non_negative=True),
    "hours": _Domain(f"a number of hours {_UP_TO}", non_negative=True),
    "years": _Domain(f"a number of years from 0 to {MAX_YEARS:g}", non_negative=True,
                     high=MAX_YEARS),
    "flag": _Domain("0 or 1 (a flag)", flag=True),
}
_ANY = _Domain(f"a number between -{MAX_MAGNITUDE:g} and {MAX_MAGNITUDE:g}")


def _fits(value: float, domain: _Domain) -> bool:
    if not (math.isfinite(value) and abs(value) <= MAX_MAGNITUDE):
        return False
    if domain.flag:
        return value in (0.0, 1.0)
    if (domain.non_negative and value < 0) or value > domain.high:
        return False
    return not (domain.whole and value != math.floor(value))


def payload_problem(values: Mapping[str, float | None],
                    features: Sequence[FeatureDef]) -> tuple[str | None, str] | None:
    """Why a complete payload cannot be scored, or None when every value is possible.

    Returns the first feature at fault (a model's feature, never a client's key; None when
    the payload as a whole is) and the message, which names it and what its values may be.
    """
    given = [(f, v) for f in features if (v := values[f.name]) is not None]
    if not given:
        return None, ("has no value at all (every feature is null): send what is known about "
                      "the citizen, null only where a value is unknown")
    bad = [f for f, v in given if not (_fits(v, _DOMAINS.get(f.unit, _ANY))
                                       and _within(v, f.low, f.high))]
    if not bad:
        return None
    more = f" ({len(bad) - 1} more feature(s) out of range)" if len(bad) > 1 else ""
    return bad[0].name, (f"{bad[0].name} must be {_what(bad[0])}{more}: send the value as "
                         "the profile store would hold it")


def _within(value: float, low: float | None, high: float | None) -> bool:
    return (low is None or value >= low) and (high is None or value <= high)


def _what(feature: FeatureDef) -> str:
    """What a feature's values may be: the contract's range, else the unit's rule."""
    low, high = feature.low, feature.high
    if low is not None and high is not None:
        return f"a number from {low:g} to {high:g}"
    if low is not None:
        return f"a number from {low:g} to {MAX_MAGNITUDE:g}"
    return _DOMAINS.get(feature.unit, _ANY).what
