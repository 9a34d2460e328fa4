"""Effect-estimation bench on the synthetic municipality (100k citizens, 5 years, seed 1).

For every programme against no programme (family_support in children_in_families; mentor,
debt_counselling and job_course in adults_on_benefit, as-of dates of the shipped
experiments), the persons are split 70/30 (by a hash of the person); DR, T- and X-learners
are fitted on the 70 % and compared on the 30 % against the truth's individual effects
(never seen in training):

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
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

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


def _held_out_dataset(tables: EventTables, truth_dir: Path, experiment: str,
                      start: date | None = None
                      ) -> tuple[EffectsDataset, pd.DataFrame, np.ndarray, np.ndarray]:
    """The experiment's effects dataset, its true effects, person ids and the 30 % held out.

    ``start`` moves the first as-of date of the experiment's grid (same step and end).
    """
    cfg = load_experiment(resolve_experiment(experiment))
    grid = cfg.as_of if start is None else cfg.as_of.model_copy(update={"start": start})
    data = build_effects_dataset(tables, parse_feature_spec(cfg.features, section="features"),
                                 cohort_name=cfg.cohort, as_of=grid.dates(),
                                 horizon_days=cfg.label.horizon_days)
    truth = true_effects(truth_dir, data.rows, outcome=data.outcome,
                         programmes=data.programmes)
    person = data.rows["person_id"].astype(str).to_numpy()
    # By a hash of the person, so a longer grid holds out the same persons.
    held = np.asarray(pd.util.hash_array(person) % 10 < 3)
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
            tau = truth[f"effect_{programme}"].to_numpy(dtype=np.float64)
            # The truth starts in 2023; a grid from 2022 trains on rows it does not cover.
            known = np.isfinite(tau)
            fit_rows, eval_rows = rows & ~held, rows & held & known
            judged = held & known
            t = (data.programme == programme).astype(np.int_)
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
                pehe[name] = _rmse(learner.effect(X[judged]), tau[judged])
                autoc[name] = rate(learner.effect(X[eval_rows]), scores, n_bootstrap=100,
                                   groups=person[eval_rows])
            autoc["oracle"] = rate(tau[eval_rows], scores, n_bootstrap=100,
                                   groups=person[eval_rows])
            constant = _rmse(np.full(int(judged.sum()), tau[judged].mean()), tau[judged])
            dr = learners["DR"]
            pehe_rows.append([
                programme, f"{int(t[fit_rows].sum()):,}/{int(fit_rows.sum()):,}",
                f"{tau[judged].std():.4f}", f"{constant:.4f}", f"{pehe['DR']:.4f}",
                f"{pehe['T']:.4f}", f"{pehe['X']:.4f}", f"{pehe['DR'] / pehe['T']:.2f}",
                f"{np.corrcoef(dr.effect(X[judged]), tau[judged])[0, 1]:.2f}"
                if tau[judged].std() > 0 and dr.effect(X[judged]).std() > 0 else "-",
                " / ".join(f"{autoc[k].estimate:+.3f}" for k in ("DR", "T", "X", "oracle")),
                " / ".join(f"{seconds[k]:.0f}" for k in ("DR", "T", "X"))])
            kept = fit_rows.copy()
            kept[np.flatnonzero(fit_rows)[dr.trimmed_]] = False
            true_ate = float(tau[kept & known].mean())
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
        "effect of the same rows (those the truth covers: 2023 on)",
        ["programme", "naive diff", "true ATE", "DR ATE [95% CI]", "covers", "trimmed",
         "effect-model rounds"], ate_rows)
    if CITIZENS != 100_000:
        pytest.skip(f"bars are claimed at 100,000 citizens, not {CITIZENS:,}")
    assert not failures, "; ".join(failures)


def _allocation_learners(event: Literal[0, 1]) -> dict[str, Any]:
    """The learners whose rankings are compared; the DR learner (what ``overblik train``
    and the service use) carries the verdict."""
    from overblik.models import AveragedEffects, DRLearner, RiskBasedLearner, SLearner

    return {
        "DR": DRLearner(n_bootstrap=N_BOOTSTRAP, random_state=1),
        "DR without risk stage": DRLearner(n_bootstrap=N_BOOTSTRAP, random_state=1,
                                           risk_stage=False),
        "risk-based (cloglog)": RiskBasedLearner(event=event, random_state=1),
        "S (effect >= 0)": SLearner(nonnegative=True, random_state=1),
        "average of the two": AveragedEffects(
            [RiskBasedLearner(event=event), SLearner(nonnegative=True)], n_seeds=5,
            random_state=1),
    }


def _features_ceiling(X: np.ndarray, truth: pd.DataFrame, programmes: tuple[str, ...] | list[str],
                      train: np.ndarray, scored: np.ndarray) -> np.ndarray:
    """Each programme's true effects on the scored rows as predicted by a LightGBM fitted to
    the true effects of the training rows (every cohort row the truth covers).

    It sees the effects themselves rather than noisy outcomes of the few treated, so it is
    about the best any learner on these features can do: where its allocation misses the
    bar, the features do not carry enough information for any estimator to meet it. 1,000
    rounds: more (2,000 rounds, 63 leaves) moved the benefit programmes' ceiling no further
    (84.5 % of the oracle in the last round either way; 83.7 % with 300 rounds).
    """
    import lightgbm as lgb

    columns = []
    for programme in programmes:
        tau = truth[f"effect_{programme}"].to_numpy(dtype=np.float64)
        rows = train & np.isfinite(tau)
        model = lgb.LGBMRegressor(n_estimators=1000, learning_rate=0.05, random_state=1,
                                  verbose=-1).fit(X[rows], tau[rows])
        columns.append(np.asarray(model.predict(X[scored]), dtype=np.float64))
    return np.column_stack(columns)


@pytest.mark.parametrize(("experiment", "start"), [
    ("child_placement", None), ("long_term_benefit", None),
    ("long_term_benefit", date(2021, 1, 1))],
    ids=["family support", "benefit programmes", "benefit programmes, history from 2021"])
def test_allocation_by_estimated_effect_against_the_oracle(experiment: str,
                                                            start: date | None) -> None:
    """Issue 6's allocation bar, printed with its verdict (xfail while it misses).

    Each experiment's cohort, held-out persons (30 %) at every as-of date the truth covers;
    per learner, one effect model per programme fitted on the other persons, on the
    experiment's as-of grid or on a longer history (every quarter from 2021). Each as-of
    date is one allocation round, as in ``overblik train`` and the service: places = 20 % of
    that round's held-out citizens expected to benefit from some programme (true effect >
    0), split equally, equal cost; the table sums the rounds' true benefit (one round of
    ~1,000 citizens moved a learner's share by +-4 points between rounds). Every policy is
    judged by the true effects: by each learner's estimated effect (the LP), by risk (a
    LightGBM classifier of the bad outcome on untreated training rows), at random, the
    oracle (the LP on the true effects), and the features' ceiling (the LP on a LightGBM
    fitted to the training rows' true effects). The verdict reads the DR learner, the
    estimator ``overblik train`` and the service use; the others show what else was tried.
    Bar: by effect >= 85 % of the oracle and above by risk.

    Why the benefit programmes miss (a probe, 2026-12-07, pooled over the rounds): given
    the *true* outcome nuisances, with only the propensity estimated, the DR learner
    reaches 70 % of the oracle, and 81 % only when the pseudo-outcomes' noise is cut to that
    of 64 times the rows (its final stage fitted to the true effects: 87 %). So the few
    treated rows (~900 per programme), not the nuisance models, hold it below the bar.
    """
    import lightgbm as lgb

    from overblik.models._allocation import compare_policies

    clean, truth_dir = quality_municipality()
    data, truth, person, held = _held_out_dataset(EventTables.load(clean), truth_dir,
                                                  experiment, start)
    effects = np.column_stack([truth[f"effect_{p}"].to_numpy(dtype=np.float64)
                               for p in data.programmes])
    scored = held & np.isfinite(effects).all(axis=1)
    as_of = pd.to_datetime(data.rows["as_of"]).to_numpy()[scored]
    rounds = [as_of == d for d in np.unique(as_of)]
    X = data.X.to_numpy(dtype=np.float64)
    tau = effects[scored]
    untreated = (data.programme == CONTROL) & ~held
    risk_model = lgb.LGBMClassifier(n_estimators=300, learning_rate=0.05, random_state=1,
                                    verbose=-1).fit(X[untreated], 1 - data.y[untreated])
    risk = np.asarray(risk_model.predict_proba(X[scored]))[:, 1]
    m = len(data.programmes)
    needed = [int((tau[r].max(axis=1) > 0).sum()) for r in rounds]
    places = [np.full(m, max(1, int(0.2 * k) // m)) for k in needed]

    def benefits(est: np.ndarray) -> dict[str, float]:
        """True benefit of each policy, summed over the rounds (``effect``: by ``est``)."""
        total: dict[str, float] = {}
        for r, p in zip(rounds, places, strict=True):
            comparison = compare_policies(est[r], places=p, costs=np.ones(m),
                                          budget=float("inf"), risk=risk[r],
                                          true_effects=tau[r])
            for k, v in comparison.benefit.items():
                total[k] = total.get(k, 0.0) + v
        return total

    estimates: dict[str, np.ndarray] = {}
    seconds: dict[str, float] = {}
    # The event whose hazard the programmes change: leaving benefit (y = 1), or a
    # placement (y = 0) that family support prevents.
    event: Literal[0, 1] = 1 if data.outcome == "long_term_benefit" else 0
    for name, template in _allocation_learners(event).items():
        columns = []
        begin = time.perf_counter()
        for programme in data.programmes:
            fit = ((data.programme == programme) | (data.programme == CONTROL)) & ~held
            t = (data.programme == programme).astype(np.int_)
            learner = clone(template).fit(X[fit], t[fit], data.y[fit], groups=person[fit])
            columns.append(learner.effect(X[scored]))
        seconds[name] = time.perf_counter() - begin
        estimates[name] = np.column_stack(columns)
    policies = benefits(estimates["DR"])
    oracle = policies["oracle"]
    share = {k: v / oracle for k, v in policies.items()}
    rows = []
    for name, est in estimates.items():
        benefit = policies["effect"] if name == "DR" else benefits(est)["effect"]
        rows.append([f"by effect: {name}", f"{benefit:.2f}", f"{benefit / oracle:.1%}",
                     f"{_rmse(est, tau):.4f}", f"{seconds[name]:.0f}"])
    ceiling = benefits(_features_ceiling(X, truth, data.programmes, train=~held,
                                         scored=scored))["effect"]
    rows.append(["features' ceiling (fitted to the true effects)", f"{ceiling:.2f}",
                 f"{ceiling / oracle:.1%}", "-", "-"])
    rows += [[f"by {k}", f"{policies[k]:.2f}", f"{share[k]:.1%}", "-", "-"]
             for k in ("risk", "random", "oracle")]
    meets = share["effect"] >= 0.85 and share["effect"] > share["risk"]
    grid = "the experiment's as-of grid" if start is None else f"as-of dates from {start}"
    print_table(
        f"Allocation at 20 % of the places needed, {len(rounds)} rounds summed "
        f"({sum(int(p.sum()) for p in places):,} places for {sum(needed):,} citizens "
        f"expected to benefit, {int(scored.sum()):,} scored, {experiment}, "
        f"{', '.join(data.programmes)}; learners fitted on {grid}), judged by the truth "
        f"(bar: by effect (DR) >= 85 % of oracle and above by risk: "
        f"{'meets' if meets else 'MISSES'})",
        ["policy", "true benefit", "share of oracle", "PEHE (scored rows)", "fit s"], rows)
    if not meets:
        # Visible in every bench run until the effects are good enough (issue 6 stays open).
        above = " (the bar is above it)" if ceiling / oracle < 0.85 else ""
        pytest.xfail(f"{experiment}: allocation by estimated effect (DR) reaches "
                     f"{share['effect']:.1%} of the oracle (bar 85 %), by risk "
                     f"{share['risk']:.1%}; a model fitted to the true effects reaches "
                     f"{ceiling / oracle:.1%}{above}")
