"""Risk and effect estimators in scikit-learn style, temporal validation, metrics, uplift
evaluation and plots."""

from overblik.models._allocation import (
    Allocation,
    PolicyComparison,
    allocate,
    allocate_by_rank,
    allocation_benefit,
    compare_policies,
    price_of_fairness,
)
from overblik.models._calibration import CalibrationMap, fit_calibration
from overblik.models._dr_learner import DRLearner, DRScores, MultiProgrammeEffects, dr_scores
from overblik.models._effects import Interval
from overblik.models._effects_plots import (
    plot_effect_distribution,
    plot_overlap,
    plot_uplift_curves,
)
from overblik.models._estimators import HeuristicRisk, LightGBMRisk, LogisticRisk
from overblik.models._meta_learners import TLearner, XLearner
from overblik.models._metrics import (
    RiskMetrics,
    ece,
    expected_hits,
    precision_recall_at_k,
    risk_metrics,
)
from overblik.models._plots import plot_calibration, plot_feature_importance, plot_precision_at_k
from overblik.models._propensity import OverlapReport, overlap_report
from overblik.models._risk_based import AveragedEffects, RiskBasedLearner, SLearner
from overblik.models._splits import TemporalSplit, TemporalSplitter, split_masks
from overblik.models._uplift import (
    PolicyValue,
    UpliftCurve,
    policy_value,
    qini_curve,
    qini_curve_observed,
    rate,
    uplift_metrics,
)

__all__ = [
    "Allocation",
    "AveragedEffects",
    "CalibrationMap",
    "DRLearner",
    "DRScores",
    "HeuristicRisk",
    "Interval",
    "LightGBMRisk",
    "LogisticRisk",
    "MultiProgrammeEffects",
    "OverlapReport",
    "PolicyComparison",
    "PolicyValue",
    "RiskBasedLearner",
    "RiskMetrics",
    "SLearner",
    "TLearner",
    "TemporalSplit",
    "TemporalSplitter",
    "UpliftCurve",
    "XLearner",
    "allocate",
    "allocate_by_rank",
    "allocation_benefit",
    "compare_policies",
    "dr_scores",
    "ece",
    "expected_hits",
    "fit_calibration",
    "overlap_report",
    "plot_calibration",
    "plot_effect_distribution",
    "plot_feature_importance",
    "plot_overlap",
    "plot_precision_at_k",
    "plot_uplift_curves",
    "policy_value",
    "precision_recall_at_k",
    "price_of_fairness",
    "qini_curve",
    "qini_curve_observed",
    "rate",
    "risk_metrics",
    "split_masks",
    "uplift_metrics",
]
