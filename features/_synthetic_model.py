"""The structural model of the synthetic municipality: parameters and hazard formulas.

The monthly simulation (:mod:`._synthetic_sim`) and the truth (:mod:`._synthetic_truth`)
both import their formulas from here, so the probabilities written to ``truth/`` are
computed from literally the same model that generated the recorded events.

Latent state
------------
Each person has four need domains (columns of a ``persons x 4`` array, higher = worse):
economic, mental health, family strain, employment distance. The state in month ``t`` is
``z_t = mu + a_t``: ``mu`` is persistent (household, district, age at entry, origin,
disability, individual factors) and ``a_t`` is a stationary AR(1) transient with
``a_t = RHO * a_{t-1} + sqrt(1 - RHO**2) * TRANSIENT_SD * shock``; the shock mixes a
household-shared part, a person-level part common to all domains and a domain-own part, so
problems co-occur across siloes and within households.

Hazards
-------
Outcome hazards are logistic in a linear index of the state: ``h = sigmoid(b0 + w @ z)``.
Programmes, surveillance and the like scale the *cumulative* hazard:
``h' = 1 - (1 - h) ** c`` (``c = 0.5`` halves a small hazard, ``c = 2`` doubles it), which
keeps ``h'`` a probability and lets the truth add log-survivals.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

Arr = npt.NDArray[Any]

DOMAINS: tuple[str, ...] = ("economic", "mental", "family", "employment")
ECON, MENTAL, FAMILY, EMPLOY = 0, 1, 2, 3

# --- latent dynamics ---------------------------------------------------------------------
RHO = 0.97  # monthly persistence of the transient: 3 years of history reveal the state
TRANSIENT_SD = np.array([0.22, 0.24, 0.18, 0.20], dtype=np.float32)
# Shock mix (squares sum to 1): household-shared, person-common across domains, own.
SHOCK_HOUSEHOLD = 0.5
SHOCK_COMMON = 0.4
SHOCK_OWN = math.sqrt(1.0 - SHOCK_HOUSEHOLD**2 - SHOCK_COMMON**2)
SHOCK_CORR = SHOCK_HOUSEHOLD**2 + SHOCK_COMMON**2  # correlation of two domains' shocks

# Persistent loadings per domain (econ, mental, family, employment) on: household common
# factor, household domain factor, person common factor, person domain factor, deprivation.
LOAD_HH_COMMON = np.array([0.50, 0.40, 0.70, 0.30], dtype=np.float32)
LOAD_HH_DOMAIN = np.array([0.30, 0.15, 0.30, 0.15], dtype=np.float32)
LOAD_PERSON_COMMON = np.array([0.30, 0.45, 0.10, 0.45], dtype=np.float32)
LOAD_PERSON_DOMAIN = np.array([0.35, 0.50, 0.12, 0.50], dtype=np.float32)
LOAD_DEPRIVATION = np.array([0.30, 0.10, 0.20, 0.25], dtype=np.float32)
SINGLE_PARENT_SHIFT = np.array([0.30, 0.0, 0.30, 0.0], dtype=np.float32)
DISABILITY_SHIFT = np.array([0.0, 0.40, 0.0, 0.60], dtype=np.float32)
# Origin shifts (danish, immigrant, descendant): need differs somewhat in economy and
# employment only; family strain and mental health do not differ by origin, so any origin
# gap in recorded child-welfare events beyond this is surveillance (label bias).
ORIGIN_SHIFT = np.array(
    [[0.0, 0.0, 0.0, 0.0], [0.30, 0.0, 0.0, 0.40], [0.15, 0.0, 0.0, 0.15]], dtype=np.float32
)

# District deprivation D01..D12 (D12 most deprived) and relative sizes.
DEPRIVATION = np.array([-1.0, -0.8, -0.6, -0.45, -0.3, -0.15, 0.0, 0.2, 0.4, 0.7, 1.0, 1.4],
                       dtype=np.float32)
DISTRICT_SIZE = np.array([1.0, 1.2, 0.9, 1.1, 1.3, 1.0, 1.2, 0.8, 1.0, 0.9, 0.8, 0.7])


def age_shift(age: Arr) -> Arr:
    """Persistent need shift by age (years at entry), ``len(age) x 4``."""
    out = np.zeros((len(age), 4), dtype=np.float32)
    young = (age >= 18) & (age < 30)
    out[young, ECON] += 0.25
    out[(age >= 67), ECON] -= 0.20
    out[(age >= 15) & (age < 30), MENTAL] += 0.15
    out[young & (age < 25), EMPLOY] -= 0.20
    out[(age >= 55), EMPLOY] += 0.30
    return out


# --- outcome hazards ---------------------------------------------------------------------
# child_placement: monthly placement hazard of a child 0-17 (child's own state, which
# carries the household's strain through the shared household factors).
PLACEMENT_B0 = -8.6
PLACEMENT_W = np.array([0.15, 0.25, 2.30, 0.0], dtype=np.float32)
# long_term_benefit: monthly exit hazard of a benefit spell (job or other end).
EXIT_B0 = -0.05
EXIT_W = np.array([-0.15, -0.25, 0.0, -1.60], dtype=np.float32)
PLACEMENT_END_MONTHLY = 1.0 / 30.0  # placements last ~2.5 years on average

# --- programmes (multipliers ``c`` on the cumulative hazard while enrolled) --------------
PROGRAMME_MONTHS = 6
FAMILY_SUPPORT_MULT = 0.5  # halves the placement hazard: helps the highest-risk most
MENTOR_PEAK = 1.4  # mentor multiplies the exit hazard by up to 1 + MENTOR_PEAK ...
MENTOR_CENTRE = 0.9  # ... for persons with employment distance near MENTOR_CENTRE
MENTOR_WIDTH = 0.55
DEBT_SLOPE = 0.35  # debt counselling raises the exit hazard in proportion to economic need


def mentor_mult(employment_distance: Arr) -> Arr:
    """Exit-hazard multiplier of the mentor programme: an inverted U in employment distance."""
    d = (employment_distance - MENTOR_CENTRE) / MENTOR_WIDTH
    return (1.0 + MENTOR_PEAK * np.exp(-0.5 * d * d)).astype(np.float32)


def debt_mult(economic_need: Arr) -> Arr:
    """Exit-hazard multiplier of debt counselling: grows with economic need."""
    return (1.0 + DEBT_SLOPE * np.clip(economic_need, 0.0, None)).astype(np.float32)


# --- demography ----------------------------------------------------------------------------
MOVE_OUT_MONTHLY = 0.0025  # per household: ~3 % a year leave the municipality
MOVE_IN_YEARLY = 0.03  # persons moving in per resident and year
BIRTH_PEAK_MONTHLY = 0.0095  # per woman at age 30; total fertility ~1.7


def death_monthly(age: Arr) -> Arr:
    """Monthly death probability by age in years (Gompertz, Danish-like)."""
    yearly = np.where(age < 30, 0.0004, np.exp(-10.6 + 0.094 * age))
    return (np.minimum(yearly, 0.6) / 12.0).astype(np.float64)


def birth_monthly(age: Arr) -> Arr:
    """Monthly probability that a woman of this age gives birth (ages 20-44)."""
    p = BIRTH_PEAK_MONTHLY * np.exp(-0.5 * ((age - 30.0) / 6.0) ** 2)
    return np.where((age >= 20) & (age < 45), p, 0.0)


# --- helpers -------------------------------------------------------------------------------
def log1m_sigmoid(eta: Arr) -> Arr:
    """``log(1 - sigmoid(eta))``, stable for large ``eta``."""
    return -np.logaddexp(0.0, eta)


def scaled_hazard(eta: Arr, c: Arr | float) -> Arr:
    """The hazard ``1 - (1 - sigmoid(eta)) ** c`` (``c`` scales the cumulative hazard)."""
    return -np.expm1(c * log1m_sigmoid(eta))


def index_transient_sd(weights: Arr) -> float:
    """Stationary SD of the transient part of the index ``weights @ a``."""
    w = np.asarray(weights, dtype=np.float64) * TRANSIENT_SD.astype(np.float64)
    corr = np.full((4, 4), SHOCK_CORR)
    np.fill_diagonal(corr, 1.0)
    return float(math.sqrt(w @ corr @ w))
