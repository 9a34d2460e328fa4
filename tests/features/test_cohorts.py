"""Cohorts and labels: the synthetic municipality's truth rows are found from the clean events,
and every edge of the definitions (birthdays, moves, spells, the label window) on a small
hand-made register."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import pytest

from overblik.features._cohorts import cohort, label, label_window_end
from overblik.features._errors import InputError
from overblik.features._tables import EventTables
from tests.features.test_profiles import Municipality, make_municipality

T = pd.Timestamp("2024-04-01")


@pytest.fixture(scope="session")
def town(tmp_path_factory: pytest.TempPathFactory) -> Municipality:
    return make_municipality(tmp_path_factory)


@pytest.mark.parametrize(("name", "outcome", "tolerance"), [
    ("children_in_families", "child_placement", 0.006),
    ("adults_on_benefit", "long_term_benefit", 0.05),
])
def test_cohorts_and_labels_match_the_truth(town: Municipality, name: str, outcome: str,
                                            tolerance: float) -> None:
    truth = pd.read_parquet(town.truth, columns=["person_id", "as_of", "outcome",
                                                 "p_realised"])
    truth = truth[truth["outcome"] == outcome]
    rows = cohort(town.tables, sorted(truth["as_of"].unique()), name)  # type: ignore[arg-type]
    both = rows.merge(truth, on=["person_id", "as_of"], how="inner")
    assert len(both) >= 0.98 * len(rows) and len(both) >= 0.98 * len(truth)
    assert len(rows) > 1000 if outcome == "child_placement" else len(rows) > 500
    y = label(town.tables, rows, outcome, 365)  # type: ignore[arg-type]
    assert y.dtype == np.int64 and y.index.equals(rows.index)
    assert abs(y.mean() - truth["p_realised"].mean()) < tolerance
    assert y.sum() > 30


def _tables(people: Sequence[Mapping[str, object]],
            events: dict[str, list[tuple[str, str | pd.Timestamp, str]]]) -> EventTables:
    base = {"sex": "F", "district": "D01", "origin": "danish", "disability": False,
            "move_in_date": pd.Timestamp("2000-01-01"), "move_out_date": pd.NaT,
            "death_date": pd.NaT}
    pop = pd.DataFrame([{**base, "household_id": f"H{i}", **p} for i, p in enumerate(people)])
    for col in ("birth_date", "move_in_date", "move_out_date", "death_date"):
        pop[col] = pd.to_datetime(pop[col])
    frames = {s: pd.DataFrame([(p, pd.Timestamp(t), e) for p, t, e in rows],
                              columns=["person_id", "event_time", "event_type"])
              for s, rows in events.items()}
    return EventTables(population=pop, events=frames)


def test_children_in_families_edges() -> None:
    tables = _tables(
        [{"person_id": "placed", "birth_date": "2014-06-01"},
         {"person_id": "placed_earlier", "birth_date": "2014-06-01"},
         {"person_id": "moved_in_at_as_of", "birth_date": "2014-06-01", "move_in_date": T},
         {"person_id": "moved_in_day_before", "birth_date": "2014-06-01",
          "move_in_date": T - pd.Timedelta(days=1)},
         {"person_id": "turns_18_at_as_of", "birth_date": "2006-04-01"},
         {"person_id": "turns_18_next_day", "birth_date": "2006-04-02"},
         {"person_id": "moves_out_at_as_of", "birth_date": "2014-06-01", "move_out_date": T},
         {"person_id": "moved_out_before", "birth_date": "2014-06-01",
          "move_out_date": T - pd.Timedelta(days=1)},
         {"person_id": "died_before", "birth_date": "2014-06-01",
          "death_date": "2024-03-03"},
         {"person_id": "born_before", "birth_date": "2024-03-31",
          "move_in_date": "2024-03-31"}],
        {"children_families": [
            ("placed", "2023-05-01 10:00", "placement_start"),
            ("placed_earlier", "2022-05-01 10:00", "placement_start"),
            ("placed_earlier", "2024-03-31 23:59", "placement_end"),
            ("placed", "2024-04-01 00:00", "placement_end"),  # at as_of: not known yet
        ]})
    got = cohort(tables, [T], "children_in_families")
    assert list(got["person_id"]) == ["placed_earlier", "moved_in_day_before",
                                      "turns_18_next_day", "moves_out_at_as_of", "born_before"]
    assert (got["as_of"] == T).all()


def test_adults_on_benefit_edges() -> None:
    people = [{"person_id": p, "birth_date": b} for p, b in [
        ("on", "1980-01-01"), ("ended_by_job", "1980-01-01"), ("ends_at_as_of", "1980-01-01"),
        ("turns_65_at_as_of", "1959-04-01"), ("turns_18_at_as_of", "2006-04-01"),
        ("restarted", "1980-01-01"), ("never", "1980-01-01"), ("starts_at_as_of", "1980-01-01"),
        ("leap_day_18", "2004-02-29")]]
    tables = _tables(people, {"employment": [
        ("on", "2023-01-05 09:00", "benefit_start"),
        ("ended_by_job", "2023-01-05 09:00", "benefit_start"),
        ("ended_by_job", "2024-01-05 09:00", "job_start"),
        ("ends_at_as_of", "2023-01-05 09:00", "benefit_start"),
        ("ends_at_as_of", "2024-04-01 00:00", "benefit_end"),
        ("turns_65_at_as_of", "2023-01-05 09:00", "benefit_start"),
        ("turns_18_at_as_of", "2024-03-05 09:00", "benefit_start"),
        ("restarted", "2022-01-05 09:00", "benefit_start"),
        ("restarted", "2022-06-05 09:00", "benefit_end"),
        ("restarted", "2024-02-05 09:00", "benefit_start"),
        ("starts_at_as_of", "2024-04-01 00:00", "benefit_start"),
        ("leap_day_18", "2021-06-05 09:00", "benefit_start"),
    ]})
    got = cohort(tables, [T, pd.Timestamp("2022-03-01")], "adults_on_benefit")
    assert list(got.loc[got["as_of"] == T, "person_id"]) == [
        "on", "ends_at_as_of", "turns_18_at_as_of", "restarted", "leap_day_18"]
    assert list(got.loc[got["as_of"] != T, "person_id"]) == ["restarted", "leap_day_18"]
    # Born on 29 February: 18 on 1 March in a year without one.
    leap = cohort(tables, [pd.Timestamp("2022-02-28")], "adults_on_benefit")
    assert "leap_day_18" not in set(leap["person_id"])


def test_labels_look_at_the_closed_window_from_as_of() -> None:
    people = [{"person_id": p, "birth_date": "2015-01-01"} for p in
              ("at_as_of", "at_end", "after_end", "before", "none")]
    end = label_window_end(T, 365)
    tables = _tables(people, {"children_families": [
        ("at_as_of", T, "placement_start"),
        ("at_end", end, "placement_start"),
        ("after_end", end + pd.Timedelta(seconds=1), "placement_start"),
        ("before", T - pd.Timedelta(seconds=1), "placement_start"),
    ]})
    rows = pd.DataFrame({"person_id": [p["person_id"] for p in people], "as_of": T},
                        index=[10, 20, 30, 40, 50])
    y = label(tables, rows, "child_placement", 365)
    assert y.to_dict() == {10: 1, 20: 1, 30: 0, 40: 0, 50: 0}
    assert y.name == "child_placement"


def test_long_term_benefit_is_a_spell_that_does_not_end_in_the_window() -> None:
    people = [{"person_id": p, "birth_date": "1980-01-01"} for p in
              ("open", "ends_in", "ends_after", "job", "not_on_benefit", "ends_at_as_of")]
    start = T - pd.Timedelta(days=30)
    tables = _tables(people, {"employment": [
        ("open", start, "benefit_start"),
        ("ends_in", start, "benefit_start"),
        ("ends_in", T + pd.Timedelta(days=100), "benefit_end"),
        ("ends_in", T + pd.Timedelta(days=200), "benefit_start"),  # a new spell: still ended
        ("ends_after", start, "benefit_start"),
        ("ends_after", T + pd.Timedelta(days=366), "benefit_end"),
        ("job", start, "benefit_start"),
        ("job", T + pd.Timedelta(days=5), "job_start"),
        ("ends_at_as_of", start, "benefit_start"),
        ("ends_at_as_of", T, "benefit_end"),
    ]})
    rows = pd.DataFrame({"person_id": [p["person_id"] for p in people], "as_of": T})
    assert list(label(tables, rows, "long_term_benefit", 365)) == [1, 0, 1, 0, 0, 0]
    assert list(label(tables, rows, "long_term_benefit", 367)) == [1, 0, 0, 0, 0, 0]


def test_label_window_end_and_bad_arguments() -> None:
    assert label_window_end(pd.Timestamp("2023-04-01"), 365) == pd.Timestamp("2024-03-31")
    assert label_window_end(T, 30) == pd.Timestamp("2024-05-01")
    tables = _tables([{"person_id": "a", "birth_date": "2015-01-01"}], {})
    rows = pd.DataFrame({"person_id": ["a"], "as_of": [T]})
    with pytest.raises(InputError, match="horizon_days=0"):
        label_window_end(T, 0)
    with pytest.raises(InputError, match="horizon_days"):
        label(tables, rows, "child_placement", -1)
    with pytest.raises(InputError, match="outcome 'placement' is not known"):
        label(tables, rows, "placement", 365)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="cohort 'children' is not known"):
        cohort(tables, [T], "children")  # type: ignore[arg-type]
    with pytest.raises(InputError, match="as_of"):
        cohort(tables, [], "children_in_families")
    assert label(tables, rows, "child_placement", 365).tolist() == [0]  # no silo file: no events
    assert cohort(tables, [T], "children_in_families")["person_id"].tolist() == ["a"]
