"""Figures of an effects analysis: propensity overlap per arm, distribution of individual
effects, and uplift/Qini curves.

Built with :class:`matplotlib.figure.Figure` directly, never pyplot (as
:mod:`overblik.models._plots`): no global figure registry, no GUI backend.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

__all__ = ["plot_effect_distribution", "plot_overlap", "plot_uplift_curves"]

_TREATED, _UNTREATED, _ACCENT = "#b9770e", "#1f3a5f", "#b03a2e"


def plot_overlap(propensity: npt.ArrayLike, T: npt.ArrayLike, *,
                 trim: tuple[float, float], title: str = "Propensity overlap") -> Figure:
    """Histogram of the estimated propensity per arm, with the trimming bounds.

    Each arm is normalised to its own size (densities), so a small treated arm stays
    visible next to a large untreated one; rows outside the dashed lines are trimmed.
    """
    e = np.asarray(propensity, dtype=np.float64)
    t = np.asarray(T).astype(bool)
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    # The axis spans the propensities (and the bounds), not always 0 to 1: a programme
    # given to few has them all below 0.2, in five bins of a 0-1 axis.
    finite = e[np.isfinite(e)]
    low, high = ((float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0))
    pad = max(0.02 * (high - low), 0.005)
    low, high = max(0.0, low - pad), min(1.0, high + pad)
    bins = np.linspace(low, high, 51).tolist()
    for mask, colour, name in ((~t, _UNTREATED, "untreated"), (t, _TREATED, "treated")):
        if mask.any():
            ax.hist(e[mask], bins=bins, density=True, alpha=0.55, color=colour,
                    label=f"{name} (n={int(mask.sum()):,})")
    for bound in trim:
        if 0.0 < bound < 1.0 and low <= bound <= high:
            ax.axvline(bound, color=_ACCENT, linestyle="--", linewidth=1)
    ax.set_xlim(low, high)
    ax.set_xlabel("estimated propensity P(treated | covariates)")
    ax.set_ylabel("density within arm")
    ax.set_title(title)
    ax.legend(frameon=False)
    return fig


def plot_effect_distribution(effects: npt.ArrayLike, *, ate: float,
                             trimmed: npt.ArrayLike | None = None,
                             title: str = "Estimated individual effects") -> Figure:
    """Histogram of individual effects (kept rows; trimmed rows apart), with the ATE."""
    tau = np.asarray(effects, dtype=np.float64)
    out = (np.zeros(len(tau), dtype=bool) if trimmed is None
           else np.asarray(trimmed, dtype=bool))
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.add_subplot()
    finite = tau[np.isfinite(tau)]
    low, high = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
    if high <= low:
        low, high = low - 0.5, high + 0.5
    bins = np.linspace(low, high, 41).tolist()
    # Stacked, kept rows on the bottom: they stay visible when most rows are trimmed.
    stacks = [tau[~out], tau[out]] if out.any() else [tau[~out]]
    labels = [f"kept rows (n={int((~out).sum()):,})", f"trimmed rows (n={int(out.sum()):,})"]
    ax.hist(stacks, bins=bins, stacked=True, color=[_UNTREATED, "#aab7b8"][:len(stacks)],
            label=labels[:len(stacks)])
    ax.axvline(ate, color=_ACCENT, linewidth=1.5, label=f"ATE {ate:.4g}")
    ax.axvline(0.0, color="black", linewidth=0.8, linestyle=":")
    ax.set_xlabel("effect on the outcome (treated minus untreated)")
    ax.set_ylabel("rows")
    ax.set_title(title)
    ax.legend(frameon=False)
    return fig


def plot_uplift_curves(curves: Mapping[str, tuple[npt.ArrayLike, npt.ArrayLike]], *,
                       title: str = "Qini curves", ylabel: str = "cumulative gain") -> Figure:
    """Uplift or Qini curves (share targeted → gain), one per ranking, random as a line.

    ``curves`` maps a name to ``(share, gain)`` as returned by
    :func:`overblik.models.qini_curve`; the straight line from (0, 0) to the last point is
    the gain of targeting at random.
    """
    fig = Figure(figsize=(6.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    end = None
    for name, (share, gain) in curves.items():
        s, g = np.asarray(share, dtype=np.float64), np.asarray(gain, dtype=np.float64)
        ax.plot(s, g, label=name, linewidth=1.5)
        end = (s[-1], g[-1])
    if end is not None:
        ax.plot([0.0, end[0]], [0.0, end[1]], color="#7f8c8d", linestyle="--",
                label="random")
    # Each curve ranks by its own score (by estimated effect, by risk, ...).
    ax.set_xlabel("share of rows targeted (each curve's ranking, highest first)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.legend(frameon=False)
    return fig
