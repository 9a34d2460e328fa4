"""An experiment that does not fit its data is refused before anything is trained."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from overblik.experiments._cli import app
from overblik.experiments._config import (
    ExperimentConfig,
    experiments_dir,
    load_experiment,
    parse_experiment,
)
from overblik.experiments._train import Dataset, build_dataset
from overblik.experiments._trainable import (
    check_trainable,
    describe_short_history,
    short_history,
)
from overblik.features import EventTables
from overblik.features._errors import InputError
from overblik.models._splits import TemporalSplitter


def _raw() -> dict[str, Any]:
    raw: dict[str, Any] = yaml.safe_load(
        (experiments_dir() / "child_placement.yaml").read_text())
    return raw


def _splits(config: ExperimentConfig) -> list[Any]:
    return TemporalSplitter(horizon_days=config.label.horizon_days,
                            min_train_dates=config.validation.min_train_dates,
                            n_splits=config.validation.n_splits).split(config.as_of.dates())


@pytest.fixture(scope="module")
def shipped(municipality: Path) -> tuple[ExperimentConfig, Dataset, pd.Timestamp]:
    config = load_experiment(experiments_dir() / "child_placement.yaml")
    tables = EventTables.load(municipality / "clean")
    span = tables.event_span()
    assert span is not None
    return config, build_dataset(config, tables), span[1]


def _warnings(config: ExperimentConfig, source: str, *,
              span: tuple[pd.Timestamp, pd.Timestamp] | None) -> list[str]:
    """The short-history warning train prints."""
    return describe_short_history(short_history(config, span=span), config, source)


def _check(config: ExperimentConfig, data: Dataset, last: pd.Timestamp,
           y: np.ndarray | None = None) -> None:
    check_trainable(config, "x.yaml", as_of=data.rows["as_of"],
                    y=data.y if y is None else y, splits=_splits(config), last_event=last)


def test_the_shipped_experiment_fits_the_data(
        shipped: tuple[ExperimentConfig, Dataset, pd.Timestamp]) -> None:
    config, data, last = shipped
    assert last.year == 2025 and last.month == 12  # five years from 2021
    _check(config, data, last)


def test_label_windows_past_the_data_are_refused(
        shipped: tuple[ExperimentConfig, Dataset, pd.Timestamp]) -> None:
    """Ending the grid on 2025-10-01 would count 9 months of unseen placements as none."""
    _, data, last = shipped
    raw = _raw()
    raw["as_of"]["end"] = "2025-10-01"
    with pytest.raises(InputError) as err:
        _check(parse_experiment(raw, "x.yaml"), data, last)
    message = str(err.value)
    assert "as_of.end" in message and "2026-10-02" in message
    assert str(last.date()) in message and "shorten label.horizon_days" in message


@pytest.mark.parametrize(("edit", "expected"), [
    (lambda r: r.__setitem__("capacity_k", 1_000_000), ["capacity_k", "test as-of date"]),
    (lambda r: r["fairness"]["decision"].__setitem__("top_k", 1_000_000),
     ["fairness.decision.top_k"]),
    (lambda r: r["as_of"].update(start="2018-01-01", end="2020-01-01"),
     ["nobody is in the cohort", "move the as-of grid"]),
])
def test_grid_and_capacity_must_fit_the_cohort(
        shipped: tuple[ExperimentConfig, Dataset, pd.Timestamp], edit: Any,
        expected: list[str]) -> None:
    _, data, last = shipped
    raw = _raw()
    edit(raw)
    with pytest.raises(InputError) as err:
        _check(parse_experiment(raw, "x.yaml"), data, last)
    for word in expected:
        assert word in str(err.value)


def test_one_outcome_class_is_refused(
        shipped: tuple[ExperimentConfig, Dataset, pd.Timestamp]) -> None:
    config, data, last = shipped
    with pytest.raises(InputError, match=r"every row at the .* has outcome 0"):
        _check(config, data, last, y=np.zeros_like(data.y))


def test_cli_refuses_before_a_run_starts(municipality: Path, tmp_path: Path) -> None:
    raw = _raw()
    raw["as_of"]["end"] = "2025-10-01"
    raw["data"] = {"clean": str(municipality / "clean")}
    path = tmp_path / "censored.yaml"
    path.write_text(yaml.safe_dump(raw))
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    result = CliRunner().invoke(app, ["train", str(path), "--tracking-uri", uri])
    assert result.exit_code == 2, result.output
    assert "as_of.end" in result.output and "Traceback" not in result.output
    mlflow.set_tracking_uri(uri)
    assert mlflow.search_runs(search_all_experiments=True).empty  # nothing half-trained


@pytest.fixture(scope="module")
def span(municipality: Path) -> tuple[pd.Timestamp, pd.Timestamp]:
    found = EventTables.load(municipality / "clean").event_span()
    assert found is not None and found[0].date() == pd.Timestamp("2021-01-01").date()
    return found


@pytest.mark.parametrize(("start", "windows", "short"), [
    ("2023-01-01", [365, 730], None),  # 2023-01-01 - 730 days = 2021-01-01: just fits
    ("2022-01-01", [365, 730], "at 4 of 13 as-of dates (2022-01-01 to 2022-10-01)"),
    ("2023-01-01", [365, 1095], "at 4 of 9 as-of dates (2023-01-01 to 2023-10-01)"),
    ("2023-04-01", [365, 730], None),
])
def test_windows_reaching_back_before_the_data_are_warned_about(
        span: tuple[pd.Timestamp, pd.Timestamp], start: str, windows: list[int],
        short: str | None) -> None:
    """A 730-day count at an as-of date one year into the data covers one year: less
    history than the same feature at later dates and at serving time."""
    raw = _raw()
    raw["as_of"].update(start=start, accept_short_history=False)
    raw["features"][0]["windows_days"] = windows
    found = _warnings(parse_experiment(raw, "x.yaml"), "x.yaml", span=span)
    raw["as_of"]["accept_short_history"] = True  # the analyst's decision: no warning
    assert _warnings(parse_experiment(raw, "x.yaml"), "x.yaml", span=span) == []
    if short is None:
        assert found == []
        return
    (message,) = found
    longest = max(windows)
    first_full = (pd.Timestamp("2021-01-01") + pd.Timedelta(days=longest)).date()
    assert f"x.yaml: section 'features', features[0]: its {longest}-day window" in message
    assert "before the data begins (2021-01-01)" in message and short in message
    assert f"on or after {first_full} (key 'as_of.start')" in message
    assert "as_of.accept_short_history: true" in message


def test_no_events_or_no_windows_give_no_warning(
        span: tuple[pd.Timestamp, pd.Timestamp]) -> None:
    config = parse_experiment(_raw(), "x.yaml")
    assert _warnings(config, "x.yaml", span=None) == []
    raw = _raw()
    raw["features"] = [{"source": "population", "attributes": ["household_size"]}]
    raw["models"]["heuristic"]["column"] = "population__household_size"
    assert _warnings(parse_experiment(raw, "x.yaml"), "x.yaml", span=span) == []
