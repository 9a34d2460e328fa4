"""overblik.fairness: audit by group and intersection, mitigation, report and model card."""

# report and model card
from overblik.fairness._card import CardFact, CardSection, ModelCard
from overblik.fairness._report import render_report, write_report
from overblik.fairness._report_plots import plot_disparities, plot_group_calibration
from overblik.fairness._thresholds import DisparityCheck, FairnessThresholds, Unchecked, Verdict
from overblik.fairness._wording import Bilingual

# isort: split
# audit
from overblik.fairness._audit import (
    METRICS,
    AuditResult,
    CalibrationCurve,
    Disparity,
    GroupResult,
    Interval,
    audit,
    decide,
)
from overblik.fairness._label_bias import LabelBiasGroup, LabelBiasReport, label_bias_diagnostics
from overblik.fairness._mitigation import (
    MitigationOption,
    MitigationReport,
    compare_mitigations,
    plot_tradeoff,
)
from overblik.fairness._proxies import ProxyFeature, ProxyReport, ProxyResult, proxy_diagnostics

__all__ = [
    "METRICS",
    "AuditResult",
    "Bilingual",
    "CalibrationCurve",
    "CardFact",
    "CardSection",
    "Disparity",
    "DisparityCheck",
    "FairnessThresholds",
    "GroupResult",
    "Interval",
    "LabelBiasGroup",
    "LabelBiasReport",
    "MitigationOption",
    "MitigationReport",
    "ModelCard",
    "ProxyFeature",
    "ProxyReport",
    "ProxyResult",
    "Unchecked",
    "Verdict",
    "audit",
    "compare_mitigations",
    "decide",
    "label_bias_diagnostics",
    "plot_disparities",
    "plot_group_calibration",
    "plot_tradeoff",
    "proxy_diagnostics",
    "render_report",
    "write_report",
]
