"""Risk estimators in scikit-learn style, temporal validation, metrics and plots."""

from overblik.models._calibration import CalibrationMap, fit_calibration
from overblik.models._estimators import HeuristicRisk, LightGBMRisk, LogisticRisk
from overblik.models._metrics import (
    RiskMetrics,
    ece,
    expected_hits,
    precision_recall_at_k,
    risk_metrics,
)
from overblik.models._plots import plot_calibration, plot_feature_importance, plot_precision_at_k
from overblik.models._splits import TemporalSplit, TemporalSplitter, split_masks

__all__ = [
    "CalibrationMap",
    "HeuristicRisk",
    "LightGBMRisk",
    "LogisticRisk",
    "RiskMetrics",
    "TemporalSplit",
    "TemporalSplitter",
    "ece",
    "expected_hits",
    "fit_calibration",
    "plot_calibration",
    "plot_feature_importance",
    "plot_precision_at_k",
    "precision_recall_at_k",
    "risk_metrics",
    "split_masks",
]
