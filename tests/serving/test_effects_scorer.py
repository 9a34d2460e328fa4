"""The service's effect models on effects that differ between citizens (the served fixture's
model finds none): the reasons ``/recommend`` gives for a programme's effect are its
contributions that matter (at least 1 % of the effect), largest first, and none where the
model finds no differences, even when its contributions are not exactly zero; ``/allocate``
gives the places to the largest effects within places and budget."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest

from overblik.experiments._effects_model import EffectsModel
from overblik.features._feature_spec import FeatureDef
from overblik.models import DRLearner, MultiProgrammeEffects
from overblik.serving._effects import MATERIAL_SHARE, EffectsScorer

FEATURES = tuple(FeatureDef(f"x{i}", f"Oplysning {i}", f"Fact {i}", "health", "need", "count")
                 for i in range(4))


def _scorer(learner: DRLearner) -> tuple[EffectsScorer, np.ndarray]:
    """Mentoring helps in proportion to x0 (and not at all for x0 < 0); randomised."""
    rng = np.random.default_rng(3)
    n = 4000
    X = rng.normal(size=(n, len(FEATURES)))
    treated = rng.random(n) < 0.5
    y = X[:, 1] + treated * 0.5 * np.clip(X[:, 0], 0.0, None) + rng.normal(0.0, 0.5, n)
    effects = MultiProgrammeEffects(learner=learner).fit(
        X, np.where(treated, "mentoring", "none"), y)
    model = EffectsModel(effects=effects, programmes=("mentoring",), costs=(10.0,),
                         places=(100,), budget=None, outcome="synthetic",
                         feature_names=tuple(f.name for f in FEATURES), trained_until="2025-01-01")
    return EffectsScorer(model, FEATURES), X


@pytest.fixture(scope="module")
def varied() -> tuple[EffectsScorer, np.ndarray]:
    return _scorer(DRLearner(n_bootstrap=2, random_state=0))


def test_the_reasons_are_the_contributions_that_matter(
        varied: tuple[EffectsScorer, np.ndarray]) -> None:
    scorer, _ = varied
    row = np.array([2.0, 0.0, 0.3, -0.4])
    (answer,) = scorer.recommend(row, "en", 5)
    shares = scorer.contributions(row.reshape(1, -1))["mentoring"][0]
    assert answer.effect > answer.average > 0.0  # a large x0: more than the average
    assert answer.reasons, "a heterogeneous effect model gives reasons"
    assert answer.reasons[0].feature == "x0"
    assert answer.reasons[0].sentence == "Fact 0: 2 – raises the expected effect"
    floor = MATERIAL_SHARE * max(abs(answer.effect), abs(answer.average))
    material = sorted((abs(c) for c in shares[:-1] if abs(c) >= floor), reverse=True)
    assert [abs(r.contribution) for r in answer.reasons] == material


def test_no_reasons_where_the_model_finds_no_differences() -> None:
    # A final stage that barely moves from the average: its contributions are tiny but not 0.
    flat = lgb.LGBMRegressor(n_estimators=5, learning_rate=1e-6, verbose=-1, random_state=0)
    scorer, X = _scorer(DRLearner(final_model=flat, risk_stage=False, n_bootstrap=0))
    shares = scorer.contributions(X[:50])["mentoring"]
    assert np.abs(shares[:, :-1]).max() > 0.0
    for row in X[:50]:
        (answer,) = scorer.recommend(row, "da", 5)
        assert answer.effect == pytest.approx(answer.average, rel=1e-4)
        assert answer.reasons == []


def test_allocation_gives_the_places_to_the_largest_effects(
        varied: tuple[EffectsScorer, np.ndarray]) -> None:
    scorer, X = varied
    planned = scorer.allocate(X[:300], places={"mentoring": 20})
    effect = planned.estimates.effect[:, 0]
    assert np.ptp(effect) > 0.5  # who gets a place matters
    given = planned.allocation.assignment == 0
    assert given.sum() == 20 and planned.places == (20,)
    assert effect[given].min() >= effect[~given].max()
    assert planned.allocation.expected_benefit == pytest.approx(effect[given].sum())
    # A budget of 7.5 places at 10 each buys the 7 largest.
    tight = scorer.allocate(X[:300], places={"mentoring": 20}, budget=75.0)
    chosen = tight.allocation.assignment == 0
    assert chosen.sum() == 7 and tight.allocation.cost == pytest.approx(70.0)
    assert set(np.flatnonzero(chosen)) == set(np.argsort(-effect)[:7])
