"""Compare a training run with the synthetic municipality's ground truth.

This is the only code in experiments/ that reads ``truth/``; training never does. It joins
the run's test predictions to the truth by pseudonym, as-of date and outcome, and logs the
oracle ROC AUC (the true probabilities scored on the same test rows) into the same run.
Two oracles are logged: ``oracle_roc_auc`` scores ``p_realised``, the true probability given
everything that happened, including programmes a citizen received *after* the as-of date
(future information no model may use); ``oracle_as_of_roc_auc`` scores ``p_need``, the true
probability from what was so at the as-of date. The first is the strict bar.

It also measures label bias for the fairness report: per sensitive group, the recorded
outcome rate against the mean true probability of need (``p_need``: no programme, unbiased
recording), so a group whose outcomes are recorded more often (more surveillance) shows a
ratio above 1. The run's report and model cards are logged again with that section.

When the run fitted effect models, their estimates on the test date are compared with the
true individual effects: PEHE per programme (against predicting the true average for
everyone), and the allocation of the experiment's places by estimated effect, by risk and at
random as a share of the oracle allocation (the same places given by the true effects).
"""

from __future__ import annotations

import dataclasses
import math
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import mlflow
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from overblik.experiments._tracking import resume_run, run_artifact, use_tracking
from overblik.features._errors import InputError

if TYPE_CHECKING:
    from overblik.fairness import LabelBiasReport

SENSITIVE_COLUMNS = ("sex", "age_band", "origin", "district", "disability")


@dataclass(frozen=True)
class EffectsOracle:
    """Estimated against true individual effects on the run's test date."""

    rows: int
    pehe: dict[str, float]  # root mean squared error against the true effect, per programme
    pehe_constant: dict[str, float]  # the same for the true average given to everyone
    allocation_share: dict[str, float]  # policy -> share of the oracle's true benefit

    def metrics(self) -> dict[str, float]:
        """Flat ``oracle_effects_*`` metrics for MLflow."""
        out = {f"oracle_effects_{p}_pehe": v for p, v in self.pehe.items()}
        out.update({f"oracle_effects_{p}_pehe_constant": v
                    for p, v in self.pehe_constant.items()})
        out.update({f"oracle_allocation_share_{k}": v
                    for k, v in self.allocation_share.items()})
        return out


@dataclass(frozen=True)
class OracleComparison:
    """Model against oracle on the same test rows."""

    rows_matched: int
    rows_test: int
    oracle_roc_auc: float
    model_roc_auc: dict[str, float]
    oracle_as_of_roc_auc: float = float("nan")
    label_bias: LabelBiasReport | None = None
    effects: EffectsOracle | None = None

    def gap(self, model: str = "lightgbm") -> float:
        """Oracle AUC minus the model's AUC (≤ 0.03 is the bar)."""
        return self.oracle_roc_auc - self.model_roc_auc[model]

    def gap_as_of(self, model: str = "lightgbm") -> float:
        """Oracle-at-as-of AUC (``p_need``, nothing after the as-of date) minus the model's."""
        return self.oracle_as_of_roc_auc - self.model_roc_auc[model]


def compare_with_truth(run_id: str, truth: Path, *, tracking_uri: str | None = None
                       ) -> OracleComparison:
    """Score the truth's ``p_realised`` on the run's test rows and log the comparison."""
    use_tracking(tracking_uri)
    truth_file = Path(truth) / "truth.parquet"
    if not truth_file.exists():
        raise InputError(f"{truth_file} does not exist: pass the truth/ folder written by "
                         "`overblik generate`")
    run = mlflow.get_run(run_id)
    outcome = run.data.tags["overblik.outcome"]
    with run_artifact(run_id, "predictions/test_predictions.parquet") as local:
        preds = pd.read_parquet(local)
    facts = pd.read_parquet(truth_file, columns=["person_id", "as_of", "outcome", "p_realised",
                                                 "p_need"])
    facts = facts[facts["outcome"] == outcome].drop(columns="outcome")
    preds["as_of"] = pd.to_datetime(preds["as_of"]).astype("datetime64[ns]")
    facts["as_of"] = pd.to_datetime(facts["as_of"]).astype("datetime64[ns]")
    preds["person_id"] = preds["person_id"].astype(str)
    facts["person_id"] = facts["person_id"].astype(str)
    joined = preds.merge(facts, on=["person_id", "as_of"], how="inner")
    if joined.empty or joined["y"].nunique() < 2:
        raise InputError(f"the truth in {truth} shares no usable test rows with run {run_id}: "
                         "was the clean data ingested from this municipality with --demo-key?")
    models = [c.removeprefix("proba_") for c in preds.columns if c.startswith("proba_")]
    result = OracleComparison(
        rows_matched=len(joined),
        rows_test=len(preds),
        oracle_roc_auc=float(roc_auc_score(joined["y"], joined["p_realised"])),
        oracle_as_of_roc_auc=float(roc_auc_score(joined["y"], joined["p_need"])),
        model_roc_auc={m: float(roc_auc_score(joined["y"], joined[f"proba_{m}"]))
                       for m in models},
    )
    with resume_run(run_id):
        mlflow.log_metrics({
            "oracle_roc_auc": result.oracle_roc_auc,
            "oracle_rows_matched": float(result.rows_matched),
            "oracle_as_of_roc_auc": result.oracle_as_of_roc_auc,
            **{f"oracle_gap_{m}": result.gap(m) for m in models},
            **{f"oracle_as_of_gap_{m}": result.gap_as_of(m) for m in models},
        })
    effects = effects_against_truth(run_id, truth)
    if effects is not None:
        with resume_run(run_id):
            mlflow.log_metrics(effects.metrics())
    return dataclasses.replace(result, label_bias=_label_bias(run_id, joined, result),
                               effects=effects)


def effects_against_truth(run_id: str, truth: Path) -> EffectsOracle | None:
    """PEHE and allocation share of the oracle for a run's effect models (None without)."""
    from mlflow.exceptions import MlflowException

    from overblik.features._effects_data import CONTROL, true_effects
    from overblik.models import compare_policies

    with ExitStack() as stack:
        try:
            summary = mlflow.artifacts.load_dict(f"runs:/{run_id}/effects/summary.json")
            local = stack.enter_context(run_artifact(run_id, "effects/test_effects.parquet"))
        except (MlflowException, OSError):
            return None  # trained without an effects section
        test = pd.read_parquet(local)  # a broken file is an error, not "no effects"
    programmes = list(summary["programmes"])
    truth_rows = true_effects(truth, test, outcome=summary["outcome"], programmes=programmes)
    tau = truth_rows[[f"effect_{p}" for p in programmes]].to_numpy(dtype=np.float64)
    est = test[[f"effect_{p}" for p in programmes]].to_numpy(dtype=np.float64)
    known = np.isfinite(tau).all(axis=1)
    pehe = {p: float(np.sqrt(np.mean((est[known, j] - tau[known, j]) ** 2)))
            for j, p in enumerate(programmes)}
    constant = {p: float(np.std(tau[known, j])) for j, p in enumerate(programmes)}
    pool = known & (test["programme"].to_numpy() == CONTROL)
    budget = summary["budget"]
    comparison = compare_policies(
        est[pool], places=[summary["programmes"][p]["places"] for p in programmes],
        costs=[summary["programmes"][p]["cost"] for p in programmes],
        budget=math.inf if budget is None else float(budget),
        risk=test["risk"].to_numpy(dtype=np.float64)[pool], true_effects=tau[pool])
    return EffectsOracle(rows=int(known.sum()), pehe=pehe, pehe_constant=constant,
                         allocation_share=comparison.share_of_oracle)


def _label_bias(run_id: str, joined: pd.DataFrame, result: OracleComparison
                ) -> LabelBiasReport | None:
    """Recorded outcome against ``p_need`` per group, logged into the run's fairness report."""
    from overblik.experiments._fairness_run import log_label_bias
    from overblik.experiments._train import REGISTERED

    sensitive = [c for c in SENSITIVE_COLUMNS if c in joined.columns]
    if not sensitive:
        return None
    gap = result.gap(REGISTERED) if REGISTERED in result.model_roc_auc else None
    return log_label_bias(run_id, joined["y"].to_numpy(), joined["p_need"].to_numpy(),
                          joined[sensitive], oracle_gap=gap)
