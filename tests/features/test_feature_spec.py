"""Feature specs: the YAML shape, validation errors that name the key, and the expansion."""

from __future__ import annotations

import re

import pytest
import yaml

from overblik.features._contracts import EVENT_SOURCES, SOURCE_BY_NAME
from overblik.features._errors import InputError
from overblik.features._feature_spec import (
    EVENT_LABELS,
    SENSITIVE_ATTRIBUTES,
    EventBlock,
    FeatureSpec,
    expand,
    no_event_days,
    parse_feature_spec,
    required_columns,
)

# The shape experiment files use (their `features:` section); every block kind appears.
EXAMPLE = """
features:
  - source: children_families
    event_types: [notification, investigation, preventive_measure, placement_end]
    windows_days: [90, 365, 1095]
    aggregations: [count, days_since_last]
    purpose: history
  - source: employment
    spell: {start: benefit_start, end: [benefit_end, job_start]}
    windows_days: [365, 1095]
    aggregations: [spell_active, days_in_current_spell, days_on_spell]
    purpose: history
  - source: employment
    event_types: [activation_start]
    value: job_readiness
    windows_days: [365]
    aggregations: [count, max, mean, last]
    purpose: need
  - source: health
    event_types: [gp_contact, emergency_contact, psychiatric_contact, psychiatric_admission,
                  substance_treatment]
    windows_days: [365, 1095]
    aggregations: [count]
    purpose: need
  - source: health
    windows_days: [365]
    aggregations: [distinct_event_types]
    purpose: need
  - source: schools
    event_types: [absence]
    value: days
    windows_days: [90, 365]
    aggregations: [sum]
    purpose: need
  - source: economy
    event_types: [rent_arrears, debt_collection, emergency_grant]
    value: amount_dkk
    windows_days: [365, 1095]
    aggregations: [count, sum, max]
    purpose: need
  - source: cross_silo
    windows_days: [365, 1095]
    household: true
    purpose: need
  - source: children_families
    household: true
    event_types: [notification, investigation]
    windows_days: [365]
    aggregations: [count, days_since_last]
    purpose: household
  - source: economy
    household: true
    event_types: [rent_arrears]
    value: amount_dkk
    windows_days: [365]
    aggregations: [sum, max]
    purpose: household
  - source: population
    attributes: [household_size, household_children, years_resident]
    purpose: household
"""


def _spec(text: str = EXAMPLE) -> FeatureSpec:
    return parse_feature_spec(yaml.safe_load(text)["features"])


def _error(blocks: list[object]) -> str:
    with pytest.raises(InputError) as info:
        parse_feature_spec(blocks)
    return str(info.value)


def test_example_expands_to_named_described_features() -> None:
    features = expand(_spec())
    names = [f.name for f in features]
    assert len(names) == len(set(names)) == 76
    assert names[:2] == ["children_families__notification__count_90d",
                         "children_families__notification__days_since_last_90d"]
    for f in features:
        assert re.fullmatch(r"[a-z0-9_]+", f.name), f.name
        assert f.description_da and f.description_en and f.unit
        assert f.source in (*SOURCE_BY_NAME, "cross_silo")
    by_name = {f.name: f for f in features}
    notif = by_name["children_families__notification__count_365d"]
    assert notif.description_da == "Antal underretninger de seneste 365 dage"
    assert notif.description_en == "Number of notifications of concern in the last 365 days"
    assert (notif.source, notif.purpose, notif.unit) == ("children_families", "history", "count")
    assert by_name["employment__benefit_spell__active"].unit == "flag"
    assert by_name["economy__rent_arrears__amount_dkk_sum_365d"].unit == "dkk"
    assert by_name["cross_silo__household_silos_known_1095d"].source == "cross_silo"
    sibling = by_name["household__children_families__notification__count_365d"]
    assert sibling.purpose == "household" and "husstanden" in sibling.description_da
    assert "4015" in by_name["children_families__notification__days_since_last_365d"] \
        .description_en
    latest = by_name["employment__activation_start__job_readiness_last_365d"]
    assert latest.description_en == ("Latest job-readiness category of activation offers in "
                                     "the last 365 days (0 if none)")
    assert latest.description_da.startswith("Seneste ")
    assert expand(_spec()) == features  # deterministic


def test_every_contract_event_code_has_danish_and_english_labels() -> None:
    for source in EVENT_SOURCES:
        assert set(EVENT_LABELS[source.name]) == set(source.event_codes), source.name
        for da, en in EVENT_LABELS[source.name].values():
            assert da and en and da != en


def test_spec_round_trips_and_accepts_a_mapping_or_a_spec() -> None:
    spec = _spec()
    assert FeatureSpec.model_validate(spec.model_dump()) == spec
    assert parse_feature_spec({"blocks": spec.model_dump()["blocks"]}) == spec
    assert parse_feature_spec(spec) is spec
    assert isinstance(spec.blocks[0], EventBlock)
    assert spec.blocks[0].types == ("notification", "investigation", "preventive_measure",
                                    "placement_end")


def test_sensitive_attributes_enter_x_only_when_the_block_says_so() -> None:
    names = {f.name for f in expand(_spec())}
    assert not any(a in n for n in names for a in SENSITIVE_ATTRIBUTES)
    err = _error([{"source": "population", "attributes": ["household_size", "age_years"]}])
    assert err.startswith("features[0].attributes: age_years: protected attributes")
    assert "sensitive: true" in err
    spec = parse_feature_spec([{"source": "population", "attributes": ["age_years"],
                                "sensitive": True}])
    assert [f.name for f in expand(spec)] == ["population__age_years"]


def test_misspelt_event_type_names_the_key_and_the_choices() -> None:
    blocks: list[object] = [
        {"source": "health", "windows_days": [365], "aggregations": ["count"]},
        {"source": "economy", "windows_days": [365], "aggregations": ["count"]},
        {"source": "children_families", "event_types": ["notifcation"],
         "windows_days": [365], "aggregations": ["count"]},
    ]
    assert _error(blocks) == (
        "features[2].event_types: 'notifcation' is not an event of children_families; choose "
        "from notification, investigation, preventive_measure, placement_start, placement_end, "
        "family_support_start, family_support_end")


@pytest.mark.parametrize(("block", "expected"), [
    ({"source": "economi", "windows_days": [365], "aggregations": ["count"]},
     "features[0].source: 'economi' is not a source; choose from children_families, "),
    ({"source": "health", "windows_days": [365], "aggregations": ["median"]},
     "features[0].aggregations[0]: 'median' is not known; choose from count, sum, mean"),
    ({"source": "children_families", "event_types": ["notification"], "value": "reporter",
      "windows_days": [365], "aggregations": ["sum"]},
     "features[0].value: 'reporter' is not a numeric column of children_families; choose "
     "from duration_days"),
    ({"source": "health", "windows_days": [0], "aggregations": ["count"]},
     "features[0].windows_days: window 0 must be a positive number of days"),
    ({"source": "health", "windows_days": [-30, 365], "aggregations": ["count"]},
     "features[0].windows_days: window -30 must be a positive"),
    ({"source": "health", "windows_days": [365, 365], "aggregations": ["count"]},
     "features[0].windows_days: window 365 is listed twice"),
    ({"source": "economy", "windows_days": [365], "aggregations": ["sum"]},
     "features[0].value: is missing: sum need(s) a value; add value: <one of amount_dkk>"),
    ({"source": "economy", "value": "amount_dkk", "windows_days": [365],
      "aggregations": ["count"]},
     "features[0].value: 'amount_dkk' is only used by sum, mean, max or last"),
    ({"source": "health", "windows_days": [365], "aggregations": ["count"], "windows": [3]},
     "features[0].windows: is not a known key of this block"),
    ({"source": "health", "aggregations": ["count"]},
     "features[0].windows_days: is missing: add it"),
    ({"source": "health", "household": True, "windows_days": [365],
      "aggregations": ["distinct_event_types"]},
     "features[0].aggregations: household blocks aggregate count, sum, max, days_since_last"),
    ({"source": "employment", "spell": {"start": "benefit_start", "end": "benefit_stop"},
      "aggregations": ["spell_active"]},
     "features[0].spell: 'benefit_stop' is not an event of employment"),
    ({"source": "employment", "spell": {"start": "benefit_start", "end": "benefit_end"},
      "aggregations": ["days_on_spell"]},
     "features[0].windows_days: is missing: days_on_spell needs windows"),
    ({"source": "cross_silo", "windows_days": [365], "sources": ["health", "school"]},
     "features[0].sources: 'school' is not a silo"),
    ({"source": "population", "attributes": ["age"]},
     "features[0].attributes[0]: 'age' is not known; choose from household_size"),
    ({"source": "health", "windows_days": [365], "aggregations": ["count"],
      "purpose": "Need!"},
     "features[0].purpose: String should match pattern"),
])
def test_invalid_blocks_name_the_key_and_the_fix(block: dict[str, object],
                                                 expected: str) -> None:
    err = _error([block])
    assert err.startswith(expected), err
    assert "Tuple should" not in err  # no echo of pydantic's follow-up errors


def test_every_problem_is_reported_at_once() -> None:
    err = _error([
        {"source": "health", "windows_days": [0], "aggregations": ["count"]},
        "not a block",
        {"source": "economy", "windows_days": [365], "aggregations": ["max"]},
    ])
    assert err.count("features[") == 3
    assert "features[1]: a block is a mapping with a source key" in err


def test_the_same_feature_twice_is_an_error() -> None:
    block = {"source": "cross_silo", "windows_days": [365]}
    assert _error([block, block]).startswith(
        "features[1] makes feature 'cross_silo__silos_known_365d', as [0] does already")


@pytest.mark.parametrize("raw", [None, [], "features", {"source": "health"}])
def test_the_section_must_be_a_list_of_blocks(raw: object) -> None:
    with pytest.raises(InputError, match=r"^features: give a non-empty list of feature blocks"):
        parse_feature_spec(raw)


def test_errors_use_the_given_section_name() -> None:
    with pytest.raises(InputError, match=r"^profile\[0\]\.source"):
        parse_feature_spec([{"source": "x", "windows_days": [1], "aggregations": ["count"]}],
                           section="profile")


def test_required_columns_and_no_event_value() -> None:
    cols = required_columns(_spec())
    assert cols["economy"] == ["person_id", "event_time", "event_type", "amount_dkk"]
    assert cols["digital"] == ["person_id", "event_time", "event_type"]  # via cross_silo
    assert set(cols) == {s.name for s in EVENT_SOURCES}
    assert no_event_days(365) == 4015.0


@pytest.mark.parametrize("window", [True, 365.5])
def test_a_window_must_be_a_whole_number_of_days(window: object) -> None:
    """YAML's `true` was read as a window of 1 day."""
    block = {"source": "health", "event_types": ["gp_contact"], "windows_days": [window],
             "aggregations": ["count"]}
    with pytest.raises(InputError, match=r"features\[0\]\.windows_days\[0\]"):
        parse_feature_spec([block])


def test_value_features_carry_the_contracts_range() -> None:
    """A mean, maximum or latest value lies in the contract's range or is 0 (no event); a
    sum of values that cannot be negative is not negative; counts carry no range."""
    spec = parse_feature_spec([
        {"source": "schools", "event_types": ["grade"], "value": "grade", "windows_days": [365],
         "aggregations": ["mean", "sum", "count"]},
        {"source": "economy", "event_types": ["debt_collection"], "value": "amount_dkk",
         "windows_days": [365], "aggregations": ["sum", "max"]},
        {"source": "employment", "event_types": ["benefit_start"], "value": "job_readiness",
         "windows_days": [730], "aggregations": ["last"]},
        {"source": "digital", "event_types": ["self_report"], "value": "score",
         "windows_days": [365], "aggregations": ["mean"]}])
    bounds = {f.name: (f.low, f.high) for f in expand(spec)}
    assert bounds == {
        "schools__grade__grade_mean_365d": (-3.0, 12.0),
        "schools__grade__grade_sum_365d": (None, None),
        "schools__grade__count_365d": (None, None),
        "economy__debt_collection__amount_dkk_sum_365d": (0.0, None),
        "economy__debt_collection__amount_dkk_max_365d": (0.0, 10_000_000.0),
        "employment__benefit_start__job_readiness_last_730d": (0.0, 3.0),
        "digital__self_report__score_mean_365d": (0.0, 10.0)}
