"""`overblik effects` on any CSV or Parquet table: effects.json, cate.csv and a
self-contained effects.html, and one clear message with exit code 2 for bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from typer.testing import CliRunner

from overblik.experiments._cli import app
from overblik.experiments._effects_file import parse_trim, read_effects_table

runner = CliRunner()
ROWS = 2500
TRUE_ATE = 2.0


def _table(seed: int = 0) -> pd.DataFrame:
    """Confounded by ``severity`` (raises treatment and lowers the outcome); effect 2."""
    rng = np.random.default_rng(seed)
    severity = rng.normal(size=ROWS)
    district = rng.choice(["north", "south", "east"], ROWS)
    treated = rng.random(ROWS) < expit(1.0 * severity - 0.3)
    outcome = 10 - 3 * severity + (district == "north") + TRUE_ATE * treated + rng.normal(
        size=ROWS)
    return pd.DataFrame({
        "case": [f"c{i:05d}" for i in range(ROWS)],  # an identifier: left out by default
        "treated": np.where(treated, "true", "false"),
        "outcome": outcome.round(4),
        "severity": severity.round(4),
        "district": district,
        "age": rng.integers(18, 65, ROWS),
    })


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("byod")
    frame = _table()
    csv, parquet = folder / "cases.csv", folder / "cases.parquet"
    frame.to_csv(csv, index=False)
    frame.assign(treated=frame.treated == "true").to_parquet(parquet, index=False)
    return {"csv": csv, "parquet": parquet, "folder": folder}


def _text(output: str) -> str:
    return " ".join(output.split())


def _effects(data: Path, out: Path, *extra: str, treatment: str = "treated",
             outcome: str = "outcome") -> tuple[int, str]:
    args = ["effects", "--data", str(data), "--treatment", treatment, "--outcome", outcome,
            "--out", str(out), "--n-folds", "3", "--n-bootstrap", "5", *extra]
    result = runner.invoke(app, args)
    return result.exit_code, _text(result.output)


@pytest.fixture(scope="module")
def csv_run(files: dict[str, Path]) -> Path:
    out = files["folder"] / "out-csv"
    code, output = _effects(files["csv"], out)
    assert code == 0, output
    assert "wrote" in output and "ATE" in output
    return out


def test_effects_json_has_the_documented_fields(csv_run: Path) -> None:
    summary = json.loads((csv_run / "effects.json").read_text(encoding="utf-8"))
    for key in ("n", "n_treated", "naive_difference", "ate", "att", "overlap", "warnings"):
        assert key in summary
    assert summary["n"] == ROWS
    assert summary["n_treated"] == int((_table().treated == "true").sum())
    for key in ("ate", "att"):
        assert set(summary[key]) >= {"estimate", "ci_low", "ci_high"}
    # Confounding makes the naive difference useless; the DR interval covers the truth.
    assert summary["naive_difference"] < 0 < TRUE_ATE
    assert summary["ate"]["ci_low"] <= TRUE_ATE <= summary["ate"]["ci_high"]
    assert summary["att"]["ci_low"] <= TRUE_ATE <= summary["att"]["ci_high"]
    assert set(summary["overlap"]) >= {"trimmed", "propensity_quantiles"}
    assert set(summary["overlap"]["propensity_quantiles"]) >= {"min", "p50", "max"}
    # Text covariates are one-hot encoded; the identifier is left out with a note.
    assert summary["covariates"] == ["severity", "district", "age"]
    assert any("'case'" in w and "left out" in w for w in summary["warnings"])


def test_cate_csv_has_one_row_per_input_row_in_order(csv_run: Path) -> None:
    cate = pd.read_csv(csv_run / "cate.csv")
    assert list(cate.columns) == ["row", "effect", "ci_low", "ci_high", "trimmed",
                                  "propensity"]
    assert cate["row"].tolist() == list(range(1, ROWS + 1))
    assert (cate["ci_low"] <= cate["effect"]).all() and (cate["effect"] <= cate["ci_high"]).all()
    assert cate["trimmed"].dtype == bool
    summary = json.loads((csv_run / "effects.json").read_text(encoding="utf-8"))
    assert int(cate["trimmed"].sum()) == summary["overlap"]["trimmed"]
    assert abs(cate["effect"].mean() - TRUE_ATE) < 0.5


def test_html_is_self_contained_with_both_plots(csv_run: Path) -> None:
    page = (csv_run / "effects.html").read_text(encoding="utf-8")
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    assert len(images) == 2
    assert "Propensity histogram per arm" in images[0]
    assert "individual effects" in images[1]
    assert not re.search(r'(src|href)="(https?:)?//', page)  # nothing fetched from the net
    assert "Effect of treated on outcome" in page


def test_parquet_booleans_and_explicit_covariates(files: dict[str, Path],
                                                  tmp_path: Path) -> None:
    code, output = _effects(files["parquet"], tmp_path / "out", "--covariates",
                            "severity,age", "--trim", "0.05,0.95")
    assert code == 0, output
    summary = json.loads((tmp_path / "out" / "effects.json").read_text(encoding="utf-8"))
    assert summary["covariates"] == ["severity", "age"]
    assert summary["overlap"]["trim"] == [0.05, 0.95]
    assert summary["warnings"] == [] or all("left out" not in w for w in summary["warnings"])


def _write(folder: Path, name: str, frame: pd.DataFrame) -> Path:
    path = folder / name
    frame.to_csv(path, index=False)
    return path


@pytest.mark.parametrize(("change", "args", "message"), [
    (None, ("--treatment", "treatment"),
     "has no --treatment column 'treatment' (did you mean 'treated'?)"),
    (None, ("--covariates", "severity,income"), "has no --covariates column 'income'"),
    ("outcome_text", (), "--outcome column 'outcome' must be numeric (or 0/1), but row 4 "
                         "(line 5) has 'n/a'"),
    ("three_arms", (), "--treatment column 'treated' must be binary, 0/1 (or true/false), "
                       "but row 2 (line 3) has 'mentor'"),
    ("all_treated", (), "has 0 untreated (0) rows"),
    (None, ("--trim", "0.9,0.1"), "--trim '0.9,0.1': need 0 <= LOW < HIGH <= 1"),
    (None, ("--trim", "low"), "--trim 'low' is not LOW,HIGH"),
    (None, ("--covariates", "severity,treated"), "--covariates includes 'treated'"),
    ("id_covariate", ("--covariates", "case"), "'case' is text with 2,500 distinct values"),
])
def test_bad_input_exits_2_with_one_clear_message(
        files: dict[str, Path], tmp_path: Path, change: str | None, args: tuple[str, ...],
        message: str) -> None:
    frame = _table()
    data = files["csv"]
    if change == "outcome_text":
        frame["outcome"] = frame["outcome"].astype(str)
        frame.loc[3, "outcome"] = "n/a"
    elif change == "three_arms":
        frame.loc[1, "treated"] = "mentor"
    elif change == "all_treated":
        frame["treated"] = "1"
    if change is not None:
        data = _write(tmp_path, "bad.csv", frame)
    treatment = "treated"
    extra = list(args)
    if "--treatment" in extra:
        treatment = extra[extra.index("--treatment") + 1]
        del extra[extra.index("--treatment"):extra.index("--treatment") + 2]
    code, output = _effects(data, tmp_path / "out", *extra, treatment=treatment)
    assert code == 2, output
    assert message in output
    assert "Traceback" not in output
    assert not (tmp_path / "out" / "effects.json").exists()


def test_missing_file_and_out_file_exit_2(files: dict[str, Path], tmp_path: Path) -> None:
    code, output = _effects(tmp_path / "nope.csv", tmp_path / "out")
    assert code == 2 and "does not exist" in output
    blocker = tmp_path / "blocker"
    blocker.write_text("x")
    code, output = _effects(files["csv"], blocker)
    assert code == 2 and "is a file" in output


def test_effects_help_lists_the_options() -> None:
    result = runner.invoke(app, ["effects", "--help"])
    assert result.exit_code == 0
    for option in ("--data", "--treatment", "--outcome", "--covariates", "--trim", "--out"):
        assert option in result.output


def test_reader_and_trim_parser_directly(files: dict[str, Path]) -> None:
    table = read_effects_table(files["csv"], treatment="treated", outcome="outcome",
                               covariates=["district"])
    assert list(table.X.columns) == ["district=east", "district=north", "district=south"]
    assert table.X.sum(axis=1).eq(1.0).all()
    assert parse_trim("0,1") == (0.0, 1.0)
