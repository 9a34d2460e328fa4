"""The truth: outcome probabilities and programme effects per person, as-of date and outcome.

How the probabilities are computed
----------------------------------
By forward simulation of the latent state from the as-of date, integrated numerically with
a fixed set of ``K`` paths shared by every row (common random numbers). The outcome hazards
depend on the state through a linear index ``eta = b0 + w @ (mu + a_t)``; the persistent
part ``w @ mu`` is known, and the transient part ``w @ a_t`` is itself an AR(1) with the same
``RHO``, so one dimension per row suffices:
``eta_{t0+j} = b0 + w @ mu + RHO**j * (w @ a_t0) + sd * e_j`` with ``e_0 = 0`` and
``e_j = RHO * e_{j-1} + sqrt(1 - RHO**2) * xi_j``. Month ``j`` first removes persons who
leave the municipality (household move or death, as in the simulation), then applies the
hazard (cumulative hazard scaled by ``c_j``: programmes, surveillance, age limits). So the
probabilities are those of the very process that generated the recorded events, up to the
numerical integration error of ``K`` antithetic paths.

Columns (one row per person, as-of date and outcome, for persons in the outcome's cohort):

- ``p_need``: probability of the outcome within 12 months with no programme and unbiased
  recording (``c_j = 1``).
- ``p_realised``: probability of the *recorded* outcome under what actually happened: the
  surveillance multiplier on recording (placements) and the programmes the person was
  enrolled in, taken as a plan: a programme enrolled after the as-of date acts from its start
  month if the person is still at risk then. Averaged over a cohort it matches the realised
  labels; for the persons enrolled later it is not conditioned on their having stayed at
  risk until enrolment.
- ``effect_<programme>``: ``p_need - p_with`` where ``p_with`` enrols the person at the
  as-of date for the programme's six months (same unbiased world); positive = helps. Null
  for programmes that do not act on the row's outcome; exactly 0 for ``job_course``.
- ``received_<programme>``: enrolled at the as-of date's quarter (False if not eligible).
- ``need_<domain>``: the latent state at the as-of date (diagnostics).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from overblik.features import _synthetic_model as m
from overblik.features._synthetic_model import Arr
from overblik.features._synthetic_population import add_years
from overblik.features._synthetic_sim import (
    DAY,
    DEBT_COUNSELLING,
    FAMILY_SUPPORT,
    JOB_COURSE,
    MENTOR,
    PROGRAMME_NAMES,
    SimResult,
)

if TYPE_CHECKING:
    from overblik.features._synthetic import SyntheticConfig

HORIZON = 12
OUTCOMES: tuple[str, ...] = ("child_placement", "long_term_benefit")
OUTCOME_PROGRAMMES: dict[str, tuple[int, ...]] = {
    "child_placement": (FAMILY_SUPPORT,),
    "long_term_benefit": (MENTOR, DEBT_COUNSELLING, JOB_COURSE),
}
N_PATHS = 64  # 32 antithetic pairs
_CHUNK = 4096


def transient_paths(rng: np.random.Generator, k: int = N_PATHS) -> Arr:
    """``k`` standardised AR(1) paths over the horizon, starting at 0 (antithetic pairs)."""
    half = rng.standard_normal((k // 2, HORIZON))
    xi = np.concatenate([half, -half])
    e = np.zeros((k, HORIZON))
    for j in range(1, HORIZON):
        e[:, j] = m.RHO * e[:, j - 1] + math.sqrt(1 - m.RHO**2) * xi[:, j]
    return e


def _departure(sim: SimResult, idx: Arr, t0: int, msd: Arr) -> Arr:
    """Monthly probability of leaving (household move or death) in months ``t0..t0+11``."""
    ms = msd[t0: t0 + HORIZON]
    age = (ms[None, :] - sim.pop.birth_day[idx, None]) / 365.25
    return 1.0 - (1.0 - m.MOVE_OUT_MONTHLY) * (1.0 - m.death_monthly(age))


def _realised_mult(sim: SimResult, idx: Arr, t0: int, programmes: tuple[int, ...]) -> Arr:
    """Hazard multipliers (rows x horizon) from the programmes the persons actually got."""
    out = np.ones((len(idx), HORIZON), dtype=np.float64)
    sel = (np.isin(sim.enrol_programme, programmes)
           & (sim.enrol_month <= t0 + HORIZON - 1)
           & (sim.enrol_month + m.PROGRAMME_MONTHS > t0))
    person, month, mult = sim.enrol_person[sel], sim.enrol_month[sel], sim.enrol_mult[sel]
    pos = np.searchsorted(idx, person)
    ok = pos < len(idx)
    ok[ok] = idx[pos[ok]] == person[ok]
    pos, month, mult = pos[ok], month[ok], mult[ok]
    for j in range(HORIZON):
        active = (month <= t0 + j) & (t0 + j < month + m.PROGRAMME_MONTHS)
        out[pos[active], j] = mult[active]
    return out


def _probabilities(pers: Arr, trans: Arr, sd: float, paths: Arr, depart: Arr,
                   scenarios: list[Arr], survival: bool) -> list[Arr]:
    """Outcome probability per row for each scenario of cumulative-hazard multipliers.

    ``survival=True``: probability that the spell survives all 12 months (no exit, no
    departure). ``False``: probability that the event happens within 12 months while the
    person is still present.
    """
    out = [np.empty(len(pers)) for _ in scenarios]
    decay = (m.RHO ** np.arange(HORIZON)).astype(np.float32)
    present = np.cumprod(1.0 - depart, axis=1).astype(np.float32)  # here after month j
    base = scenarios[0]
    # Most rows have the same multipliers as the first scenario (no bias, no programme):
    # compute the others only where they differ, and copy the rest.
    differs = [np.ones(len(pers), dtype=bool)] + [(c != base).any(axis=1) for c in scenarios[1:]]
    paths32 = (sd * paths).astype(np.float32)
    for lo in range(0, len(pers), _CHUNK):
        hi = min(lo + _CHUNK, len(pers))
        eta = ((pers[lo:hi, None, None] + trans[lo:hi, None, None] * decay).astype(np.float32)
               + paths32[None, :, :])
        log_s = m.log1m_sigmoid(eta)  # log(1 - h) per row, path, month
        for k, c in enumerate(scenarios):
            rows = np.flatnonzero(differs[k][lo:hi])
            if k and len(rows) < hi - lo:
                out[k][lo:hi] = out[0][lo:hi]
            if len(rows) == 0:
                continue
            sub = slice(None) if len(rows) == hi - lo else rows
            cl = log_s[sub] * c[lo:hi][sub][:, None, :].astype(np.float32)
            here = present[lo:hi][sub]
            if survival:
                p = np.exp(cl.sum(axis=2)).mean(axis=1) * here[:, -1]
            else:
                # P(event in month j) = here_j * S_{j-1} * (1 - exp(c_j log(1 - h_j))); the
                # expm1 form keeps small probabilities exact in float32.
                before = np.exp(np.cumsum(cl, axis=2) - cl)
                p = (before * -np.expm1(cl) * here[:, None, :]).sum(axis=2).mean(axis=1)
            out[k][lo + rows] = p
    return [np.clip(p, 0.0, 1.0) for p in out]


def compute_truth(sim: SimResult, cfg: SyntheticConfig, msd: Arr,
                  rng: np.random.Generator) -> pd.DataFrame:
    """The truth table (without CPR/pseudonym columns: the writer adds them from ``person``)."""
    paths = transient_paths(rng)
    frames: list[pd.DataFrame] = []
    bd18 = add_years(sim.pop.birth_day, 18)
    for snap in sim.snapshots:
        t0 = snap.month
        as_of = pd.Timestamp(int(msd[t0]) * DAY, unit="s")
        for outcome in OUTCOMES:
            if outcome == "child_placement":
                idx, a, recv, w, b0 = (snap.child, snap.child_a, snap.child_received,
                                       m.PLACEMENT_W, m.PLACEMENT_B0)
            else:
                idx, a, recv, w, b0 = (snap.benefit, snap.benefit_a, snap.benefit_received,
                                       m.EXIT_W, m.EXIT_B0)
            if len(idx) == 0:
                continue
            w64 = w.astype(np.float64)
            z = sim.mu[idx].astype(np.float64) + a
            pers = b0 + sim.mu[idx].astype(np.float64) @ w64
            trans = a.astype(np.float64) @ w64
            depart = _departure(sim, idx, t0, msd)
            first6 = (np.arange(HORIZON) < m.PROGRAMME_MONTHS)[None, :]
            realised = _realised_mult(sim, idx, t0, OUTCOME_PROGRAMMES[outcome])
            if outcome == "child_placement":
                # No placement hazard in a month the child turns 18 in (as in the simulation).
                need = (msd[None, t0 + 1: t0 + 1 + HORIZON] <= bd18[idx, None]).astype(float)
                with_fs = need * np.where(first6, m.FAMILY_SUPPORT_MULT, 1.0)
                scen = [need, need * sim.bias[idx, None] * realised, with_fs]
                p_need, p_real, p_fs = _probabilities(pers, trans, m.index_transient_sd(w),
                                                      paths, depart, scen, survival=False)
                effects = {FAMILY_SUPPORT: p_need - p_fs}
            else:
                need = np.ones((len(idx), HORIZON))
                mentor = np.where(first6, m.mentor_mult(z[:, m.EMPLOY])[:, None], 1.0)
                debt = np.where(first6, m.debt_mult(z[:, m.ECON])[:, None], 1.0)
                p_need, p_real, p_mentor, p_debt = _probabilities(
                    pers, trans, m.index_transient_sd(w), paths, depart,
                    [need, realised, mentor, debt], survival=True)
                effects = {MENTOR: p_need - p_mentor, DEBT_COUNSELLING: p_need - p_debt,
                           JOB_COURSE: np.zeros(len(idx))}  # helps nobody: exactly zero
            cols: dict[str, object] = {
                "person": idx,
                "as_of": np.full(len(idx), as_of),
                "outcome": outcome,
                "p_need": p_need,
                "p_realised": p_real,
            }
            for p, name in enumerate(PROGRAMME_NAMES):
                cols[f"effect_{name}"] = effects.get(p, np.full(len(idx), np.nan))
            for p, name in enumerate(PROGRAMME_NAMES):
                cols[f"received_{name}"] = recv == p
            for d, name in enumerate(m.DOMAINS):
                cols[f"need_{name}"] = z[:, d]
            frames.append(pd.DataFrame(cols))
    if not frames:
        raise ValueError("no truth rows: the window has no as-of dates with a cohort")
    out = pd.concat(frames, ignore_index=True)
    out["as_of"] = out["as_of"].astype("datetime64[ns]")
    return out
