"""The synthetic municipality: contracts, well-formed CPRs, determinism and the documented
properties of the model (co-occurrence, programme effects, label bias, calibration)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from overblik.features._contracts import SOURCES
from overblik.features._errors import InputError
from overblik.features._pseudonym import demo_key, pseudonymise
from overblik.features._synthetic import PROGRAMMES, Manifest, SyntheticConfig, generate

START = pd.Timestamp("2021-01-01")
END = pd.Timestamp("2026-01-01")
EVENT_SOURCES = [s.name for s in SOURCES if s.name != "population"]


@dataclass
class Run:
    out: Path
    manifest: Manifest
    raw: dict[str, pd.DataFrame]
    truth: pd.DataFrame
    programmes: pd.DataFrame


def _run(out: Path, **kw: object) -> Run:
    config = SyntheticConfig(**{"citizens": 8000, "years": 5, "seed": 11, **kw})  # type: ignore[arg-type]
    manifest = generate(config, out)
    raw = {s.name: pd.read_parquet(out / "raw" / f"{s.name}.parquet") for s in SOURCES}
    return Run(out, manifest, raw, pd.read_parquet(out / "truth" / "truth.parquet"),
               pd.read_parquet(out / "truth" / "programmes.parquet"))


@pytest.fixture(scope="session")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return _run(tmp_path_factory.mktemp("synthetic"))


@pytest.fixture(scope="session")
def bias_runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Run, Run]:
    """The same seed with label bias switched off and doubled."""
    off = _run(tmp_path_factory.mktemp("bias_off"), citizens=6000, label_bias=1.0)
    on = _run(tmp_path_factory.mktemp("bias_on"), citizens=6000, label_bias=2.0)
    return off, on


def _cpr_birth_date(cpr: pd.Series) -> pd.Series:
    """Birth date from a CPR number with the real century rule (digit 7 and the year)."""
    dd, mm, yy = cpr.str[0:2], cpr.str[2:4], cpr.str[4:6].astype(int)
    c7 = cpr.str[7].astype(int)
    century = np.where(c7 <= 3, 1900, np.where((c7 == 4) | (c7 == 9),
                                               np.where(yy <= 36, 2000, 1900),
                                               np.where(yy <= 57, 2000, 1800)))
    text = (century + yy).astype(str) + "-" + mm + "-" + dd
    return pd.Series(pd.to_datetime(text, format="%Y-%m-%d", errors="coerce"), index=cpr.index)


def _age(when: pd.Series, birth: pd.Series) -> pd.Series:
    """Age in years (fractional, for shares and medians)."""
    return (when - birth).dt.days / 365.25


def _completed_years(when: pd.Series, birth: pd.Series) -> pd.Series:
    """Age in completed calendar years, as on a birthday."""
    before = (when.dt.month * 100 + when.dt.day) < (birth.dt.month * 100 + birth.dt.day)
    return when.dt.year - birth.dt.year - before.astype(int)


def _labels(rows: pd.DataFrame, events: pd.DataFrame) -> np.ndarray:
    """1 where the person has one of ``events`` in [as_of, as_of + 12 months)."""
    ev = events[["cpr", "event_time"]].merge(rows[["cpr", "as_of"]].drop_duplicates(), on="cpr")
    ev = ev[(ev.event_time >= ev.as_of) & (ev.event_time < ev.as_of + pd.DateOffset(months=12))]
    hit = ev[["cpr", "as_of"]].drop_duplicates().assign(hit=1)
    return rows.merge(hit, on=["cpr", "as_of"], how="left")["hit"].fillna(0).to_numpy()


# --- contracts and well-formed identifiers ---------------------------------------------------
def test_every_source_passes_its_contract(run: Run) -> None:
    for source in SOURCES:
        df = run.raw[source.name]
        assert list(df.columns) == source.columns
        assert len(df) > 0, source.name
        source.model.validate(df)
    assert sorted(p.name for p in (run.out / "raw").iterdir()) == sorted(
        f"{s.name}.parquet" for s in SOURCES)


def test_cprs_are_well_formed_and_unique(run: Run) -> None:
    pop = run.raw["population"]
    assert pop["cpr"].is_unique
    assert (_cpr_birth_date(pop["cpr"]) == pop["birth_date"]).all()
    odd = pop["cpr"].str[-1].astype(int) % 2 == 1
    assert (odd == (pop["sex"] == "M")).all()
    c7 = pop["cpr"].str[7].astype(int)
    born_2000s = pop["birth_date"].dt.year >= 2000
    assert (c7[born_2000s] == 4).all() and (c7[~born_2000s] <= 3).all()


def test_register_dates_are_consistent(run: Run) -> None:
    pop = run.raw["population"]
    assert (pop["move_in_date"] >= pop["birth_date"]).all()
    assert (pop["move_in_date"] < END).all()
    for col in ("move_out_date", "death_date"):
        d = pop[col].dropna()
        assert len(d) > 0, f"{col}: demography should be present"
        assert ((d >= START) & (d < END)).all()
        assert (d > pop.loc[d.index, "move_in_date"]).all()
    assert not (pop["move_out_date"].notna() & pop["death_date"].notna()).any()
    born = pop["birth_date"] >= START
    assert born.sum() > 0 and (pop.loc[born, "move_in_date"] == pop.loc[born, "birth_date"]).all()


def test_events_belong_to_residents_within_the_window(run: Run) -> None:
    pop = run.raw["population"].set_index("cpr")
    left = pop["move_out_date"].fillna(pop["death_date"])
    for name in EVENT_SOURCES:
        ev = run.raw[name]
        assert ev["cpr"].isin(pop.index).all(), name
        t = ev["event_time"]
        assert ((t >= START) & (t < END)).all(), name
        assert (t < pd.Timestamp(date.today())).all(), name
        assert (t >= pop["birth_date"].reindex(ev["cpr"]).to_numpy()).all(), name
        assert (t >= pop["move_in_date"].reindex(ev["cpr"]).to_numpy()).all(), name
        gone = left.reindex(ev["cpr"]).to_numpy()
        has = ~pd.isna(gone)
        assert (t.to_numpy()[has] <= gone[has]).all(), f"{name}: event after leaving"


def test_age_limits_of_siloes(run: Run) -> None:
    birth = run.raw["population"].set_index("cpr")["birth_date"]
    for name, lo, hi in (("children_families", 0, 18), ("schools", 6, 20),
                         ("employment", 18, 67)):
        ev = run.raw[name]
        age = _completed_years(ev["event_time"], birth.reindex(ev["cpr"]).set_axis(ev.index))
        assert age.min() >= lo and age.max() < hi, (name, age.min(), age.max())


# --- determinism -----------------------------------------------------------------------------
def test_same_seed_same_data_other_seed_other_data(tmp_path: Path) -> None:
    small = {"citizens": 1500, "years": 3}
    frames = []
    for k, seed in enumerate((3, 3, 4)):
        out = tmp_path / str(k)
        generate(SyntheticConfig(seed=seed, **small), out)  # type: ignore[arg-type]
        frames.append({p.relative_to(out).as_posix(): pd.read_parquet(p)
                       for p in sorted(out.rglob("*.parquet"))})
    assert frames[0].keys() == frames[1].keys()
    for key, df in frames[0].items():
        pd.testing.assert_frame_equal(df, frames[1][key], check_exact=True)
    assert not frames[0]["raw/population.parquet"].equals(frames[2]["raw/population.parquet"])
    assert not frames[0]["truth/truth.parquet"].equals(frames[2]["truth/truth.parquet"])


# --- population ------------------------------------------------------------------------------
def test_origin_shares_and_age_pyramid(run: Run) -> None:
    pop = run.raw["population"]
    residents = pop[pop["move_in_date"] < START]
    assert len(residents) == 8000
    shares = residents["origin"].value_counts(normalize=True)
    assert 0.82 < shares["danish"] < 0.88
    assert 0.08 < shares["immigrant"] < 0.12
    assert 0.03 < shares["descendant"] < 0.07
    age = _age(pd.Series(START, index=residents.index), residents["birth_date"])
    assert age.min() >= 0 and age.max() < 97
    assert 0.17 < (age < 18).mean() < 0.24
    assert 0.13 < (age >= 67).mean() < 0.21
    assert 0.25 < ((age >= 30) & (age < 50)).mean() < 0.33
    assert age[residents["origin"] == "descendant"].median() < 25
    assert 0.03 < residents["disability"].mean() < 0.07
    assert residents["district"].nunique() == 12
    size = residents.groupby("household_id").size()
    assert 1.9 < size.mean() < 2.4 and size.max() >= 4


def test_event_volume_is_moderate(run: Run) -> None:
    per_person = sum(len(run.raw[n]) for n in EVENT_SOURCES) / len(run.raw["population"])
    assert 15 < per_person < 40
    for name in EVENT_SOURCES:
        assert set(run.raw[name]["event_type"]) == set(
            next(s for s in SOURCES if s.name == name).event_codes), name


def test_problems_co_occur_within_households(run: Run) -> None:
    pop = run.raw["population"].set_index("cpr")
    econ = run.raw["economy"]
    econ = econ[econ["event_type"].isin(["rent_arrears", "debt_collection"])]
    cf = run.raw["children_families"]
    notes = cf[cf["event_type"] == "notification"]
    by_hh = pd.DataFrame({
        "econ": econ.groupby(pop["household_id"].reindex(econ["cpr"]).to_numpy()).size(),
        "notes": notes.groupby(pop["household_id"].reindex(notes["cpr"]).to_numpy()).size(),
    })
    with_kids = pop[_age(pd.Series(START, index=pop.index), pop["birth_date"]) < 15]
    by_hh = by_hh.reindex(with_kids["household_id"].unique()).fillna(0)
    assert by_hh["econ"].corr(by_hh["notes"], method="spearman") > 0.1
    # ... and across siloes for one person: benefit spells go with psychiatric contacts.
    emp, health = run.raw["employment"], run.raw["health"]
    on_benefit = set(emp.loc[emp["event_type"] == "benefit_start", "cpr"])
    psych = health[health["event_type"] == "psychiatric_contact"].groupby("cpr").size()
    adults = pop.index[_age(pd.Series(START, index=pop.index), pop["birth_date"]).between(25, 60)]
    rate = psych.reindex(adults).fillna(0).groupby(adults.isin(on_benefit)).mean()
    assert rate[True] > 1.5 * rate[False]


# --- truth -----------------------------------------------------------------------------------
def test_truth_layout_and_cohorts(run: Run) -> None:
    t = run.truth
    names = [p.name for p in PROGRAMMES]
    expected = ["cpr", "person_id", "as_of", "outcome", "p_need", "p_realised",
                *[f"effect_{n}" for n in names], *[f"received_{n}" for n in names],
                "need_economic", "need_mental", "need_family", "need_employment"]
    assert list(t.columns) == expected
    assert sorted(t["as_of"].unique()) == list(pd.date_range("2023-01-01", "2025-01-01",
                                                             freq="QS"))
    assert set(t["outcome"]) == {"child_placement", "long_term_benefit"}
    assert not t.duplicated(["cpr", "as_of", "outcome"]).any()
    assert ((t["p_need"] >= 0) & (t["p_need"] <= 1) & (t["p_realised"] <= 1)).all()
    pid = pseudonymise(t["cpr"].drop_duplicates(), demo_key())
    assert (t["person_id"].drop_duplicates().to_numpy() == pid.to_numpy()).all()
    birth = run.raw["population"].set_index("cpr")["birth_date"]
    age = _completed_years(t["as_of"], birth.reindex(t["cpr"]).set_axis(t.index))
    child = t["outcome"] == "child_placement"
    assert age[child].max() < 18 and age[~child].min() >= 18 and age[~child].max() < 65
    # Effects exist only for the programmes acting on the row's outcome.
    assert t.loc[child, ["effect_mentor", "effect_job_course"]].isna().all().all()
    assert t.loc[~child, "effect_family_support"].isna().all()
    assert not t.loc[~child, "received_family_support"].any()


def test_base_rates_in_documented_ranges(run: Run) -> None:
    rates = run.truth.groupby("outcome")["p_need"].mean()
    assert 0.01 <= rates["child_placement"] <= 0.03
    assert 0.25 <= rates["long_term_benefit"] <= 0.45
    assert run.manifest.base_rates["child_placement"]["p_need"] == pytest.approx(
        rates["child_placement"])


def test_p_realised_is_calibrated_against_labels_from_events(run: Run) -> None:
    t, cf, emp = run.truth, run.raw["children_families"], run.raw["employment"]
    place = t[t["outcome"] == "child_placement"].reset_index(drop=True)
    y = _labels(place, cf[cf["event_type"] == "placement_start"])
    assert y.sum() > 50
    assert abs(y.mean() - place["p_realised"].mean()) < 0.005
    # The riskiest fifth holds most placements, at the predicted rate.
    top = place["p_realised"] >= place["p_realised"].quantile(0.8)
    assert y[top].sum() > 0.7 * y.sum()
    assert abs(y[top].mean() - place.loc[top, "p_realised"].mean()) < 0.025
    ltb = t[t["outcome"] == "long_term_benefit"].reset_index(drop=True)
    y = 1 - _labels(ltb, emp[emp["event_type"].isin(["benefit_end", "job_start"])])
    assert abs(y.mean() - ltb["p_realised"].mean()) < 0.04
    bins = pd.qcut(ltb["p_realised"], 4, labels=False)
    observed = pd.Series(y).groupby(bins).mean()
    predicted = ltb["p_realised"].groupby(bins).mean()
    assert (observed.diff().dropna() > 0).all()
    assert (observed - predicted).abs().max() < 0.08


def test_programme_effects_have_the_documented_shapes(run: Run) -> None:
    t = run.truth
    ltb = t[t["outcome"] == "long_term_benefit"]
    assert (ltb["effect_job_course"] == 0.0).all()
    decile = pd.qcut(ltb["p_need"], 10, labels=False)
    mentor = ltb["effect_mentor"].groupby(decile).mean()
    assert mentor[9] < 0.5 * mentor[[3, 4, 5, 6]].mean()  # risk is not benefit
    assert mentor.idxmax() not in (0, 9)
    debt = ltb["effect_debt_counselling"]
    assert debt.corr(ltb["need_economic"], method="spearman") > 0.5
    assert (ltb[["effect_mentor", "effect_debt_counselling"]] >= 0).all().all()
    place = t[t["outcome"] == "child_placement"]
    fs = place["effect_family_support"]
    assert (fs >= 0).all()
    assert fs.corr(place["p_need"], method="spearman") > 0.95
    by_decile = fs.groupby(pd.qcut(place["p_need"], 10, labels=False)).mean()
    assert by_decile.is_monotonic_increasing


def test_programmes_respect_capacity_and_one_at_a_time(run: Run) -> None:
    pr, places = run.programmes, run.manifest.places
    assert set(pr["programme"]) == {p.name for p in PROGRAMMES}
    start_month = pr["start"].dt.to_period("M").dt.start_time.dt.strftime("%Y-%m-%d")
    counts = pr.groupby([pr["programme"], start_month]).size()
    for (name, month), n in zip(counts.index, counts.to_numpy(), strict=True):
        assert n <= places[str(name)][str(month)], (name, month)
    assert all(q[5:7] in ("01", "04", "07", "10") for q in start_month)
    # At most one programme at a time per person.
    pr = pr.assign(end=pr["end"].fillna(END)).sort_values(["cpr", "start"])
    same = pr["cpr"].eq(pr["cpr"].shift())
    assert (pr["start"][same] >= pr["end"].shift()[same]).all()
    # Enrolments are recorded in the siloes with their start and end events.
    for p in PROGRAMMES:
        ev = run.raw[p.silo]
        starts = ev[ev["event_type"] == f"{p.name}_start"]
        assert len(starts) == (run.programmes["programme"] == p.name).sum()
    # Received at as-of matches an enrolment at that quarter start.
    t = run.truth
    got = t.loc[t["received_mentor"], ["cpr", "as_of"]]
    mentor = run.programmes[run.programmes["programme"] == "mentor"]
    keys = set(zip(mentor["cpr"], mentor["start"].dt.normalize(), strict=True))
    assert len(got) > 0 and all(k in keys for k in zip(got["cpr"], got["as_of"], strict=True))


def test_assignment_is_confounded_but_overlapping(run: Run) -> None:
    place = run.truth[run.truth["outcome"] == "child_placement"]
    got = place["received_family_support"]
    assert place.loc[got, "p_need"].mean() > 3 * place.loc[~got, "p_need"].mean()
    low = place["p_need"] <= place["p_need"].quantile(0.5)
    assert got[low].sum() > 0  # low-risk children get places too (overlap)


# --- label bias ------------------------------------------------------------------------------
def _surveillance_coefficient(run: Run) -> float:
    """Log-rate ratio surveilled/other of notifications in the 24 months before the first
    as-of date, for children resident all along, adjusted for their latent need."""
    from sklearn.linear_model import PoissonRegressor

    pop = run.raw["population"].set_index("cpr")
    t = run.truth
    first = t["as_of"].min()
    child = t[(t["outcome"] == "child_placement") & (t["as_of"] == first)].set_index("cpr")
    born = pop["birth_date"].reindex(child.index)
    child = child[(pop["move_in_date"].reindex(child.index) < START)
                  & (born < first - pd.DateOffset(years=2))]
    cf = run.raw["children_families"]
    note = cf[(cf["event_type"] == "notification") & (cf["event_time"] < first)]
    n = note.groupby("cpr").size().reindex(child.index, fill_value=0)
    x = child[["need_economic", "need_mental", "need_family"]].assign(
        surveilled=pop["origin"].reindex(child.index).isin(["immigrant", "descendant"]))
    fit = PoissonRegressor(alpha=0.0, max_iter=1000).fit(x.astype(float), n)
    return float(fit.coef_[-1])


def test_label_bias_changes_recording_not_need(bias_runs: tuple[Run, Run]) -> None:
    off, on = bias_runs
    pd.testing.assert_frame_equal(off.raw["population"], on.raw["population"])
    key = ["cpr", "as_of", "outcome"]
    both = off.truth.merge(on.truth, on=key, suffixes=("_off", "_on"))
    assert len(both) > 0.95 * len(off.truth)
    for col in ("p_need", "need_family", "need_mental", "need_economic", "need_employment"):
        assert (both[f"{col}_off"] == both[f"{col}_on"]).all(), col
    pop = off.raw["population"].set_index("cpr")
    surveilled = pop["origin"].isin(["immigrant", "descendant"])

    def notifications(run: Run) -> pd.Series:
        cf = run.raw["children_families"]
        n = cf[cf["event_type"] == "notification"].groupby("cpr").size()
        return n.reindex(pop.index, fill_value=0)

    n_off, n_on = notifications(off), notifications(on)
    assert n_on[surveilled].mean() > 1.6 * n_off[surveilled].mean()
    assert (n_on[~surveilled] == n_off[~surveilled]).all()  # the others are untouched
    # Notifications follow need, times the bias for the surveilled group: a Poisson
    # regression of children's notification counts on their latent need and group finds a
    # group coefficient of ~0 without bias and ~log(2) with bias 2.
    coef = {k: _surveillance_coefficient(r) for k, r in (("off", off), ("on", on))}
    assert abs(coef["off"]) < 0.2
    assert abs(coef["on"] - np.log(2.0)) < 0.25
    # p_realised carries the bias for the surveilled group only.
    ltb = both["outcome"] == "child_placement"
    s = both["cpr"].map(surveilled) & ltb
    assert (both.loc[s, "p_realised_on"].mean() > 1.5 * both.loc[s, "p_realised_off"].mean())


# --- config, manifest, progress --------------------------------------------------------------
def test_manifest_records_the_run(run: Run) -> None:
    data = json.loads((run.out / "manifest.json").read_text())
    m = Manifest.read(run.out / "manifest.json")
    assert m == run.manifest
    assert data["seed"] == 11 and data["parameters"]["citizens"] == 8000
    assert data["parameters"]["label_bias"] == 1.6
    assert {"numpy", "pandas", "pyarrow"} <= set(data["versions"])
    for rel, n in data["row_counts"].items():
        assert len(pd.read_parquet(run.out / rel)) == n
    assert data["duration_seconds"] > 0
    assert len(data["as_of_dates"]) == 9


def test_progress_is_reported_per_month_and_csv_written(tmp_path: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    generate(SyntheticConfig(citizens=300, years=3, seed=1, fmt="csv"), tmp_path,
             lambda step, done, total: calls.append((step, done, total)))
    assert [c[1] for c in calls] == list(range(1, 37)) and {c[2] for c in calls} == {36}
    assert calls[0][0] == "simulating 2021-01"
    for source in SOURCES:
        path = tmp_path / "raw" / f"{source.name}.csv"
        dates = [c for c in source.columns if c.endswith("_date") or c == "event_time"]
        source.model.validate(pd.read_csv(path, parse_dates=dates))


def test_config_rejects_a_window_in_the_future() -> None:
    this_year = date(date.today().year, 1, 1)
    with pytest.raises(InputError, match="earlier start"):
        SyntheticConfig(citizens=1000, years=5, seed=1, start=this_year)
    with pytest.raises(ValueError, match="first day of a month"):
        SyntheticConfig(citizens=1000, years=5, seed=1, start=date(2020, 1, 15))
    with pytest.raises(ValueError, match="surveilled_group"):
        SyntheticConfig(citizens=1000, years=5, seed=1, surveilled_group=("martian",))
    assert SyntheticConfig(citizens=1000, years=5, seed=1).window_end == date(2026, 1, 1)
