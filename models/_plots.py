"""Figures of a risk model for MLflow artifacts and the report.

Figures are built with :class:`matplotlib.figure.Figure` directly, never through pyplot:
no global figure registry to leak memory in long runs or services, no GUI backend; saving
renders with Agg.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt
from matplotlib.figure import Figure

from overblik.models._metrics import _binary, ece, expected_hits

__all__ = ["plot_calibration", "plot_feature_importance", "plot_precision_at_k"]

Curve = tuple[npt.ArrayLike, npt.ArrayLike]


def _reliability(y: npt.NDArray[np.float64], p: npt.NDArray[np.float64], n_bins: int
                 ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    edges = np.quantile(p, np.linspace(0.0, 1.0, n_bins + 1))
    bins = np.searchsorted(edges[1:-1], p)
    count = np.bincount(bins, minlength=n_bins)
    keep = count > 0
    mean_p = np.bincount(bins, weights=p, minlength=n_bins)[keep] / count[keep]
    mean_y = np.bincount(bins, weights=y, minlength=n_bins)[keep] / count[keep]
    return mean_p, mean_y


def plot_calibration(curves: Mapping[str, Curve], *, title: str, n_bins: int = 10) -> Figure:
    """Reliability diagram (quantile bins) with the distribution of predictions below.

    Parameters
    ----------
    curves : mapping of name to (y_true, proba)
        One curve per model (or per test date).
    title : str
    n_bins : int, default 10
        Quantile bins, as in :func:`ece`.

    Returns
    -------
    Figure
        The axes zoom to the range of the predictions, so a rare outcome is readable.
    """
    fig = Figure(figsize=(6.5, 7.0), layout="constrained")
    top, bottom = fig.subplots(2, 1, height_ratios=(3, 1), sharex=True)
    high = 0.0
    all_p = []
    for name, (y_true, proba) in curves.items():
        y = _binary(y_true)
        p = np.asarray(proba, dtype=np.float64)
        mean_p, mean_y = _reliability(y, p, n_bins)
        high = max(high, float(mean_p.max()), float(mean_y.max()))
        top.plot(mean_p, mean_y, marker="o",
                 label=f"{name} (ECE {ece(y, p, n_bins=n_bins):.4f}, n={len(y):,})")
        all_p.append((name, p))
    limit = min(1.0, high * 1.08) if high > 0 else 1.0
    top.plot([0, limit], [0, limit], color="grey", linestyle="--", linewidth=1,
             label="perfect calibration")
    top.set_xlim(0, limit)
    top.set_ylim(0, limit)
    top.set_ylabel("observed rate")
    top.set_title(title)
    top.legend(loc="upper left", fontsize="small")
    top.grid(alpha=0.3)
    for name, p in all_p:
        bottom.hist(np.clip(p, 0, limit), bins=40, range=(0, limit), histtype="step",
                    label=name)
    bottom.set_yscale("log")
    bottom.set_xlabel("predicted probability (bin mean)")
    bottom.set_ylabel("rows")
    return fig


def plot_precision_at_k(curves: Mapping[str, Curve], *, k: int, title: str) -> Figure:
    """Precision and recall among the top ``k`` as functions of ``k``.

    Parameters
    ----------
    curves : mapping of name to (y_true, score)
        One pair of curves per model; higher score means riskier.
    k : int
        The capacity, drawn as a vertical line; the x-axis runs to four times it.
    title : str

    Returns
    -------
    Figure
        Solid lines precision, dashed lines recall (ties at a cut in expectation, as in
        :func:`precision_recall_at_k`); the dotted line is the base rate.
    """
    fig = Figure(figsize=(7.0, 4.5), layout="constrained")
    ax = fig.subplots()
    base_rate = None
    for i, (name, (y_true, score)) in enumerate(curves.items()):
        y = _binary(y_true)
        hits = expected_hits(y, score)
        last = min(len(y), 4 * k)
        ks = np.arange(1, last + 1)
        color = f"C{i}"
        ax.plot(ks, hits[1 : last + 1] / ks, color=color, label=f"{name} precision")
        if y.sum() > 0:
            ax.plot(ks, hits[1 : last + 1] / y.sum(), color=color, linestyle="--",
                    label=f"{name} recall")
        base_rate = float(y.mean())
    if base_rate is not None:
        ax.axhline(base_rate, color="grey", linestyle=":", linewidth=1, label="base rate")
    ax.axvline(k, color="black", linewidth=1)
    ax.annotate(f"capacity k={k:,}", (k, 1.0), xytext=(4, -12), textcoords="offset points",
                fontsize="small")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(1, None)
    ax.set_xlabel("k (citizens selected, highest risk first)")
    ax.set_ylabel("precision / recall")
    ax.set_title(title)
    ax.legend(fontsize="small", loc="center right")
    ax.grid(alpha=0.3)
    return fig


def plot_feature_importance(
    names: Sequence[str], importances: Sequence[float] | npt.ArrayLike, *, top: int = 25,
    title: str,
) -> Figure:
    """Horizontal bars of the ``top`` most important features, largest first.

    Parameters
    ----------
    names : sequence of str
    importances : sequence of float
        Same length as ``names`` (e.g. ``LightGBMRisk.feature_importances_``, gain).
    top : int, default 25
    title : str

    Returns
    -------
    Figure
        Bars show each feature's share of the total importance.
    """
    values = np.asarray(importances, dtype=np.float64)
    if len(values) != len(names):
        raise ValueError(
            f"plot_feature_importance: {len(names)} names but {len(values)} importances"
        )
    order = np.argsort(-values, kind="stable")[:top]
    total = values.sum()
    share = values[order] / total if total > 0 else values[order]
    fig = Figure(figsize=(7.0, 0.3 * len(order) + 1.2), layout="constrained")
    ax = fig.subplots()
    ax.barh(np.arange(len(order)), share, color="C0")
    ax.set_yticks(np.arange(len(order)), [str(names[i]) for i in order], fontsize="small")
    ax.invert_yaxis()
    ax.set_xlabel("share of total importance" if total > 0 else "importance")
    # Over the figure, not the axes: long feature names push the axes right, and a title
    # centred over them was cut at the edge.
    fig.suptitle(title)
    ax.grid(axis="x", alpha=0.3)
    return fig
