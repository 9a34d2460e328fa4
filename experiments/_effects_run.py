"""The effects step of ``overblik train``: who each programme helps, and who gets the places.

Runs when the experiment has an ``effects:`` section. On the same cohort, features and
temporal split as the risk model (training rows: the last split's; test rows: its test
date), it

1. fits one cross-fitted doubly-robust learner per programme against no programme
   (:class:`~overblik.models.MultiProgrammeEffects`) on the training rows;
2. evaluates the rankings on the test rows with doubly-robust scores fitted on those rows
   only: Qini curves (by estimated effect and, for comparison, by risk), AUTOC and Qini
   coefficient with bootstrap intervals, the policy gain at 10/20/50 % treated;
3. allocates the experiment's places among the test persons who got no programme, by
   estimated effect, by risk and at random, judged by the held-out doubly-robust scores,
   with the price of the access constraint when one is set;
4. counts who gets places per group against who needs them (the fairness report's section).

The fitted :class:`~overblik.experiments._effects_model.EffectsModel` travels inside the
registered model version (the service's ``/recommend`` and ``/allocate``).
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from overblik.experiments._config import ExperimentConfig
from overblik.experiments._effects_file import strict_json
from overblik.experiments._effects_model import EFFECTS_FILE, EffectsModel
from overblik.fairness._card import CardEffects, PolicyBenefit, ProgrammeEffect
from overblik.fairness._places import PlacesReport, places_by_group
from overblik.features._effects_data import CONTROL, EffectsDataset, build_effects_dataset
from overblik.features._errors import InputError
from overblik.features._feature_spec import parse_feature_spec
from overblik.features._tables import EventTables
from overblik.models import (
    Allocation,
    DRLearner,
    MultiProgrammeEffects,
    PolicyComparison,
    TemporalSplit,
    allocate,
    compare_policies,
    dr_scores,
    plot_overlap,
    plot_uplift_curves,
    price_of_fairness,
    qini_curve,
    split_masks,
    uplift_metrics,
)

__all__ = ["EFFECTS_ARTIFACTS", "EffectsRun", "log_effects", "run_effects"]

ProgressFn = Callable[[str, int, int], None]
EFFECTS_ARTIFACTS = "effects"
MIN_ARM_ROWS = 10  # held-out rows per arm below which a programme's ranking is not evaluated


@dataclass(frozen=True)
class EffectsRun:
    """What the effects step produced (nothing is logged yet)."""

    model: EffectsModel
    metrics: dict[str, float]
    comparison: PolicyComparison | None
    allocation: Allocation | None
    prices: dict[str, float] | None
    places: PlacesReport | None
    test: pd.DataFrame  # test rows: ids, programme received, outcome, estimates, allocation
    warnings: tuple[str, ...]
    figures: dict[str, Figure] = field(default_factory=dict)

    def card(self) -> CardEffects:
        """What the model card says of the effect models and the allocation."""
        model, fitted = self.model, self.model.effects
        effects = tuple(ProgrammeEffect(
            programme=p, ate=fitted.ate_[p].estimate, ci_low=fitted.ate_[p].ci_low,
            ci_high=fitted.ate_[p].ci_high, trimmed_share=fitted.overlap_[p].trimmed_share,
            places=model.places[j], cost=model.costs[j])
            for j, p in enumerate(model.programmes))
        policies: tuple[PolicyBenefit, ...] = ()
        judged_by = ""
        if self.comparison is not None:
            policies = tuple(PolicyBenefit(policy=k, benefit=v,
                                           places=self.comparison.places[k])
                             for k, v in self.comparison.benefit.items())
            judged_by = self.comparison.judged_by
        alpha = float(getattr(fitted.learner, "alpha", 0.05))
        return CardEffects(effects=effects, allocation=policies, judged_by=judged_by,
                           confidence=1.0 - alpha)

    def summary(self) -> dict[str, Any]:
        """The JSON summary logged as ``effects/summary.json``."""
        model = self.model
        return {
            "outcome": model.outcome, "trained_until": model.trained_until,
            "programmes": {p: {"places": model.places[j], "cost": model.costs[j],
                               "ate": model.effects.ate_[p].as_dict(),
                               "att": model.effects.att_[p].as_dict(),
                               "trimmed_share": model.effects.overlap_[p].trimmed_share,
                               "effect_model": _effect_model_choice(
                                   model.effects.learners_[p])}
                           for j, p in enumerate(model.programmes)},
            "budget": model.budget,
            "allocation": None if self.comparison is None else {
                "judged_by": self.comparison.judged_by,
                "policies": self.comparison.as_rows()},
            "price_of_access_constraint": self.prices,
            "warnings": list(self.warnings),
        }


def _effect_model_choice(learner: Any) -> dict[str, Any]:
    """What cross-validation chose for a DR learner's effect model (empty for others): the
    risk stage's basis and penalty (None: the constant) and the feature stage's rounds."""
    if not isinstance(learner, DRLearner):
        return {}
    return {"risk_basis": learner.risk_basis_, "risk_penalty": learner.risk_penalty_,
            "feature_stage_rounds": learner.final_rounds_}


def run_effects(config: ExperimentConfig, tables: EventTables, split: TemporalSplit, *,
                risk_model: Any, progress: ProgressFn | None = None) -> EffectsRun:
    """Fit, evaluate and allocate (see the module docstring); nothing is logged.

    Parameters
    ----------
    config
        The experiment; its ``effects`` section must be set.
    tables
        Clean data.
    split
        The risk model's last temporal split (training rows and test date).
    risk_model
        The registered risk model (``predict_proba``): the ``risk`` policy ranks by it.
    progress
        ``progress(description, done, total)``.
    """
    section = config.effects
    if section is None:
        raise ValueError("the experiment has no effects section")
    step = progress or (lambda *_: None)
    programmes = list(section.programmes)
    total = len(programmes) + 3
    step("effects: cohort, programmes and profiles", 0, total)
    data = build_effects_dataset(tables, parse_feature_spec(config.features, section="features"),
                                 cohort_name=config.cohort, as_of=config.as_of.dates(),
                                 horizon_days=config.label.horizon_days, programmes=programmes)
    train, test = split_masks(data.rows["as_of"], split)
    X = data.X.to_numpy(dtype=np.float64)
    person = data.rows["person_id"].astype(str).to_numpy()
    notes: list[str] = []
    if not any(section.programmes[p].places for p in programmes):
        notes.append("every programme has 0 places: the effects are estimated (for /recommend) "
                     "but no place is allocated (every policy's benefit is 0)")
    for p in programmes:
        n_treated = int(((data.programme == p) & train).sum())
        if n_treated < 2 * MIN_ARM_ROWS:
            raise InputError(f"section 'effects', key 'effects.programmes.{p}': {n_treated} "
                             "training rows got the programme; too few to estimate its effect: "
                             "train on more as-of dates or remove it from the effects section")
    step(f"effects: fitting {', '.join(programmes)}", 1, total)
    effects = MultiProgrammeEffects(
        learner=DRLearner(n_bootstrap=section.n_bootstrap, trim=section.trim,
                          risk_stage=section.risk_stage, random_state=config.seed),
        programmes=programmes, control=CONTROL)
    try:
        effects.fit(X[train], data.programme[train], data.y[train], groups=person[train])
    except ValueError as exc:  # the learners' own checks, e.g. too few rows left by trimming
        raise InputError(f"section 'effects': {exc}") from None
    model = EffectsModel(
        effects=effects, programmes=tuple(programmes),
        costs=tuple(section.programmes[p].cost for p in programmes),
        places=tuple(section.programmes[p].places for p in programmes),
        budget=section.budget, outcome=data.outcome,
        feature_names=tuple(str(c) for c in data.X.columns),
        trained_until=max(split.train_as_of).date().isoformat())
    metrics = _average_metrics(model, data, train)
    # The learner's own overlap warnings, as `overblik effects` gives them: the trimmed share
    # (above 5 %), an arm left with too few rows, uneven weights (train had its own 10 %
    # rule and dropped "only 13 treated rows remain after trimming").
    for p, report in effects.overlap_.items():
        notes += [f"{p}: {w.replace(' for treatment', '')}" for w in report.warnings]
    X_test = X[test]  # one copy of the test rows for every use below
    est, low, high = effects.effect_and_interval(X_test)
    risk = np.asarray(risk_model.predict_proba(data.X.loc[test])[:, 1], dtype=np.float64)
    figures: dict[str, Figure] = {}
    for j, p in enumerate(programmes):
        step(f"effects: evaluating {p} on the test date", 2 + j, total)
        figures[f"overlap_{p}.png"] = plot_overlap(
            effects.learners_[p].propensity_, data.treatment(p)[train][
                (data.programme[train] == p) | (data.programme[train] == CONTROL)],
            trim=section.trim, title=f"Propensity overlap: {p} (training rows)")
        _evaluate(p, j, data, test, X, person, est, risk, config.seed, metrics, figures,
                  notes)
    step("effects: allocating the places", total - 1, total)
    # label: 1 = the bad outcome, as y in predictions/test_predictions.parquet (data.y is
    # the good one, which the column held under the same name y); extrapolated_<p>: the
    # citizen is unlike anyone in the training rows with (or without) the programme.
    frame = data.rows.loc[test, ["person_id", "as_of"]].reset_index(drop=True).assign(
        programme=data.programme[test], label=1 - data.y[test], risk=risk,
        **{f"effect_{p}": est[:, j] for j, p in enumerate(programmes)},
        **{f"ci_low_{p}": low[:, j] for j, p in enumerate(programmes)},
        **{f"ci_high_{p}": high[:, j] for j, p in enumerate(programmes)},
        **{f"extrapolated_{p}": effects.learners_[p].is_trimmed(X_test)
           for p in programmes})
    pool = data.programme[test] == CONTROL
    comparison = allocation = prices = places = None
    frame["allocated"] = ""
    if pool.any():
        budget = math.inf if section.budget is None else section.budget
        common: dict[str, Any] = {"places": model.places, "costs": model.costs,
                                  "budget": budget}
        sensitive = data.sensitive.loc[test].reset_index(drop=True)
        access = section.access
        if access is not None:
            groups = sensitive.loc[pool, access.attribute].astype("string").fillna(
                "(missing)").to_numpy()
            allocation = allocate(est[pool], groups=groups, max_access_gap=access.max_gap,
                                  **common)
            prices = price_of_fairness(est[pool], groups=groups,
                                       max_access_gap=access.max_gap, **common)
        else:
            allocation = allocate(est[pool], **common)
        names = np.array(["", *programmes], dtype=object)
        frame.loc[pool, "allocated"] = names[allocation.assignment + 1]
        places = places_by_group(
            allocation.assignment, data.y[test][pool] == 0, est[pool].max(axis=1) > 0,
            sensitive.loc[pool, list(config.sensitive_attributes)].reset_index(drop=True),
            programmes=programmes, min_count=config.fairness.min_count)
        # Judged by each pool citizen's imputed effect: the outcome predicted with the
        # programme (the effect learner's models of the treated, fitted on the training
        # rows) minus the outcome observed without it. Held-out DR scores were biased here:
        # the pool is untreated, so each score rests on a model of the treated fitted on the
        # test date's few of them, which comes out flat, and the highest-risk citizens
        # scored high whatever the programme does (bench, benefit programmes: by risk 440
        # against 15 by effect where the truth said 35 against 75; imputed: 19 against 109,
        # by random 75 against the truth's 51).
        pool_X = X_test[pool]
        judge = np.column_stack([effects.learners_[p].treated_outcome(pool_X)
                                 for p in programmes]) - data.y[test][pool][:, None]
        comparison = compare_policies(est[pool], risk=risk[pool], judge=judge,
                                      judge_kind="imputed", **common)
        metrics.update(_allocation_metrics(comparison, allocation, prices))
    return EffectsRun(model=model, metrics=metrics, comparison=comparison,
                      allocation=allocation, prices=prices, places=places, test=frame,
                      warnings=tuple(notes), figures=figures)


def _average_metrics(model: EffectsModel, data: EffectsDataset, train: np.ndarray
                     ) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in model.programmes:
        learner = model.effects.learners_[p]
        prefix = f"effects_{p}_"
        for name, iv in (("ate", learner.ate_), ("att", learner.att_)):
            out.update({f"{prefix}{name}": iv.estimate, f"{prefix}{name}_ci_low": iv.ci_low,
                        f"{prefix}{name}_ci_high": iv.ci_high})
        out[f"{prefix}naive_difference"] = learner.naive_difference_
        out[f"{prefix}trimmed_share"] = learner.overlap_.trimmed_share
        out[f"{prefix}n_treated"] = float(((data.programme == p) & train).sum())
    return out


def _evaluate(p: str, j: int, data: EffectsDataset, test: np.ndarray, X: np.ndarray,
              person: np.ndarray, est: np.ndarray, risk: np.ndarray, seed: int,
              metrics: dict[str, float], figures: dict[str, Figure], notes: list[str]
              ) -> None:
    """Held-out DR scores of one programme's contrast (both arms): metrics, Qini plot."""
    received = data.programme[test]
    contrast = (received == p) | (received == CONTROL)
    t = (received[contrast] == p).astype(np.int_)
    if t.sum() < MIN_ARM_ROWS or (1 - t).sum() < MIN_ARM_ROWS:
        notes.append(f"{p}: {int(t.sum())} test rows got it; its ranking is not evaluated "
                     f"(needs {MIN_ARM_ROWS})")
        return
    rows = np.flatnonzero(test)[contrast]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            scores = dr_scores(X[rows], t, data.y[rows], groups=person[rows],
                               n_folds=min(5, int(t.sum())), random_state=seed)
    except ValueError as exc:
        notes.append(f"{p}: held-out scores could not be fitted ({exc})")
        return
    prefix = f"effects_{p}_test_"
    metrics.update(uplift_metrics(est[contrast, j], scores, groups=person[rows],
                                  random_state=seed, prefix=prefix))
    curves = {"by estimated effect": qini_curve(est[contrast, j], scores),
              "by risk": qini_curve(risk[contrast], scores)}
    metrics[f"{prefix}qini_area_by_risk"] = curves["by risk"].area()
    figures[f"qini_{p}.png"] = plot_uplift_curves(
        {k: (c.share, c.gain) for k, c in curves.items()},
        title=f"Qini curves on the test date: {p}",
        ylabel="reduction of the bad outcome per person")


def _allocation_metrics(comparison: PolicyComparison | None, allocation: Allocation,
                        prices: dict[str, float] | None) -> dict[str, float]:
    out = {} if comparison is None else {
        f"allocation_benefit_{k}": v for k, v in comparison.benefit.items()}
    out.update({"allocation_places": float(allocation.places_used.sum()),
                "allocation_cost": allocation.cost,
                "allocation_expected_benefit": allocation.expected_benefit})
    if prices:
        # price_<constraint> is benefit given up; the others are benefits (under the
        # constraint named, or none): allocation_max_access_gap read as a gap of 9.54.
        out.update({f"allocation_{k}" if k.startswith("price_") else
                    f"allocation_benefit_{'' if k == 'unconstrained' else 'with_'}{k}": v
                    for k, v in prices.items()})
    return out


def log_effects(run: EffectsRun, folder: Path) -> Path:
    """Log metrics, plots and tables to the active run; return the saved model's path.

    The model file itself is logged with the registered model (``effects.joblib``).
    """
    import matplotlib.pyplot as plt

    mlflow.log_metrics(run.metrics)
    for name, figure in run.figures.items():
        mlflow.log_figure(figure, f"{EFFECTS_ARTIFACTS}/{name}")
        plt.close(figure)
    mlflow.log_text(json.dumps(strict_json(run.summary()), indent=1, default=_json_default,
                               allow_nan=False), f"{EFFECTS_ARTIFACTS}/summary.json")
    if run.comparison is not None:
        mlflow.log_text(pd.DataFrame(run.comparison.as_rows()).to_csv(index=False),
                        f"{EFFECTS_ARTIFACTS}/allocation_comparison.csv")
    if run.places is not None:
        mlflow.log_text(run.places.table().to_csv(index=False),
                        f"{EFFECTS_ARTIFACTS}/places_by_group.csv")
    test_path = folder / "test_effects.parquet"
    run.test.to_parquet(test_path, index=False)
    mlflow.log_artifact(str(test_path), EFFECTS_ARTIFACTS)
    if run.warnings:
        mlflow.log_text("\n".join(run.warnings) + "\n", f"{EFFECTS_ARTIFACTS}/warnings.txt")
    return run.model.save(folder / EFFECTS_FILE)


def _json_default(value: object) -> object:
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    return str(value)
