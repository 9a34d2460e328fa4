"""Propensity overlap: how comparable the treated and untreated are, and what is trimmed.

Rules (applied by :func:`overlap_report`, used by every effect estimator):

- **Trimming**: rows whose estimated propensity lies outside ``[low, high]`` (default
  ``[0.01, 0.99]``) are left out of the average effects and of the effect model's fit; their
  individual effects are still predicted but flagged ``trimmed`` (extrapolations). The
  averages then describe the trimmed population, which the report states.
- **Warning when overlap is poor**, any of:

  1. more than 5 % of the rows are trimmed: the averages no longer describe (nearly) the
     whole population, and the people trimmed are typically the ones nobody would ever
     offer the programme (or always would), so the data cannot speak about them;
  2. the inverse-propensity weights of an arm are so uneven that their Kish effective
     sample size ``(sum w)^2 / sum w^2`` is below 20 % of the arm's rows: a few rows
     carry the estimate, and its variance and sensitivity to the propensity model explode
     (the usual ESS diagnostic of weighting estimators);
  3. fewer than 20 treated or 20 untreated rows remain after trimming.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from overblik.models._effects import check_treatment

__all__ = ["QUANTILES", "OverlapReport", "overlap_report", "trimmed_mask"]

FloatArray = npt.NDArray[np.float64]
QUANTILES: tuple[float, ...] = (0.0, 0.01, 0.05, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 1.0)
MAX_TRIMMED_SHARE = 0.05
MIN_ESS_SHARE = 0.2
MIN_ARM_ROWS = 20


def _quantile_name(q: float) -> str:
    return {0.0: "min", 1.0: "max"}.get(q, f"p{round(q * 100):02d}")


def _quantiles(e: FloatArray) -> dict[str, float]:
    if len(e) == 0:
        return {_quantile_name(q): float("nan") for q in QUANTILES}
    values = np.quantile(e, QUANTILES)
    return {_quantile_name(q): float(v) for q, v in zip(QUANTILES, values, strict=True)}


def _kish(w: FloatArray) -> float:
    return float(w.sum() ** 2 / np.sum(w**2)) if len(w) else 0.0


def trimmed_mask(propensity: npt.ArrayLike, trim: tuple[float, float]) -> npt.NDArray[np.bool_]:
    """True for rows whose propensity lies outside ``[low, high]``."""
    e = np.asarray(propensity, dtype=np.float64)
    low, high = trim
    out: npt.NDArray[np.bool_] = (e < low) | (e > high)
    return out


@dataclass(frozen=True)
class OverlapReport:
    """Distribution of the propensity per arm, trimming and overlap warnings.

    Attributes
    ----------
    trim
        The bounds ``(low, high)``.
    n, n_treated
        Rows and treated rows before trimming.
    trimmed, trimmed_share
        Rows outside the bounds, and their share of all rows.
    trimmed_treated
        Treated rows among them.
    quantiles, quantiles_treated, quantiles_untreated
        Quantiles of the propensity (``min``, ``p01`` … ``p99``, ``max``).
    ess_treated, ess_untreated
        Kish effective sample size of the inverse-propensity weights of each arm, after
        trimming.
    warnings
        Plain-language warnings (empty when overlap is good).
    """

    trim: tuple[float, float]
    n: int
    n_treated: int
    trimmed: int
    trimmed_share: float
    trimmed_treated: int
    quantiles: dict[str, float]
    quantiles_treated: dict[str, float]
    quantiles_untreated: dict[str, float]
    ess_treated: float
    ess_untreated: float
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        """JSON-ready summary (the ``overlap`` section of ``effects.json``)."""
        return {
            "trim": list(self.trim),
            "trimmed": self.trimmed,
            "trimmed_share": self.trimmed_share,
            "trimmed_treated": self.trimmed_treated,
            "propensity_quantiles": self.quantiles,
            "propensity_quantiles_treated": self.quantiles_treated,
            "propensity_quantiles_untreated": self.quantiles_untreated,
            "effective_sample_size": {"treated": self.ess_treated,
                                      "untreated": self.ess_untreated},
        }


def check_trim(trim: tuple[float, float]) -> tuple[float, float]:
    """Validated ``(low, high)`` with ``0 <= low < high <= 1``."""
    try:
        low, high = (float(v) for v in trim)
    except (TypeError, ValueError):
        raise ValueError(f"trim={trim!r}: give two numbers (low, high), e.g. (0.01, 0.99)"
                         ) from None
    if not 0.0 <= low < high <= 1.0:
        raise ValueError(f"trim=({low}, {high}): need 0 <= low < high <= 1, e.g. (0.01, 0.99)")
    return low, high


def _check_propensity(propensity: npt.ArrayLike) -> FloatArray:
    """Propensities: one-dimensional, each in [0, 1] (so none missing)."""
    e = np.asarray(propensity, dtype=np.float64)
    if e.ndim != 1:
        raise ValueError(f"propensity must be one-dimensional, got shape {e.shape}")
    bad = ~((e >= 0.0) & (e <= 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"propensity must be probabilities in [0, 1]; {float(e[i])} at row {i}")
    return e


def overlap_report(propensity: npt.ArrayLike, T: npt.ArrayLike, *,
                   trim: tuple[float, float] = (0.01, 0.99),
                   label: str = "treatment") -> OverlapReport:
    """Overlap diagnostics of estimated propensities (see the module docstring for rules).

    Parameters
    ----------
    propensity : array-like of shape (n,)
        Estimated ``P(T = 1 | X)`` (out-of-fold).
    T : array-like of shape (n,)
        0/1 treatment (or booleans), both arms present.
    trim : (low, high), default (0.01, 0.99)
    label : str
        Name of the treatment in the warnings.

    Raises
    ------
    ValueError
        When a propensity is missing or outside [0, 1], or ``T`` is not 0/1 with one value
        per propensity.
    """
    e = _check_propensity(propensity)
    t = check_treatment(T, len(e), rows="propensity").astype(bool)
    low, high = check_trim(trim)
    out = trimmed_mask(e, (low, high))
    kept = ~out
    n, n1 = len(e), int(t.sum())
    n_out = int(out.sum())
    share = n_out / n if n else 0.0
    w1 = 1.0 / np.clip(e[kept & t], 1e-12, None)
    w0 = 1.0 / np.clip(1.0 - e[kept & ~t], 1e-12, None)
    ess1, ess0 = _kish(w1), _kish(w0)
    warnings: list[str] = []
    if share > MAX_TRIMMED_SHARE:
        warnings.append(
            f"poor overlap for {label}: {share:.1%} of rows ({n_out:,}) have a propensity "
            f"outside [{low:g}, {high:g}] and are trimmed; the average effects describe the "
            "remaining rows only, and individual effects of trimmed rows are extrapolations")
    for arm, ess, count in (("treated", ess1, int((kept & t).sum())),
                            ("untreated", ess0, int((kept & ~t).sum()))):
        if count < MIN_ARM_ROWS:
            warnings.append(f"only {count} {arm} rows remain after trimming for {label}: "
                            "too few to estimate effects")
        elif ess < MIN_ESS_SHARE * count:
            warnings.append(
                f"uneven weights for {label}: the {arm} rows' inverse-propensity weights have "
                f"an effective sample size of {ess:,.0f} of {count:,} rows (< "
                f"{MIN_ESS_SHARE:.0%}); a few rows dominate the estimate — consider "
                "narrower trimming bounds")
    return OverlapReport(
        trim=(low, high), n=n, n_treated=n1, trimmed=n_out, trimmed_share=share,
        trimmed_treated=int((out & t).sum()), quantiles=_quantiles(e),
        quantiles_treated=_quantiles(e[t]), quantiles_untreated=_quantiles(e[~t]),
        ess_treated=ess1, ess_untreated=ess0, warnings=warnings)
