"""Programme effects for ``/recommend`` and ``/allocate``, from the version's effect models.

The effect models (:class:`~overblik.experiments._effects_model.EffectsModel`, one
cross-fitted doubly-robust learner per programme against no programme) give, per citizen and
programme, the estimated reduction in the probability of the bad outcome (positive = the
programme helps), an interval (the spread of the bagged effect models), whether the citizen is
unlike anyone who got the programme (propensity outside the trimming bounds: an
extrapolation), and each feature's share of the effect (average + contributions = effect).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from overblik.experiments._effects_model import EffectsModel
from overblik.features._feature_spec import FeatureDef
from overblik.models import Allocation
from overblik.serving._reasons import Language, reasons_for
from overblik.serving._schemas import EffectReason, EffectsInfo, ProgrammeEffect, ProgrammeInfo

__all__ = ["EFFECT_SCALE", "MATERIAL_SHARE", "NO_EFFECTS", "EffectsScorer", "Estimates",
           "PlannedAllocation", "material_size", "suggest"]

F64 = npt.NDArray[np.float64]
NO_EFFECTS = ("has no effect models: it was trained without an `effects:` section. Add one "
              "to the experiment file (the programmes with their places and cost per place), "
              "retrain with `overblik train`, and have the new version reviewed and promoted")
# A reason must move the effect by at least this share of it. An effect model that found
# (almost) no differences between citizens, e.g. a risk stage under its strongest penalty,
# still splits a deviation of 1e-7 from the average exactly over the features; naming those
# as what "raises the expected effect" would tell the caseworker something that is not so.
MATERIAL_SHARE = 0.01
EFFECT_SCALE: dict[Language, str] = {
    "da": "Effekten er den forventede reduktion i sandsynligheden for udfaldet inden for "
          "horisonten, hvis borgeren får tilbuddet frem for intet tilbud (0,05 = 5 "
          "procentpoint; positiv = tilbuddet hjælper). Intervallet er spredningen mellem de "
          "samlede effektmodeller. Ekstrapoleret: borgeren ligner ingen, der har fået "
          "tilbuddet, så effekten er usikker og foreslås ikke. Gennemsnit + summen af "
          "bidragene = effekten. Begrundelserne er de oplysninger, der flytter borgerens "
          "effekt mindst 1 % af effekten (eller af gennemsnittet, hvis det er større) væk "
          "fra gennemsnittet; ingen, når modellen ikke finder forskelle mellem borgerne.",
    "en": "The effect is the expected reduction in the probability of the outcome within the "
          "horizon if the citizen gets the programme rather than none (0.05 = 5 percentage "
          "points; positive = the programme helps). The interval is the spread of the bagged "
          "effect models. Extrapolated: the citizen is unlike anyone who got the programme, "
          "so the effect is uncertain and never suggested. Average + sum of the "
          "contributions = effect. The reasons are the features that move the citizen's "
          "effect away from the average by at least 1 % of the effect (or of the average, "
          "if larger); none when the model finds no differences between citizens.",
}


def _finite(value: float) -> float | None:
    return None if math.isnan(value) else float(value)


@dataclass(frozen=True)
class Estimates:
    """Effects of every programme for rows of ``X``, each of shape (n, programmes)."""

    effect: F64
    ci_low: F64
    ci_high: F64
    extrapolated: npt.NDArray[np.bool_]


@dataclass(frozen=True)
class PlannedAllocation:
    """An allocation with the limits it was made under (programme order of the model)."""

    allocation: Allocation
    estimates: Estimates
    places: tuple[int, ...]
    costs: tuple[float, ...]
    budget: float | None


def material_size(effect: float, average: float) -> float:
    """The smallest contribution worth naming as a reason for this effect."""
    return MATERIAL_SHARE * max(abs(effect), abs(average))


def suggest(programmes: list[ProgrammeEffect]) -> str | None:
    """The programme with the largest effect whose interval is above zero and that is not
    an extrapolation; None when there is none."""
    ok = [p for p in programmes
          if p.ci_low is not None and p.ci_low > 0 and not p.extrapolated]
    return max(ok, key=lambda p: p.effect).programme if ok else None


class EffectsScorer:
    """The served version's effect models, in the service's terms."""

    def __init__(self, model: EffectsModel, features: tuple[FeatureDef, ...]) -> None:
        self.model = model
        self.features = features
        self.programmes = list(model.programmes)

    def estimates(self, X: F64) -> Estimates:
        """Effect, interval and extrapolation flag of every row and programme."""
        n, m = len(X), len(self.programmes)
        frame = self.model.frame(X)  # ordered by row, then programme

        def grid(column: str) -> F64:
            return np.asarray(frame[column].to_numpy(dtype=np.float64)).reshape(n, m)

        return Estimates(effect=grid("effect"), ci_low=grid("ci_low"), ci_high=grid("ci_high"),
                         extrapolated=frame["trimmed"].to_numpy(dtype=bool).reshape(n, m))

    def contributions(self, X: F64) -> dict[str, F64]:
        """Per programme, ``(n, n_features + 1)``: each feature's share, then the average."""
        return self.model.contributions(X)

    def check(self, X: F64) -> float:
        """The largest gap between an effect and its average + contributions."""
        effect = self.model.effect(X)
        contrib = self.contributions(X)
        gaps = [np.abs(contrib[p].sum(axis=1) - effect[:, j]).max(initial=0.0)
                for j, p in enumerate(self.programmes) if p in contrib]
        return float(max(gaps, default=0.0))

    def recommend(self, row: F64, lang: Language, top: int) -> list[ProgrammeEffect]:
        """Every programme's effect for one citizen with its reasons, largest first."""
        X = row.reshape(1, -1)
        est = self.estimates(X)
        contrib = self.contributions(X)
        out = []
        for j, p in enumerate(self.programmes):
            shares = contrib.get(p)
            effect = float(est.effect[0, j])
            average = float(shares[0, -1]) if shares is not None else effect
            reasons = [] if shares is None else [
                EffectReason(feature=r.feature, sentence=r.sentence, value=r.value,
                             contribution=r.contribution, direction=r.direction)
                # The average (last column) is no feature's: only the features' shares.
                for r in reasons_for(self.features, row, shares[0, :-1], lang, top,
                                     of="effect", min_size=material_size(effect, average))]
            out.append(ProgrammeEffect(
                programme=p, effect=effect, ci_low=_finite(est.ci_low[0, j]),
                ci_high=_finite(est.ci_high[0, j]), extrapolated=bool(est.extrapolated[0, j]),
                cost=float(self.model.costs[j]), average=average, reasons=reasons))
        # Stable: equal effects keep the model's programme order.
        return sorted(out, key=lambda e: -e.effect)

    def allocate(self, X: F64, *, places: dict[str, int] | None = None,
                 costs: dict[str, float] | None = None,
                 budget: float | None = None) -> PlannedAllocation:
        """The best allocation of the places among the rows of ``X``.

        ``places`` and ``costs`` override the version's for the programmes they name (names
        must be programmes of the model); ``budget`` None keeps the version's.
        """
        m = self.model
        chosen_places = tuple(int((places or {}).get(p, m.places[j]))
                              for j, p in enumerate(self.programmes))
        chosen_costs = tuple(float((costs or {}).get(p, m.costs[j]))
                             for j, p in enumerate(self.programmes))
        chosen_budget = m.budget if budget is None else float(budget)
        if len(X) == 0:  # nobody to allocate to (the models refuse an empty matrix)
            k = len(self.programmes)
            empty = np.empty((0, k))
            return PlannedAllocation(
                allocation=Allocation(assignment=np.empty(0, dtype=np.int64),
                                      expected_benefit=0.0,
                                      places_used=np.zeros(k, dtype=np.int64), cost=0.0,
                                      method="none", upper_bound=0.0),
                estimates=Estimates(effect=empty, ci_low=empty, ci_high=empty,
                                    extrapolated=np.empty((0, k), dtype=bool)),
                places=chosen_places, costs=chosen_costs, budget=chosen_budget)
        est = self.estimates(X)
        allocation = m.allocate(est.effect, places=chosen_places, costs=chosen_costs,
                                budget=chosen_budget)
        return PlannedAllocation(allocation=allocation, estimates=est, places=chosen_places,
                                 costs=chosen_costs, budget=chosen_budget)

    def info(self) -> EffectsInfo:
        """What ``GET /metadata`` says about the effect models."""
        m = self.model
        ate = m.ate
        return EffectsInfo(
            available=True, outcome=m.outcome, budget=m.budget, trained_until=m.trained_until,
            programmes=[ProgrammeInfo(
                name=p, places=int(m.places[j]), cost=float(m.costs[j]),
                average_effect=float(ate[p].estimate) if p in ate else None,
                average_effect_ci=(float(ate[p].ci_low), float(ate[p].ci_high))
                if p in ate else None) for j, p in enumerate(self.programmes)])
