"""Effect-estimation bench on the synthetic municipality (100k citizens, 5 years, seed 1).

For every programme against no programme (family_support in children_in_families; mentor,
debt_counselling and job_course in adults_on_benefit, as-of dates of the shipped
experiments), the persons are split 70/30 (seed 1); DR, T- and X-learners are fitted on
the 70 % and compared on the 30 % against the truth's individual effects (never seen in
training):

- PEHE = RMSE of the estimated against the true individual effect, over every held-out
  row of the cohort; "ATE for all" is the PEHE of predicting the true average effect for
  everyone (what an estimator that finds no heterogeneity at best reaches);
- the DR learner's ATE interval (training rows of the contrast) against the true mean
  effect of those rows;
- AUTOC of each learner's ranking on the held-out rows (doubly-robust scores fitted on
  the held-out rows only), next to the oracle ranking by the true effect.

Bars asserted (issue 6): DR's PEHE is below the T-learner's for every programme, and the
useless programme's (job_course) ATE interval covers 0. ``BENCH_QUALITY_CITIZENS`` changes
the size (the bars are only claimed at 100,000).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from overblik.experiments._config import load_experiment, resolve_experiment
from overblik.features._effects_data import (
    CONTROL,
    EffectsDataset,
    build_effects_dataset,
    true_effects,
)
from overblik.features._feature_spec import parse_feature_spec
from overblik.features._tables import EventTables
from tests.perf._measure import print_table
from tests.perf._quality import CITIZENS, quality_municipality

EXPERIMENTS = ("child_placement", "long_term_benefit")
N_BOOTSTRAP = 10  # bagging of the DR effect model; the ATE interval does not use it


def _rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def _held_out_dataset(tables: EventTables, truth_dir: Path, experiment: str
                      ) -> tuple[EffectsDataset, pd.DataFrame, np.ndarray, np.ndarray]:
    """The experiment's effects dataset, its true effects, person ids and the 30 % held out."""
    cfg = load_experiment(resolve_experiment(experiment))
    data = build_effects_dataset(tables, parse_feature_spec(cfg.features, section="features"),
                                 cohort_name=cfg.cohort, as_of=cfg.as_of.dates(),
                                 horizon_days=cfg.label.horizon_days)
    truth = true_effects(truth_dir, data.rows, outcome=data.outcome,
                         programmes=data.programmes)
    person = data.rows["person_id"].astype(str).to_numpy()
    ids = np.unique(person)
    held = np.isin(person, np.random.default_rng(1).choice(ids, size=int(0.3 * len(ids)),
                                                           replace=False))
    return data, truth, person, held


def test_effect_estimators_against_the_truth() -> None:
    from overblik.models import DRLearner, TLearner, XLearner, dr_scores, rate

    clean, truth_dir = quality_municipality()
    tables = EventTables.load(clean)
    pehe_rows, ate_rows, failures = [], [], []
    for experiment in EXPERIMENTS:
        data, truth, person, held = _held_out_dataset(tables, truth_dir, experiment)
        X = data.X.to_numpy(dtype=np.float64)
        for programme in data.programmes:
            rows = (data.programme == programme) | (data.programme == CONTROL)
            fit_rows, eval_rows = rows & ~held, rows & held
            t = (data.programme == programme).astype(np.int_)
            tau = truth[f"effect_{programme}"].to_numpy(dtype=np.float64)
            learners = {"DR": DRLearner(n_bootstrap=N_BOOTSTRAP, random_state=1),
                        "T": TLearner(random_state=1), "X": XLearner(random_state=1)}
            pehe, seconds, autoc = {}, {}, {}
            scores = dr_scores(X[eval_rows], t[eval_rows], data.y[eval_rows],
                               groups=person[eval_rows], random_state=2)
            for name, learner in learners.items():
                start = time.perf_counter()
                learner.fit(X[fit_rows], t[fit_rows], data.y[fit_rows],
                            groups=person[fit_rows])
                seconds[name] = time.perf_counter() - start
                pehe[name] = _rmse(learner.effect(X[held]), tau[held])
                autoc[name] = rate(learner.effect(X[eval_rows]), scores, n_bootstrap=100,
                                   groups=person[eval_rows])
            autoc["oracle"] = rate(tau[eval_rows], scores, n_bootstrap=100,
                                   groups=person[eval_rows])
            constant = _rmse(np.full(int(held.sum()), tau[held].mean()), tau[held])
            dr = learners["DR"]
            pehe_rows.append([
                programme, f"{int(t[fit_rows].sum()):,}/{int(fit_rows.sum()):,}",
                f"{tau[held].std():.4f}", f"{constant:.4f}", f"{pehe['DR']:.4f}",
                f"{pehe['T']:.4f}", f"{pehe['X']:.4f}", f"{pehe['DR'] / pehe['T']:.2f}",
                f"{np.corrcoef(dr.effect(X[held]), tau[held])[0, 1]:.2f}"
                if tau[held].std() > 0 else "-",
                " / ".join(f"{autoc[k].estimate:+.3f}" for k in ("DR", "T", "X", "oracle")),
                " / ".join(f"{seconds[k]:.0f}" for k in ("DR", "T", "X"))])
            kept = fit_rows.copy()
            kept[np.flatnonzero(fit_rows)[dr.trimmed_]] = False
            true_ate = float(tau[kept].mean())
            ate = dr.ate_
            ate_rows.append([
                programme, f"{dr.naive_difference_:+.4f}", f"{true_ate:+.4f}",
                f"{ate.estimate:+.4f} [{ate.ci_low:+.4f}, {ate.ci_high:+.4f}]",
                "yes" if ate.covers(true_ate) else "NO",
                f"{dr.overlap_.trimmed:,} ({dr.overlap_.trimmed_share:.1%})",
                f"{dr.final_rounds_}"])
            if pehe["DR"] >= pehe["T"]:
                failures.append(f"{programme}: DR PEHE {pehe['DR']:.4f} >= T {pehe['T']:.4f}")
            if programme == "job_course" and not ate.covers(0.0):
                failures.append(f"job_course: ATE interval {ate} does not cover 0")
    print_table(
        f"Individual effects at {CITIZENS:,} citizens, seed 1: PEHE on held-out persons "
        "(30 %; lower is better; DR/T < 1 is the bar)",
        ["programme", "treated/rows", "true SD", "ATE for all", "DR", "T", "X", "DR/T",
         "corr DR", "AUTOC DR / T / X / oracle", "fit s DR / T / X"], pehe_rows)
    print_table(
        "Average effects (DR learner, training persons, kept rows) against the true mean "
        "effect of the same rows",
        ["programme", "naive diff", "true ATE", "DR ATE [95% CI]", "covers", "trimmed",
         "effect-model rounds"], ate_rows)
    if CITIZENS != 100_000:
        pytest.skip(f"bars are claimed at 100,000 citizens, not {CITIZENS:,}")
    assert not failures, "; ".join(failures)


def test_allocation_by_estimated_effect_against_the_oracle() -> None:
    """Issue 6's allocation bar, printed with its verdict (xfail while it misses).

    Adults on benefit, held-out persons (30 %) at the last as-of date; one DR learner per
    programme fitted on the other persons; places = 20 % of the held-out citizens expected
    to benefit from some programme (true effect > 0), split equally, equal cost. Every policy
    is judged by the true effects: by estimated effect (the LP), by risk (a LightGBM
    classifier of the bad outcome on untreated training rows), at random, and the oracle
    (the LP on the true effects). Bar: by effect ≥ 85 % of the oracle and above by risk.
    """
    import lightgbm as lgb

    from overblik.models import DRLearner
    from overblik.models._allocation import compare_policies

    clean, truth_dir = quality_municipality()
    data, truth, person, held = _held_out_dataset(EventTables.load(clean), truth_dir,
                                                  "long_term_benefit")
    as_of = pd.to_datetime(data.rows["as_of"])
    scored = held & (as_of == as_of.max()).to_numpy()
    X = data.X.to_numpy(dtype=np.float64)
    estimated, true = [], []
    for programme in data.programmes:
        fit = ((data.programme == programme) | (data.programme == CONTROL)) & ~held
        t = (data.programme == programme).astype(np.int_)
        dr = DRLearner(n_bootstrap=N_BOOTSTRAP, random_state=1).fit(
            X[fit], t[fit], data.y[fit], groups=person[fit])
        estimated.append(dr.effect(X[scored]))
        true.append(truth[f"effect_{programme}"].to_numpy(dtype=np.float64)[scored])
    est, tau = np.column_stack(estimated), np.column_stack(true)
    untreated = (data.programme == CONTROL) & ~held
    risk_model = lgb.LGBMClassifier(n_estimators=300, learning_rate=0.05, random_state=1,
                                    verbose=-1).fit(X[untreated], 1 - data.y[untreated])
    risk = np.asarray(risk_model.predict_proba(X[scored]))[:, 1]
    needed = int((tau.max(axis=1) > 0).sum())
    m = len(data.programmes)
    places = np.full(m, max(1, int(0.2 * needed) // m))
    comparison = compare_policies(est, places=places, costs=np.ones(m), budget=float("inf"),
                                  risk=risk, true_effects=tau)
    shares = comparison.share_of_oracle
    meets = shares["effect"] >= 0.85 and shares["effect"] > shares["risk"]
    print_table(
        f"Allocation at 20 % of the places needed ({int(places.sum())} places for {needed:,} "
        f"citizens expected to benefit, {int(scored.sum()):,} scored), judged by the truth "
        f"(bar: by effect >= 85 % of oracle and above by risk: "
        f"{'meets' if meets else 'MISSES'})",
        ["policy", "true benefit", "places", "share of oracle"],
        [[r["policy"], f"{r['benefit']:.2f}", f"{r['places']}", f"{r['share_of_oracle']:.1%}"]
         for r in comparison.as_rows()])
    if not meets:
        # Visible in every bench run until the effects are good enough (issue 6 stays open).
        pytest.xfail(f"allocation by estimated effect reaches {shares['effect']:.1%} of the "
                     f"oracle (bar 85 %), by risk {shares['risk']:.1%}")
