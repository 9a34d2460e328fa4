"""Plots: a Figure each, that renders to PNG, with what a reader needs on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from matplotlib.figure import Figure

from overblik.models import plot_calibration, plot_feature_importance, plot_precision_at_k


@pytest.fixture(scope="module")
def scores() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    p = rng.beta(1, 40, size=3000)
    y = (rng.random(3000) < p).astype(int)
    return y, p, np.clip(p * 1.8, 0, 1)


def _saved(fig: Figure, path: Path) -> int:
    fig.savefig(path)
    return path.stat().st_size


def test_calibration_plot(scores: tuple, tmp_path: Path) -> None:
    y, p, over = scores
    fig = plot_calibration({"model": (y, p), "overconfident": (y, over)}, title="placement")
    assert isinstance(fig, Figure)
    top = fig.axes[0]
    assert top.get_title() == "placement"
    legend = top.get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert labels[0].startswith("model (ECE ") and "perfect calibration" in labels
    # Zoomed to a rare outcome's range, not the whole unit square.
    assert top.get_xlim()[1] < 0.5
    assert _saved(fig, tmp_path / "calibration.png") > 10_000


def test_precision_at_k_plot(scores: tuple, tmp_path: Path) -> None:
    y, p, _ = scores
    fig = plot_precision_at_k({"model": (y, p), "random": (y, np.zeros_like(p))}, k=100,
                              title="capacity")
    ax = fig.axes[0]
    assert ax.get_title() == "capacity"
    legend = ax.get_legend()
    assert legend is not None
    labels = [t.get_text() for t in legend.get_texts()]
    assert {"model precision", "model recall", "random precision", "base rate"} <= set(labels)
    assert any(list(line.get_xdata()) == [100, 100] for line in ax.get_lines())
    assert _saved(fig, tmp_path / "precision.png") > 10_000


def test_feature_importance_plot(tmp_path: Path) -> None:
    names = [f"feature_{i}" for i in range(40)]
    fig = plot_feature_importance(names, np.arange(40.0), top=10, title="gain")
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_yticklabels()]
    assert ticks[0] == "feature_39" and len(ticks) == 10
    assert _saved(fig, tmp_path / "importance.png") > 5_000
    # Long names push the axes right: the title is the figure's, and inside the canvas
    # (over the axes it was cut at the right edge: "LightGBM feature importance (gain").
    long = [f"household__children_families__investigation__days_since_last_{i}d"
            for i in range(40)]
    title = "LightGBM feature importance (gain)"
    fig = plot_feature_importance(long, np.arange(40.0), top=25, title=title)
    assert fig.get_suptitle() == title
    fig.canvas.draw()
    [shown] = [t for t in fig.texts if t.get_text() == title]
    box = shown.get_window_extent()
    assert box.x0 >= 0 and box.x1 <= fig.bbox.width
    with pytest.raises(ValueError, match="40 names but 3 importances"):
        plot_feature_importance(names, [1.0, 2.0, 3.0], title="x")
