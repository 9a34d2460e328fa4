"""The synthetic municipality: raw extracts with a known truth behind them.

``generate(config, out)`` writes

- ``out/raw/<source>.parquet`` (or ``.csv``) for the population register and the six silo
  event tables, exactly in the source contracts of :mod:`overblik.features._contracts`, with
  fake but well-formed CPR numbers;
- ``out/truth/truth.parquet``: per person, as-of date and outcome, the need probability,
  the realised-scenario probability, true programme effects, programmes received and the
  latent state. The probabilities are computed by simulating the latent state forward from
  the as-of date (the same AR(1) and hazards as the simulation, integrated over 64 shared
  antithetic paths), not by freezing it; see :mod:`overblik.features._synthetic_truth`;
- ``out/truth/programmes.parquet``: one row per programme enrolment;
- ``out/manifest.json``: seed, parameters, row counts, package versions, duration.

The model (latent need per domain, events from rates in the need, outcome hazards,
programmes with capacity, caseworker assignment from recorded events, label bias on
recording) is described in :mod:`overblik.features._synthetic_model` and
:mod:`overblik.features._synthetic_sim`. Everything is drawn from one ``SeedSequence(seed)``
spawned into fixed per-purpose streams: the same config gives the same data.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import date
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from overblik.features._contracts import DISTRICT_CODES, ORIGIN_CODES, SOURCE_BY_NAME
from overblik.features._errors import InputError
from overblik.features._pseudonym import demo_key, pseudonymise
from overblik.features._synthetic_model import Arr
from overblik.features._synthetic_population import make_cprs, make_population
from overblik.features._synthetic_sim import (
    DAY,
    PROGRAMME_NAMES,
    SILO_CATEGORIES,
    SILO_CODES,
    SILO_FLOATS,
    simulate,
)
from overblik.features._synthetic_truth import OUTCOMES, compute_truth

__all__ = ["PROGRAMMES", "Manifest", "Programme", "SyntheticConfig", "generate"]

Format = Literal["parquet", "csv"]
# Fixed order of the random streams spawned from the seed (append only: reordering would
# change every data set made so far).
_STREAMS = ("population", "latent", "demography", "cf", "cf_attr", "employment",
            "employment_attr", "health", "health_attr", "schools", "economy", "digital",
            "assign", "cpr", "truth")


@dataclass(frozen=True)
class Programme:
    """A programme with limited places: where it is recorded and which outcome it acts on."""

    name: str
    silo: str
    outcome: str
    description: str


PROGRAMMES: tuple[Programme, ...] = (
    Programme("family_support", "children_families", "child_placement",
              "intensive family support for a child: halves the placement hazard for six "
              "months, so the absolute benefit is largest for the highest-risk children"),
    Programme("mentor", "employment", "long_term_benefit",
              "mentor for an adult on benefit: raises the spell-exit hazard most for a middle "
              "employment distance (inverted U); the highest-risk adults gain little"),
    Programme("debt_counselling", "economy", "long_term_benefit",
              "debt counselling for an adult on benefit: raises the exit hazard in proportion "
              "to economic need (benefit aligned with risk)"),
    Programme("job_course", "employment", "long_term_benefit",
              "job-training course for an adult on benefit: no effect on anyone (true effect "
              "exactly 0)"),
)
assert tuple(p.name for p in PROGRAMMES) == PROGRAMME_NAMES


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of a synthetic municipality.

    Parameters
    ----------
    citizens
        Residents at the window start (births and moves in/out come on top).
    years
        Length of the simulated window in years (at least 3: the as-of grid runs from
        ``start + 2 years`` to ``start + years - 1 year``).
    seed
        Seed of every random draw.
    start
        First day of the window (must be the first day of a month); the window must end
        before today.
    label_bias
        Multiplier on the *recorded* child-welfare notifications/investigations, emergency
        and psychiatric contacts and placement hazard of the surveilled group; 1.0 = none.
    surveilled_group
        Origin codes under more surveillance.
    fmt
        File format of the raw extracts.
    capacity_family_support, capacity_mentor, capacity_debt_counselling, capacity_job_course
        Places per quarter as a share of the persons eligible at the quarter start.
    """

    citizens: int
    years: int
    seed: int
    start: date = date(2021, 1, 1)
    label_bias: float = 1.6
    surveilled_group: tuple[str, ...] = ("immigrant", "descendant")
    fmt: Format = "parquet"
    capacity_family_support: float = 0.03
    capacity_mentor: float = 0.04
    capacity_debt_counselling: float = 0.03
    capacity_job_course: float = 0.04

    def __post_init__(self) -> None:
        object.__setattr__(self, "surveilled_group", tuple(self.surveilled_group))
        if not isinstance(self.citizens, int) or self.citizens < 50:
            raise InputError(f"citizens={self.citizens!r}: give at least 50 residents")
        if not isinstance(self.years, int) or self.years < 3:
            raise InputError(f"years={self.years!r}: give at least 3 years (two years of "
                             "history plus the 12-month horizon of the first as-of date)")
        if self.start.day != 1:
            raise InputError(f"start={self.start}: the window must start on the first day of "
                             f"a month, e.g. start={self.start.replace(day=1)}")
        if self.start.year < 1997:
            raise InputError(f"start={self.start}: start in 1997 or later (older residents "
                             "would need 19th-century CPR numbers)")
        end = self.window_end
        today = date.today()
        if end > today:
            latest = date(today.year - self.years, today.month, 1)
            raise InputError(
                f"start={self.start} + years={self.years} ends on {end}, after today "
                f"({today}): the window must lie in the past; use an earlier start "
                f"(e.g. start={latest}) or fewer years")
        if not (self.label_bias > 0 and math.isfinite(self.label_bias)):
            raise InputError(f"label_bias={self.label_bias}: give a finite number > 0 (1.0 = no "
                             "bias)")
        unknown = set(self.surveilled_group) - set(ORIGIN_CODES)
        if unknown:
            raise InputError(f"surveilled_group has unknown origin codes {sorted(unknown)}: "
                             f"use codes from {ORIGIN_CODES}")
        if self.fmt not in ("parquet", "csv"):
            raise InputError(f"fmt={self.fmt!r}: use 'parquet' or 'csv'")
        for name in PROGRAMME_NAMES:
            share = self.capacity(name)
            if not 0.0 <= share <= 1.0:
                raise InputError(f"capacity_{name}={share}: a share of eligible persons "
                                 "between 0 and 1")

    @property
    def window_end(self) -> date:
        """First day after the window."""
        return date(self.start.year + self.years, self.start.month, 1)

    def capacity(self, programme: str) -> float:
        """Places per quarter as a share of eligible persons, for a programme name."""
        value: float = getattr(self, f"capacity_{programme}")
        return value

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready parameters."""
        out = asdict(self)
        out["start"] = self.start.isoformat()
        out["surveilled_group"] = list(self.surveilled_group)
        return out


@dataclass
class Manifest:
    """What was generated, how, and how long it took (written as ``out/manifest.json``)."""

    seed: int
    parameters: dict[str, Any]
    row_counts: dict[str, int]
    versions: dict[str, str]
    duration_seconds: float
    window_start: str
    window_end: str
    as_of_dates: list[str]
    base_rates: dict[str, dict[str, float]] = field(default_factory=dict)
    places: dict[str, dict[str, int]] = field(default_factory=dict)
    enrolments: dict[str, dict[str, int]] = field(default_factory=dict)
    pseudonym_key_fingerprint: str = ""
    demo: bool = True

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        """Read a ``manifest.json`` written by :func:`generate`."""
        data = json.loads(Path(path).read_text())
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


def _month_starts(start: date, months: int) -> Arr:
    first = np.datetime64(start.isoformat(), "M")
    out: Arr = (first + np.arange(months + 1)).astype("datetime64[D]").astype(np.int64)
    return out


def _asof_months(cfg: SyntheticConfig, msd: Arr) -> list[int]:
    """Quarter starts from ``start + 2 years`` to ``start + years - 1 year`` (inclusive)."""
    cal = msd.astype("datetime64[D]").astype("datetime64[M]").astype(np.int64) % 12
    last = 12 * (cfg.years - 1)
    return [t for t in range(24, last + 1) if cal[t] % 3 == 0]


def _timestamps(seconds: Arr, null: Arr | None = None) -> pa.Array:
    ns = np.asarray(seconds, dtype=np.int64) * 1_000_000_000
    return pa.array(ns, type=pa.timestamp("ns"), mask=null)


def _codes(values: tuple[str, ...], idx: Arr) -> pa.Array:
    idx = np.asarray(idx)
    return pa.array(list(values), type=pa.string()).take(
        pa.array(idx.astype(np.int32), mask=idx < 0))


def _floats(values: Arr) -> pa.Array:
    v = np.asarray(values, dtype=np.float64)
    return pa.array(v, mask=np.isnan(v))


def _write(table: pa.Table, path: Path, fmt: Format) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(table, path)
    else:
        pacsv.write_csv(table, path)


def _versions() -> dict[str, str]:
    import platform
    from importlib import metadata

    out = {"numpy": np.__version__, "pandas": pd.__version__, "pyarrow": pa.__version__,
           "python": platform.python_version()}
    try:
        out["overblik"] = metadata.version("overblik")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        out["overblik"] = "unknown"
    return out


def _check_out(out: Path) -> None:
    """Only an empty folder or an earlier run's output is written into: a typo must not
    spill raw extracts with CPR numbers into, say, an ingested folder."""
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file: give a folder")
    if out.is_dir() and any(out.iterdir()) and not (out / "manifest.json").is_file():
        raise InputError(f"--out {out} holds other files (no manifest.json of an earlier "
                         "`overblik generate`): give an empty or new folder")
    for parent in out.parents:
        if parent.exists() and not parent.is_dir():
            raise InputError(f"--out {out}: {parent} is a file, not a folder")


def generate(config: SyntheticConfig, out: Path,
             progress: Callable[[str, int, int], None] | None = None) -> Manifest:
    """Simulate a municipality and write its raw extracts, truth and manifest under ``out``.

    Parameters
    ----------
    config
        What to generate.
    out
        Output folder (created; files of an earlier run are overwritten).
    progress
        Called as ``progress(step, done, total)`` once per simulated month.

    Returns
    -------
    Manifest
        Also written to ``out/manifest.json``.

    Raises
    ------
    InputError
        When ``out`` is a file, or a folder holding anything but an earlier run's output.
    """
    began = time.perf_counter()
    out = Path(out)
    _check_out(out)
    months = 12 * config.years
    msd = _month_starts(config.start, months)
    asof = _asof_months(config, msd)
    seeds = np.random.SeedSequence(config.seed).spawn(len(_STREAMS))
    streams = {name: np.random.Generator(np.random.PCG64(s)) for name, s in zip(_STREAMS, seeds,
                                                                                 strict=True)}

    pop = make_population(streams["population"], config.citizens, config.years,
                          int(msd[0]), msd)
    sim = simulate(config, pop, msd, streams, asof, progress)
    n_reg = pop.n_initial + pop.n_movein + sim.n_born
    cprs = make_cprs(streams["cpr"], pop.birth_day[:n_reg], pop.sex[:n_reg])
    cpr_arr = pa.array(cprs, type=pa.string())
    ext = "parquet" if config.fmt == "parquet" else "csv"
    counts: dict[str, int] = {}

    # Population register.
    hh = pop.hh[:n_reg]
    hh_ids = pa.array([f"H{h:07d}" for h in range(pop.n_households)], type=pa.string())
    move_out, death = sim.move_out_day[:n_reg], sim.death_day[:n_reg]
    register = {
        "cpr": cpr_arr,
        "birth_date": _timestamps(pop.birth_day[:n_reg] * DAY),
        "sex": _codes(("F", "M"), pop.sex[:n_reg]),
        "district": _codes(DISTRICT_CODES, pop.hh_district[hh]),
        "household_id": hh_ids.take(pa.array(hh)),
        "origin": _codes(ORIGIN_CODES, pop.origin[:n_reg]),
        "disability": pa.array(pop.disability[:n_reg], type=pa.bool_()),
        "move_in_date": _timestamps(pop.move_in_day[:n_reg] * DAY),
        "move_out_date": _timestamps(move_out * DAY, move_out < 0),
        "death_date": _timestamps(death * DAY, death < 0),
    }
    _write_source("population", register, out, ext, config.fmt, counts)

    # Silo event tables.
    for name, ev in sim.events.items():
        cols: dict[str, pa.Array] = {
            "cpr": cpr_arr.take(pa.array(ev["person"])),
            "event_time": _timestamps(ev["time"]),
            "event_type": _codes(SILO_CODES[name], ev["event_type"]),
        }
        for c, values in SILO_CATEGORIES[name].items():
            cols[c] = _codes(values, ev[c])
        for c in SILO_FLOATS[name]:
            cols[c] = _floats(ev[c])
        _write_source(name, cols, out, ext, config.fmt, counts)
        del cols
    sim.events.clear()  # the largest arrays: free them before the truth

    # Truth and programmes, keyed by CPR and by the demo-key pseudonym.
    truth = compute_truth(sim, config, msd, streams["truth"])
    persons = np.unique(np.concatenate([truth["person"].to_numpy(), sim.enrol_person]))
    key = demo_key()
    pid = pseudonymise(pd.Series(cprs[persons]), key).to_numpy(dtype=object)
    pos = np.searchsorted(persons, truth["person"].to_numpy())
    truth_cols: dict[str, pa.Array] = {
        "cpr": pa.array(cprs[truth["person"].to_numpy()], type=pa.string()),
        "person_id": pa.array(pid[pos], type=pa.string()),
    }
    for c in truth.columns.drop("person"):
        if c == "as_of":
            truth_cols[c] = pa.array(truth[c].to_numpy(dtype="datetime64[ns]"),
                                     type=pa.timestamp("ns"))
        elif c == "outcome":
            truth_cols[c] = pa.array(truth[c].to_numpy(dtype=object), type=pa.string())
        elif c.startswith("received_"):
            truth_cols[c] = pa.array(truth[c].to_numpy(dtype=bool), type=pa.bool_())
        else:
            truth_cols[c] = _floats(truth[c].to_numpy(dtype=np.float64))
    path = out / "truth" / "truth.parquet"
    _write(pa.table(truth_cols), path, "parquet")
    counts["truth/truth.parquet"] = len(truth)

    epos = np.searchsorted(persons, sim.enrol_person)
    programmes = pa.table({
        "cpr": pa.array(cprs[sim.enrol_person], type=pa.string()),
        "person_id": pa.array(pid[epos], type=pa.string()),
        "programme": _codes(PROGRAMME_NAMES, sim.enrol_programme),
        "start": _timestamps(sim.enrol_start),
        "end": _timestamps(sim.enrol_end, sim.enrol_end < 0),
    })
    _write(programmes, out / "truth" / "programmes.parquet", "parquet")
    counts["truth/programmes.parquet"] = programmes.num_rows

    def stamp(t: int) -> str:
        return str(msd[t].astype("datetime64[D]"))

    base_rates = {
        o: {"rows": int((truth["outcome"] == o).sum()),
            "p_need": float(truth.loc[truth["outcome"] == o, "p_need"].mean()),
            "p_realised": float(truth.loc[truth["outcome"] == o, "p_realised"].mean())}
        for o in OUTCOMES
    }
    enrolments = {name: {stamp(int(t)): int(n) for t, n in zip(
        *np.unique(sim.enrol_month[sim.enrol_programme == p], return_counts=True), strict=True)}
        for p, name in enumerate(PROGRAMME_NAMES)}
    manifest = Manifest(
        seed=config.seed,
        parameters=config.to_dict(),
        row_counts=counts,
        versions=_versions(),
        duration_seconds=0.0,
        window_start=config.start.isoformat(),
        window_end=config.window_end.isoformat(),
        as_of_dates=[stamp(t) for t in asof],
        base_rates=base_rates,
        places={name: {stamp(t): n for t, n in sorted(sim.places[name].items())}
                for name in PROGRAMME_NAMES},
        enrolments=enrolments,
        pseudonym_key_fingerprint=key.fingerprint,
    )
    manifest.duration_seconds = round(time.perf_counter() - began, 3)
    (out / "manifest.json").write_text(manifest.to_json() + "\n")
    return manifest


def _write_source(name: str, cols: dict[str, pa.Array], out: Path, ext: str, fmt: Format,
                  counts: dict[str, int]) -> None:
    """Write one raw extract in its contract's column order."""
    expected = SOURCE_BY_NAME[name].columns
    if list(cols) != expected:  # the contract is the single source of the layout
        raise AssertionError(f"{name}: generated columns {list(cols)} != contract {expected}")
    table = pa.table(cols)
    _write(table, out / "raw" / f"{name}.{ext}", fmt)
    counts[f"raw/{name}.{ext}"] = table.num_rows
