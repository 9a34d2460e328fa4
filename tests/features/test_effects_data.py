"""Effects datasets from clean data: who started which programme at an as-of date (checked
against the synthetic truth, which the builder never reads), exclusions, and errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from overblik.experiments._config import load_experiment, resolve_experiment
from overblik.features import InputError, SyntheticConfig, demo_key, generate_municipality
from overblik.features import ingest as run_ingest
from overblik.features._effects_data import (
    CONTROL,
    EffectsDataset,
    build_effects_dataset,
    programme_catalogue,
    true_effects,
)
from overblik.features._feature_spec import parse_feature_spec
from overblik.features._tables import EventTables


@pytest.fixture(scope="module")
def municipality(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("effects-municipality")
    generate_municipality(SyntheticConfig(citizens=4000, years=5, seed=3), root / "m")
    run_ingest(root / "m" / "raw", root / "clean", demo_key())
    return root


def _build(root: Path, experiment: str, **kw: object) -> EffectsDataset:
    cfg = load_experiment(resolve_experiment(experiment))
    spec = parse_feature_spec(cfg.features, section="features")
    tables = EventTables.load(root / "clean")
    args: dict[str, object] = {"cohort_name": cfg.cohort, "as_of": cfg.as_of.dates(),
                               "horizon_days": cfg.label.horizon_days, **kw}
    return build_effects_dataset(tables, spec, **args)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def adults(municipality: Path) -> EffectsDataset:
    return _build(municipality, "long_term_benefit")


def test_adult_programmes_match_the_truth(municipality: Path, adults: EffectsDataset) -> None:
    assert adults.programmes == ["mentor", "debt_counselling", "job_course"]
    assert adults.outcome == "long_term_benefit"
    n = len(adults.rows)
    assert len(adults.X) == len(adults.y) == len(adults.programme) == len(adults.sensitive) == n
    assert set(np.unique(adults.y)) <= {0, 1}
    assert set(adults.programme) <= {CONTROL, *adults.programmes}
    for p in adults.programmes:
        assert (adults.programme == p).sum() > 10
    truth = true_effects(municipality / "m" / "truth", adults.rows, outcome=adults.outcome,
                         programmes=adults.programmes)
    assert not truth.isna().any().any()
    for p in adults.programmes:
        # Derived from the clean data's start events only, yet exactly the truth's record.
        assert np.array_equal(adults.programme == p, truth[f"received_{p}"].to_numpy(bool))
    assert (truth["effect_job_course"] == 0).all()
    assert (truth["effect_mentor"] > 0).mean() > 0.9
    # y is the good outcome: the complement of the label, as the effects' sign.
    assert adults.excluded["in_programme"] > 0 and adults.excluded["turns_18"] == 0


def test_treatment_codes_one_contrast(adults: EffectsDataset) -> None:
    t = adults.treatment("mentor")
    assert set(np.unique(t)) == {-1, 0, 1}
    assert np.array_equal(t == 1, adults.programme == "mentor")
    assert np.array_equal(t == 0, adults.programme == CONTROL)


def test_no_one_already_in_a_programme_is_a_row(municipality: Path,
                                                adults: EffectsDataset) -> None:
    spells = pd.read_parquet(municipality / "m" / "truth" / "programmes.parquet",
                             columns=["person_id", "start", "end"])
    rows = adults.rows.assign(person_id=adults.rows["person_id"].astype(str),
                              as_of=pd.to_datetime(adults.rows["as_of"]).astype("datetime64[ns]"))
    joined = rows.merge(spells.assign(person_id=spells["person_id"].astype(str)),
                        on="person_id")
    running = (joined["start"] < joined["as_of"]) & (joined["end"] > joined["as_of"])
    assert len(joined) > 0 and not running.any()
    assert not adults.rows.duplicated(["person_id", "as_of"]).any()


def test_children_turning_18_are_left_out(municipality: Path) -> None:
    kids = _build(municipality, "child_placement")
    assert kids.programmes == ["family_support"] == programme_catalogue("child_placement")
    assert kids.excluded["turns_18"] > 0
    assert (kids.programme == "family_support").sum() > 20


@pytest.mark.parametrize(("kw", "match"), [
    ({"programmes": ["yoga"]}, "programme 'yoga' is not known"),
    ({"programmes": ["family_support"]}, "acts on child_placement, not on long_term_benefit"),
    ({"start_window_days": 0}, "start_window_days=0"),
    ({"cohort_name": "pensioners"}, "cohort 'pensioners' is not known"),
])
def test_bad_arguments_raise_input_errors(municipality: Path, kw: dict[str, object],
                                          match: str) -> None:
    with pytest.raises(InputError, match=match):
        _build(municipality, "long_term_benefit", **kw)


def test_true_effects_needs_the_truth_folder(tmp_path: Path, adults: EffectsDataset) -> None:
    with pytest.raises(InputError, match=r"truth\.parquet does not exist"):
        true_effects(tmp_path, adults.rows, outcome=adults.outcome,
                     programmes=adults.programmes)
