"""The profile builder: against plain-pandas reference computations on a small synthetic
municipality, shard = full build, no leakage from events at or after the as-of date."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from overblik.features._cohorts import cohort
from overblik.features._contracts import SOURCE_BY_NAME
from overblik.features._errors import InputError
from overblik.features._feature_spec import FeatureSpec, expand, parse_feature_spec
from overblik.features._ingest import ingest
from overblik.features._profiles import AGE_BANDS, Profiles, build_profiles
from overblik.features._pseudonym import demo_key
from overblik.features._synthetic import SyntheticConfig, generate
from overblik.features._tables import EventTables
from tests.features.test_feature_spec import EXAMPLE

DAY = pd.Timedelta(days=1)
SENSITIVE_BLOCK = {"source": "population", "attributes": ["age_years"], "sensitive": True}


@dataclass(frozen=True)
class Municipality:
    """A small generated and ingested municipality, shared by the tests of a session."""

    clean: Path
    truth: Path
    tables: EventTables
    as_of: list[pd.Timestamp]


def make_municipality(factory: pytest.TempPathFactory) -> Municipality:
    """Generate + ingest 4,000 citizens once per session (test_cohorts uses it too)."""
    base = factory.getbasetemp() / "profiles_municipality"
    if not (base / "done").exists():
        generate(SyntheticConfig(citizens=4000, years=5, seed=7), base / "m")
        ingest(base / "m" / "raw", base / "clean", demo_key())
        (base / "done").touch()
    dates = list(pd.date_range("2023-01-01", "2025-01-01", freq="QS"))
    return Municipality(base / "clean", base / "m" / "truth" / "truth.parquet",
                        EventTables.load(base / "clean"), dates)


@pytest.fixture(scope="session")
def town(tmp_path_factory: pytest.TempPathFactory) -> Municipality:
    return make_municipality(tmp_path_factory)


@pytest.fixture(scope="session")
def spec() -> FeatureSpec:
    blocks = yaml.safe_load(EXAMPLE)["features"]
    return parse_feature_spec([*blocks, SENSITIVE_BLOCK])


@pytest.fixture(scope="session")
def rows(town: Municipality) -> pd.DataFrame:
    """Both cohorts at every as-of date, interleaved (the output keeps this order)."""
    both = pd.concat([cohort(town.tables, town.as_of, "children_in_families"),
                      cohort(town.tables, town.as_of, "adults_on_benefit")])
    return both.sample(frac=1.0, random_state=3).reset_index(drop=True)


@pytest.fixture(scope="session")
def profiles(town: Municipality, rows: pd.DataFrame, spec: FeatureSpec) -> Profiles:
    return build_profiles(town.tables, rows, spec)


# --- plain-pandas references ------------------------------------------------------------
def _windowed(events: pd.DataFrame, rows: pd.DataFrame, days: int) -> pd.DataFrame:
    """Events of each row's person in [as_of - days, as_of), one line per (row, event)."""
    keyed = rows[["person_id", "as_of"]].reset_index(names="row")
    ev = events.merge(keyed, on="person_id")
    return ev[(ev["event_time"] < ev["as_of"]) & (ev["event_time"] >= ev["as_of"] - days * DAY)]


def _days(delta: pd.Series) -> pd.Series:
    return delta.dt.total_seconds() / 86400.0


def _per_row(series: pd.Series, n: int, fill: float = 0.0) -> np.ndarray:
    return series.reindex(range(n), fill_value=fill).to_numpy(dtype=float)


def test_shape_order_and_dtypes(profiles: Profiles, rows: pd.DataFrame,
                                spec: FeatureSpec) -> None:
    X = profiles.X
    assert list(X.columns) == [f.name for f in expand(spec)] == [f.name for f in
                                                                 profiles.features]
    assert (X.dtypes == np.float64).all()
    assert X.index.names == ["person_id", "as_of"]
    assert (X.index.get_level_values("person_id") == rows["person_id"].to_numpy()).all()
    assert (X.index.get_level_values("as_of") == rows["as_of"].to_numpy()).all()
    assert not X.isna().any().any()
    assert profiles.sensitive.index.equals(X.index)
    assert list(profiles.sensitive.columns) == ["sex", "age_band", "origin", "district",
                                                "disability"]
    assert set(profiles.sensitive["age_band"]) <= {label for _, label in AGE_BANDS}
    # Protected attributes enter X only through the block flagged sensitive.
    assert [c for c in X.columns if c.startswith("population__age")] == ["population__age_years"]
    children = X["population__age_years"] < 18
    assert (profiles.sensitive.loc[children.to_numpy(), "age_band"] == "0-17").all()


def test_event_counts_sums_maxima_and_recency_match_pandas(
        town: Municipality, rows: pd.DataFrame, profiles: Profiles) -> None:
    X, n = profiles.X, len(rows)
    checked: dict[str, str] = {}  # column -> aggregation, so a renamed column cannot hide
    for source, code, value in [("children_families", "notification", ""),
                                ("economy", "rent_arrears", "amount_dkk"),
                                ("schools", "absence", "days"),
                                ("employment", "activation_start", "job_readiness")]:
        events = town.tables.events[source]
        events = events[events["event_type"] == code]
        for w in (90, 365, 1095):
            ev = _windowed(events, rows, w)
            g = ev.groupby("row")
            name = f"{source}__{code}__"
            if f"{name}count_{w}d" in X:
                assert np.array_equal(X[f"{name}count_{w}d"].to_numpy(),
                                      _per_row(g.size(), n)), (source, w)
                checked[f"{name}count_{w}d"] = "count"
            if f"{name}days_since_last_{w}d" in X:
                days = _days(g["as_of"].first() - g["event_time"].max())
                np.testing.assert_allclose(X[f"{name}days_since_last_{w}d"].to_numpy(),
                                           _per_row(days, n, w + 3650.0), rtol=1e-12)
                checked[f"{name}days_since_last_{w}d"] = "days_since_last"
            # "last": the most recent event's value (ties in time: the later extract row).
            in_time = ev.sort_values("event_time", kind="stable").groupby("row")
            for agg in ("sum", "max", "mean", "last"):
                col = f"{name}{value}_{agg}_{w}d"
                if value and col in X:
                    by = in_time[value] if agg == "last" else g[value]
                    expected = _per_row(getattr(by, agg)(), n)
                    np.testing.assert_allclose(X[col].to_numpy(), expected, rtol=1e-9,
                                               err_msg=col)
                    checked[col] = agg
    # Every aggregation and source above was compared (18 columns of the spec).
    assert set(checked.values()) == {"count", "days_since_last", "sum", "max", "mean", "last"}
    assert {c.split("__")[0] for c in checked} == {"children_families", "economy", "schools",
                                                   "employment"}
    assert len(checked) == 18
    assert X["children_families__notification__count_1095d"].sum() > 100  # not all zeros
    health = _windowed(town.tables.events["health"], rows, 365)
    distinct = _per_row(health.groupby("row")["event_type"].nunique(), n)
    assert np.array_equal(X["health__distinct_event_types_365d"].to_numpy(), distinct)


def _present(pop: pd.DataFrame, when: pd.Series) -> np.ndarray:
    left = pd.concat([pop["move_out_date"], pop["death_date"]], axis=1).min(axis=1)
    return ((pop["move_in_date"] < when) & ~(left < when)).to_numpy()


def test_cross_silo_household_and_register_features_match_pandas(
        town: Municipality, rows: pd.DataFrame, profiles: Profiles) -> None:
    X, n, pop = profiles.X, len(rows), town.tables.population
    for w in (365, 1095):
        known = pd.concat([_windowed(df, rows, w)[["row"]].drop_duplicates().assign(s=name)
                           for name, df in town.tables.events.items()])
        silos = _per_row(known.groupby("row").size(), n)
        assert np.array_equal(X[f"cross_silo__silos_known_{w}d"].to_numpy(), silos)
    # Household: the other members living in the municipality at as_of.
    keyed = rows.reset_index(names="row").merge(pop[["person_id", "household_id"]])
    members = keyed.merge(pop, on="household_id", suffixes=("", "_member"))
    members = members[members["person_id"] != members["person_id_member"]]
    members = members[_present(members, members["as_of"])]
    size = _per_row(members.groupby("row").size(), n) + 1
    assert np.array_equal(X["population__household_size"].to_numpy(), size)
    notif = town.tables.events["children_families"]
    notif = notif[notif["event_type"] == "notification"].rename(
        columns={"person_id": "person_id_member"})
    on_members = notif.merge(members[["row", "person_id_member", "as_of"]])
    on_members = on_members[(on_members["event_time"] < on_members["as_of"])
                             & (on_members["event_time"] >= on_members["as_of"] - 365 * DAY)]
    expected = _per_row(on_members.groupby("row").size(), n)
    got = X["household__children_families__notification__count_365d"].to_numpy()
    assert np.array_equal(got, expected) and got.sum() > 50
    g = on_members.groupby("row")
    recency = _per_row(_days(g["as_of"].first() - g["event_time"].max()), n, 365 + 3650.0)
    np.testing.assert_allclose(
        X["household__children_families__notification__days_since_last_365d"].to_numpy(),
        recency, rtol=1e-12)
    arrears = town.tables.events["economy"]
    arrears = arrears[arrears["event_type"] == "rent_arrears"].rename(
        columns={"person_id": "person_id_member"}).merge(members[["row", "person_id_member",
                                                                   "as_of"]])
    arrears = arrears[(arrears["event_time"] < arrears["as_of"])
                      & (arrears["event_time"] >= arrears["as_of"] - 365 * DAY)]
    for agg in ("sum", "max"):
        expected = _per_row(getattr(arrears.groupby("row")["amount_dkk"], agg)(), n)
        np.testing.assert_allclose(
            X[f"household__economy__rent_arrears__amount_dkk_{agg}_365d"].to_numpy(), expected,
            rtol=1e-9)
    birth = pop.set_index("person_id")["birth_date"].reindex(rows["person_id"]).to_numpy()
    age = (rows["as_of"].dt.year - pd.DatetimeIndex(birth).year
           - ((rows["as_of"].dt.month * 100 + rows["as_of"].dt.day)
              < (pd.DatetimeIndex(birth).month * 100 + pd.DatetimeIndex(birth).day)))
    assert np.array_equal(X["population__age_years"].to_numpy(), age.to_numpy(dtype=float))


def test_benefit_spell_features_match_a_plain_walk_through_the_events(
        town: Municipality, rows: pd.DataFrame, profiles: Profiles) -> None:
    emp = town.tables.events["employment"]
    emp = emp[emp["event_type"].isin(["benefit_start", "benefit_end", "job_start"])]
    by_person = {p: g.sort_values("event_time", kind="stable") for p, g in
                 emp.groupby("person_id")}
    sample = rows[rows["person_id"].isin(list(by_person))].head(400)
    assert len(sample) > 100
    X = profiles.X
    for i, r in sample.iterrows():
        spells, start = [], None
        for e in by_person[r.person_id].itertuples():
            if e.event_time >= r.as_of:
                break
            if e.event_type == "benefit_start" and start is None:
                start = e.event_time
            elif e.event_type != "benefit_start" and start is not None:
                spells.append((start, e.event_time))
                start = None
        active = start is not None
        if active:
            spells.append((start, r.as_of))
        lo = r.as_of - 365 * DAY
        on = sum(max((min(b, r.as_of) - max(a, lo)) / DAY, 0.0) for a, b in spells)
        got = X.iloc[i]
        assert got["employment__benefit_spell__active"] == float(active)
        assert got["employment__benefit_spell__days_in_current"] == pytest.approx(
            (r.as_of - start) / DAY if active else 0.0, abs=1e-9)
        assert got["employment__benefit_spell__days_on_365d"] == pytest.approx(on, abs=1e-9)
    adults = X["population__age_years"] >= 18
    assert (X.loc[adults.to_numpy(), "employment__benefit_spell__active"] == 1).all()


def _rows_of(rows: pd.DataFrame, pid: str) -> pd.DataFrame:
    return rows[rows["person_id"] == pid].reset_index(drop=True)


def test_a_shard_of_one_citizen_gives_exactly_the_full_build_row(
        town: Municipality, rows: pd.DataFrame, profiles: Profiles, spec: FeatureSpec) -> None:
    X = profiles.X
    busy = X["household__children_families__notification__count_365d"].idxmax()[0]
    spell = X["employment__benefit_spell__days_on_1095d"].idxmax()[0]
    arrears = X["household__economy__rent_arrears__amount_dkk_max_365d"].idxmax()[0]
    for pid in [busy, spell, arrears, rows["person_id"].iloc[0]]:
        mine = _rows_of(rows, pid)
        full = X[X.index.get_level_values("person_id") == pid]
        one = build_profiles(town.tables.shard([pid]), mine, spec)
        pd.testing.assert_frame_equal(one.X, full, check_exact=True)
        pd.testing.assert_frame_equal(
            one.sensitive, profiles.sensitive.loc[full.index], check_exact=True)
        loaded = build_profiles(EventTables.load(town.clean, persons=[pid]), mine, spec)
        pd.testing.assert_frame_equal(loaded.X, full, check_exact=True)
    shard = town.tables.shard([busy])
    assert len(shard.population) > 1  # the household came along
    assert set(shard.population["household_id"]) == set(
        town.tables.population.loc[town.tables.population["person_id"] == busy,
                                   "household_id"])


def _plant(tables: EventTables, planted: dict[str, pd.DataFrame]) -> EventTables:
    events = dict(tables.events)
    for source, extra in planted.items():
        events[source] = pd.concat([events[source], extra], ignore_index=True)
    return replace(tables, events=events)


def _all_events(source: str, pid: str, times: list[pd.Timestamp]) -> pd.DataFrame:
    """Every event type of ``source`` for ``pid`` at each time, numeric columns set to 5."""
    codes = list(SOURCE_BY_NAME[source].event_codes)
    frame = pd.DataFrame([(pid, t, c) for t in times for c in codes],
                         columns=["person_id", "event_time", "event_type"])
    for col, dtype in SOURCE_BY_NAME[source].model.to_schema().dtypes.items():
        if col not in frame and col != "cpr":
            frame[col] = 5.0 if str(dtype) == "float64" else None
    frame["source_row"] = 10**9
    return frame


def test_events_at_or_after_as_of_change_nothing_one_before_changes_the_right_features(
        town: Municipality, rows: pd.DataFrame, spec: FeatureSpec) -> None:
    t = town.as_of[4]
    everyone = pd.DataFrame({"person_id": town.tables.population["person_id"], "as_of": t})
    base = build_profiles(town.tables, everyone, spec).X
    kids = cohort(town.tables, [t], "children_in_families")["person_id"]
    sizes = base["population__household_size"]
    candidates = sizes[(sizes >= 3).to_numpy()
                       & base.index.get_level_values("person_id").isin(kids)]
    pid = candidates.index[0][0]  # a child with a household around it
    assert pid in set(kids)
    later = [t, t + pd.Timedelta(1, "ns"), t + pd.Timedelta(hours=9), t + 40 * DAY,
             t + 400 * DAY]
    planted = {s: _all_events(s, pid, later) for s in town.tables.events}
    after = build_profiles(_plant(town.tables, planted), everyone, spec).X
    pd.testing.assert_frame_equal(after, base, check_exact=True)

    before = t - pd.Timedelta(seconds=1)
    one = {"children_families": _all_events("children_families", pid, [before]).query(
        "event_type == 'notification'")}
    changed = build_profiles(_plant(town.tables, one), everyone, spec).X
    diff = changed.ne(base)
    mine = (pid, t)
    hh = town.tables.population.set_index("person_id")["household_id"]
    household = set(hh.index[hh == hh[pid]]) - {pid}
    for w in (90, 365, 1095):
        assert (changed.loc[mine, f"children_families__notification__count_{w}d"]
                == base.loc[mine, f"children_families__notification__count_{w}d"] + 1)
        assert changed.loc[mine, f"children_families__notification__days_since_last_{w}d"] \
            == pytest.approx(1 / 86400)
    own_cols = set(diff.columns[diff.loc[mine]])
    assert {c for c in own_cols if not c.startswith("cross_silo")} == {
        f"children_families__notification__{a}_{w}d" for a in ("count", "days_since_last")
        for w in (90, 365, 1095)}
    # Other rows change only in household features, and only in the child's household.
    others = diff.drop(index=[mine])
    touched = others.index[others.any(axis=1)].get_level_values("person_id")
    assert set(touched) <= household and len(touched) > 0
    cols = set(others.columns[others.any(axis=0)])
    assert all(c.startswith(("household__children_families__notification",
                             "cross_silo__household")) for c in cols), cols
    for member in touched:
        assert (changed.loc[(member, t), "household__children_families__notification__"
                            "count_365d"]
                == base.loc[(member, t), "household__children_families__notification__"
                            "count_365d"] + 1)


def test_a_benefit_start_before_as_of_opens_a_spell_one_at_as_of_does_not(
        town: Municipality, spec: FeatureSpec) -> None:
    t = town.as_of[2]
    kids = cohort(town.tables, [t], "children_in_families")
    pid = kids["person_id"].iloc[0]
    mine = kids.iloc[:1]
    start = _all_events("employment", pid, [t - 10 * DAY]).query("event_type == 'benefit_start'")
    x = build_profiles(_plant(town.tables, {"employment": start}), mine, spec).X.iloc[0]
    assert x["employment__benefit_spell__active"] == 1.0
    assert x["employment__benefit_spell__days_in_current"] == pytest.approx(10.0)
    assert x["employment__benefit_spell__days_on_365d"] == pytest.approx(10.0)
    at = start.assign(event_time=t)
    x = build_profiles(_plant(town.tables, {"employment": at}), mine, spec).X.iloc[0]
    assert x["employment__benefit_spell__active"] == 0.0


def test_bad_rows_are_refused_with_a_clear_error(town: Municipality,
                                                 spec: FeatureSpec) -> None:
    with pytest.raises(InputError, match="columns person_id and as_of"):
        build_profiles(town.tables, pd.DataFrame({"person_id": ["x"]}), spec)
    with pytest.raises(InputError, match=r"1 person.* not in the population register.*nobody"):
        build_profiles(town.tables, pd.DataFrame({"person_id": ["nobody"],
                                                  "as_of": [town.as_of[0]]}), spec)
    pid = town.tables.population["person_id"].iloc[0]
    with pytest.raises(InputError, match="missing as-of"):
        build_profiles(town.tables, pd.DataFrame({"person_id": [pid], "as_of": [pd.NaT]}), spec)
    with pytest.raises(InputError, match="not in the population register"):
        town.tables.shard(["nobody"])


def test_progress_is_reported_per_as_of_date(town: Municipality, rows: pd.DataFrame,
                                             spec: FeatureSpec) -> None:
    calls: list[tuple[str, int, int]] = []
    build_profiles(town.tables, rows.head(50), spec,
                   progress=lambda d, i, n: calls.append((d, i, n)))
    n = rows.head(50)["as_of"].nunique()
    assert [c[1:] for c in calls] == [(i + 1, n) for i in range(n)]
    assert calls[0][0].startswith("as of 20")


def test_fingerprint_is_stable_and_sees_changes(town: Municipality) -> None:
    fp = town.tables.fingerprint()
    assert len(fp) == 64
    assert EventTables.load(town.clean).fingerprint() == fp
    shuffled = {k: v.sample(frac=1.0, random_state=1) for k, v in town.tables.events.items()}
    assert EventTables(town.tables.population, shuffled).fingerprint() == fp
    cf = town.tables.events["children_families"]
    fewer = {**town.tables.events, "children_families": cf.iloc[1:]}
    assert EventTables(town.tables.population, fewer).fingerprint() != fp


def test_load_reads_only_the_columns_asked_for(town: Municipality) -> None:
    tables = EventTables.load(town.clean, columns={"economy": ["amount_dkk"]})
    assert list(tables.events) == ["economy"]
    assert list(tables.events["economy"].columns) == ["person_id", "event_time", "event_type",
                                                      "amount_dkk"]
    with pytest.raises(InputError, match=r"economy\.parquet: no column\(s\) amount"):
        EventTables.load(town.clean, columns={"economy": ["amount"]})
    with pytest.raises(InputError, match="'schol' is not a silo"):
        EventTables.load(town.clean, columns={"schol": []})
    with pytest.raises(InputError, match=r"no population\.parquet"):
        EventTables.load(town.clean / "nothing-here")
