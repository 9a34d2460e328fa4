"""Experiment files: typed, validated up front (errors name section and key), hashed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from overblik.experiments._cli import app
from overblik.experiments._config import (
    experiments_dir,
    load_experiment,
    parse_experiment,
    resolve_experiment,
)
from overblik.features import InputError

SHIPPED = sorted(experiments_dir().glob("*.yaml"))


def _raw(name: str = "child_placement") -> dict:
    return yaml.safe_load((experiments_dir() / f"{name}.yaml").read_text())


def test_two_experiments_are_shipped() -> None:
    names = {p.stem for p in SHIPPED}
    assert {"child_placement", "long_term_benefit"} <= names


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_shipped_experiments_validate(path: Path) -> None:
    config = load_experiment(path)
    assert config.name == path.stem
    assert len(config.as_of.dates()) >= 4
    assert config.capacity_k > 0


def test_hash_is_stable_and_changes_with_content() -> None:
    a = parse_experiment(_raw(), "a.yaml")
    b = parse_experiment(_raw(), "b.yaml")
    assert a.config_hash() == b.config_hash()
    changed = _raw()
    changed["capacity_k"] = changed["capacity_k"] + 1
    assert parse_experiment(changed, "c.yaml").config_hash() != a.config_hash()


def test_a_danish_description_leaves_older_files_hashing_as_before() -> None:
    """description_da came later: a file without it hashes as before it existed (the
    service refuses a version whose config no longer hashes to its tag); with it, the
    hash changes like any other content."""
    import hashlib
    import json

    raw = _raw()
    raw.pop("description_da", None)
    config = parse_experiment(raw, "old.yaml")
    before = {k: v for k, v in config.model_dump(mode="json").items() if k != "description_da"}
    expected = hashlib.sha256(json.dumps(before, sort_keys=True, separators=(",", ":"))
                              .encode()).hexdigest()[:16]
    assert config.config_hash() == expected
    danish = parse_experiment({**raw, "description_da": "Anbringelse af et barn"}, "new.yaml")
    assert danish.config_hash() != expected


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (lambda r: r["label"].__setitem__("horizon_days", -3), ["label", "horizon_days"]),
        (lambda r: r["label"].pop("outcome"), ["label", "outcome", "missing"]),
        (lambda r: r.__setitem__("cohort", "everyone"), ["cohort"]),
        (lambda r: r["as_of"].__setitem__("start", "2023-13-01"), ["as_of", "start"]),
        (lambda r: r["models"].__setitem__("lightgbm", {"n_trees": 5}),
         ["models", "n_trees", "not a known key"]),
        (lambda r: r["models"]["heuristic"].__setitem__("column", "nope"),
         ["models", "heuristic.column", "nope"]),
        (lambda r: r.__setitem__("sensitive_attributes", ["shoe_size"]),
         ["sensitive_attributes"]),
        (lambda r: r["effects"]["programmes"].__setitem__("mentor", {"places": 5}),
         ["effects", "effects.programmes.mentor", "family_support"]),
        (lambda r: r["effects"]["programmes"]["family_support"].__setitem__("places", -1),
         ["effects", "places"]),
        (lambda r: r["effects"].__setitem__("access", {"attribute": "disability",
                                                       "max_gap": 0.1}),
         ["effects", "effects.access.attribute", "sensitive_attributes"]),
        (lambda r: r["effects"].__setitem__("trim", [0.5, 0.2]), ["effects", "trim"]),
        (lambda r: r["effects"].__setitem__("risk_stage", "sometimes"),
         ["effects", "risk_stage"]),
        (lambda r: r["effects"].__setitem__("programmes", {}), ["effects", "programmes"]),
        (lambda r: r["label"].__setitem__("outcome", "long_term_benefit"),
         ["label", "label.outcome", "child_placement"]),
        (lambda r: r["validation"].__setitem__("min_train_dates", 50),
         ["as_of", "validation", "split"]),
        (lambda r: r["as_of"].__setitem__("end", r["as_of"]["start"]), ["as_of", "split"]),
        (lambda r: r.__setitem__("seed", -1), ["seed", "greater than or equal to 0"]),
        (lambda r: r["effects"].__setitem__("budget", 10),
         ["effects.budget", "below the cheapest place (60)"]),
        (lambda r: r.__setitem__("sensitive_attributes", []), ["sensitive_attributes"]),
        (lambda r: r.__setitem__("sensitive_attributes", ["sex", "sex", "origin"]),
         ["sensitive_attributes", "sex", "more than once"]),
    ],
)
def test_broken_experiment_names_section_and_key(edit, expected: list[str]) -> None:
    raw = _raw()
    edit(raw)
    with pytest.raises(InputError) as err:
        parse_experiment(raw, "broken.yaml")
    message = str(err.value)
    assert "broken.yaml" in message
    for word in expected:
        assert word in message


def test_broken_feature_block_names_file_and_features_key() -> None:
    """The block's error names the file too (it named only features[i], leaving the analyst
    to guess which experiment file a train or serve command had read)."""
    raw = _raw()
    raw["features"][0]["source"] = "astrology"
    with pytest.raises(InputError, match=r"^broken\.yaml: features\[0\]\.source"):
        parse_experiment(raw, "broken.yaml")
    raw = _raw()
    raw["features"][0]["aggregations"] = ["meen"]
    with pytest.raises(InputError, match=r"^broken\.yaml: features\[0\]\.aggregations\[0\]: "
                                         r"'meen' is not known"):
        parse_experiment(raw, "broken.yaml")


def test_cli_exits_2_on_broken_file(tmp_path: Path) -> None:
    raw = _raw()
    raw["label"]["horizon_days"] = "a year"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw))
    result = CliRunner().invoke(app, ["train", str(bad)])
    assert result.exit_code == 2
    assert "label" in result.output and "horizon_days" in result.output
    assert "Traceback" not in result.output


def test_cli_errors_show_brackets_as_written(tmp_path: Path) -> None:
    """An error quoting a pattern keeps its brackets (the console read [a-z] as markup and
    printed the pattern as '^*$')."""
    raw = _raw()
    raw["name"] = "børn æøå"
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    result = CliRunner().invoke(app, ["train", str(bad)])
    assert result.exit_code == 2
    assert "^[a-z][a-z0-9_]*$" in " ".join(result.output.split())


def test_cli_exits_2_on_invalid_yaml(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed\n")
    result = CliRunner().invoke(app, ["train", str(bad)])
    assert result.exit_code == 2
    assert "line" in result.output


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    """The safe loader would keep the last one silently."""
    text = (experiments_dir() / "child_placement.yaml").read_text()
    bad = tmp_path / "twice.yaml"
    bad.write_text(text + "capacity_k: 5\n")
    with pytest.raises(InputError, match=r"key 'capacity_k' appears twice \(lines \d+ and"):
        load_experiment(bad)


def test_unknown_experiment_lists_shipped_ones() -> None:
    result = CliRunner().invoke(app, ["train", "no_such_experiment"])
    assert result.exit_code == 2
    assert "child_placement" in result.output


def test_resolve_by_name() -> None:
    assert resolve_experiment("child_placement") == experiments_dir() / "child_placement.yaml"


def test_the_effects_table_says_which_rows_each_column_is_of() -> None:
    """The title said "training rows" for every column; Qini area and PEHE are of the
    test rows."""
    from rich.console import Console

    from overblik.experiments._cli import _effects_table

    config = load_experiment(experiments_dir() / "long_term_benefit.yaml")
    assert config.effects is not None
    metrics: dict[str, float] = {}
    for p in config.effects.programmes:
        metrics.update({f"effects_{p}_ate": 0.01, f"effects_{p}_ate_ci_low": -0.02,
                        f"effects_{p}_ate_ci_high": 0.04, f"effects_{p}_naive_difference": 0.1,
                        f"effects_{p}_trimmed_share": 0.2, f"effects_{p}_test_qini_area": 0.003})
    console = Console(width=200, record=True)
    console.print(_effects_table(config, metrics, None))
    text = console.export_text()
    assert "training rows" not in text
    for header in ("ATE [95% CI] (train)", "naive (train)", "trimmed (train)",
                   "Qini area (test)"):
        assert header in text
    assert "+0.0030" in text and "20%" in text
