"""Figures of the fairness report, embedded in the HTML as base64 PNG (no files, no network).

Figures are built with :class:`matplotlib.figure.Figure` directly, never through pyplot (as in
``overblik.models._plots``): no global figure registry, no GUI backend. Suppressed groups
never reach a figure, and calibration points resting on fewer persons than the minimum count
are left out, so a figure cannot reveal what a table suppresses.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Sequence

import numpy as np
from matplotlib import colormaps
from matplotlib.figure import Figure

from overblik.fairness._audit import AuditResult
from overblik.fairness._thresholds import DisparityCheck
from overblik.fairness._wording import (
    RATE_METRICS,
    Language,
    attribute_label,
    group_label,
    metric_label,
    text,
)

__all__ = ["figure_data_uri", "plot_disparities", "plot_group_calibration"]

STATUS_COLOURS = {"fail": "#b03a2e", "uncertain": "#b9770e", "ok": "#1f3a5f",
                  "unknown": "#7f8c8d"}
DISPARITY_METRICS = ("selection_rate", "tpr", "fpr", "ece")
_MARKERS = ("o", "s", "^", "D", "v", "P")


def figure_data_uri(fig: Figure, *, dpi: int = 100, tight: bool = False) -> str:
    """The figure as a ``data:image/png;base64,...`` URI (rendered with Agg).

    ``tight`` grows the image to everything drawn (for figures made elsewhere, whose titles
    may reach past the canvas); it costs one more draw.
    """
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi, facecolor="white",
                bbox_inches="tight" if tight else None, metadata={"Software": None})
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _row_label(attribute: str, group: str, language: Language) -> str:
    return f"{attribute_label(attribute, language)}: {group_label(attribute, group, language)}"


def plot_disparities(checks: Sequence[DisparityCheck], language: Language,
                     metrics: Sequence[str] = DISPARITY_METRICS) -> Figure | None:
    """Forest plot: one panel per metric, one row per group, difference with its interval.

    Parameters
    ----------
    checks : sequence of DisparityCheck
        From :meth:`FairnessThresholds.evaluate` (suppressed groups are already left out).
    language : {"da", "en"}
    metrics : sequence of str
        Panels, in order; metrics without checks are skipped.

    Returns
    -------
    Figure or None
        None when there is nothing to plot. The green band is the allowed difference; points
        are coloured by the check's status (red beyond the limit, amber uncertain).
    """
    panels = [m for m in metrics if any(c.metric == m for c in checks)]
    if not panels:
        return None
    rows: list[tuple[str, str]] = []
    for c in checks:
        if (c.attribute, c.group) not in rows:
            rows.append((c.attribute, c.group))
    position = {row: i for i, row in enumerate(rows)}
    labels = [_row_label(a, g, language) for a, g in rows]
    # Fixed margins in inches instead of a layout engine: a layout engine draws the figure
    # once more, which doubles the time of a report with several figures.
    left = 0.35 + 0.066 * max(len(label) for label in labels)
    width, height = 2.9 * len(panels) + left + 0.2, 0.34 * len(rows) + 1.25
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=left / width, right=1 - 0.2 / width, bottom=0.7 / height,
                        top=1 - 0.35 / height, wspace=0.1)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    for ax, metric in zip(axes, panels, strict=True):
        scale = 100.0 if metric in RATE_METRICS else 1.0
        limit = next(c.limit for c in checks if c.metric == metric) * scale
        ax.axvspan(-limit, limit, color="#27ae60", alpha=0.12, linewidth=0)
        ax.axvline(0, color="grey", linewidth=0.8)
        for edge in (-limit, limit):
            ax.axvline(edge, color="#27ae60", linewidth=0.8, linestyle="--")
        reach = 1.4 * limit
        for c in (c for c in checks if c.metric == metric):
            value = c.difference.value * scale
            if not np.isfinite(value):
                continue
            y = position[(c.attribute, c.group)]
            colour = STATUS_COLOURS[c.status]
            if c.has_interval:
                low, high = c.difference.ci_low * scale, c.difference.ci_high * scale
                ax.plot([low, high], [y, y], color=colour, linewidth=1.6)
                reach = max(reach, abs(low), abs(high))
            ax.plot([value], [y], marker="o", color=colour, markersize=5.5)
            reach = max(reach, abs(value))
        ax.set_xlim(-1.08 * reach, 1.08 * reach)
        ax.set_title(metric_label(metric, language), fontsize="medium")
        ax.set_xlabel(text("disparity_axis_rate" if metric in RATE_METRICS else "disparity_axis",
                           language), fontsize="small")
        ax.grid(axis="x", alpha=0.3)
    axes[0].set_yticks(range(len(rows)), labels, fontsize="small")
    axes[0].set_ylim(len(rows) - 0.5, -0.5)
    return fig


def plot_group_calibration(audit: AuditResult, language: Language, *,
                           min_count: int) -> Figure | None:
    """Reliability curves per group, one panel per (single) protected attribute.

    Parameters
    ----------
    audit : AuditResult
    language : {"da", "en"}
    min_count : int
        Groups marked suppressed and bins with fewer persons are left out.

    Returns
    -------
    Figure or None
        None when the audit has no curves to show. Axes zoom to the range of the data, so a
        rare outcome stays readable.
    """
    suppressed = {(g.attribute, g.group) for g in audit.groups
                  if g.suppressed or g.n < min_count}
    by_attribute: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
    for curve in audit.calibration:
        # Intersections make panels unreadable; their ECE is in the group table.
        if "&" in curve.attribute or (curve.attribute, curve.group) in suppressed:
            continue
        n = np.asarray(curve.n, dtype=np.int64)
        keep = n >= min_count
        if not keep.any():
            continue
        predicted = np.asarray(curve.mean_predicted, dtype=np.float64)[keep]
        observed = np.asarray(curve.observed, dtype=np.float64)[keep]
        by_attribute.setdefault(curve.attribute, []).append((curve.group, predicted, observed))
    if not by_attribute:
        return None
    columns = min(2, len(by_attribute))
    rows = -(-len(by_attribute) // columns)
    width, height = 5.4 * columns, 4.2 * rows
    fig = Figure(figsize=(width, height))
    fig.subplots_adjust(left=0.7 / width, right=1 - 0.2 / width, bottom=0.6 / height,
                        top=1 - 0.35 / height, wspace=0.22, hspace=0.35)
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, (attribute, curves) in zip(axes, by_attribute.items(), strict=False):
        high = max(max(float(p.max()), float(o.max())) for _, p, o in curves)
        limit = min(1.0, 1.08 * high) if high > 0 else 1.0
        ax.plot([0, limit], [0, limit], color="grey", linestyle="--", linewidth=1,
                label=text("calibration_perfect", language))
        # Ten colours repeat from the 11th group (12 districts: D01 and D11 alike): tab20
        # beyond ten, and a marker per group as well, so every curve is told apart.
        palette = colormaps["tab10" if len(curves) <= 10 else "tab20"]
        for i, (group, predicted, observed) in enumerate(curves):
            ax.plot(predicted, observed, marker=_MARKERS[i % len(_MARKERS)], markersize=3.5,
                    linewidth=1.2, color=palette(i % palette.N),
                    label=group_label(attribute, group, language))
        ax.set_xlim(0, limit)
        ax.set_ylim(0, limit)
        ax.set_title(attribute_label(attribute, language), fontsize="medium")
        ax.set_xlabel(text("calibration_predicted", language), fontsize="small")
        ax.set_ylabel(text("calibration_observed", language), fontsize="small")
        ax.legend(fontsize="x-small", loc="upper left", ncol=2 if len(curves) > 6 else 1)
        ax.grid(alpha=0.3)
    for ax in axes[len(by_attribute):]:
        ax.set_visible(False)
    return fig
