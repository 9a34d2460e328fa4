"""`overblik effects` on any CSV or Parquet table: effects.json, cate.csv and a
self-contained effects.html, and one clear message with exit code 2 for bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from scipy.special import expit
from typer.testing import CliRunner

from overblik.experiments._cli import app
from overblik.experiments._effects_file import (
    estimate_effects,
    parse_trim,
    read_effects_table,
)
from overblik.features import InputError

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
    # The individual intervals are named for what they are: a band of the effect model's
    # variation (they held the true effect for 84 % of rows where "95% confidence
    # intervals" promised 95 %).
    assert "The average effects' intervals are 95% confidence intervals" in page
    assert "95% band of the effect model's variation" in page
    assert "Intervals are 95% confidence intervals" not in page


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


def test_protected_attributes_taken_by_default_are_said(tmp_path: Path) -> None:
    """Without --covariates every other column was used, sex and origin too, with nothing
    said; named explicitly they are the analyst's choice."""
    rng = np.random.default_rng(1)
    frame = _table().head(400).assign(sex=rng.choice(["F", "M"], 400),
                                      Herkomst=rng.choice(["dansk", "indvandrer"], 400))
    data = _write(tmp_path, "with_sex.csv", frame)
    table = read_effects_table(data, treatment="treated", outcome="outcome")
    assert {"sex", "Herkomst"} <= set(table.covariates)
    (note,) = [n for n in table.notes if "protected attributes" in n]
    assert "(district, age, sex, Herkomst)" in note and "--covariates" in note
    chosen = read_effects_table(data, treatment="treated", outcome="outcome",
                                covariates=["severity", "sex"])
    assert not any("protected" in n for n in chosen.notes)
    plain = read_effects_table(_write(tmp_path, "plain.csv",
                                      _table().head(400)[["treated", "outcome", "severity"]]),
                               treatment="treated", outcome="outcome")
    assert not any("protected" in n for n in plain.notes)


# Bad input found by a probe: each gives one message and exit 2, never a traceback or a
# silently wrong result. Small tables, and no fit where the error comes before it.

SMALL = 400


def _small() -> pd.DataFrame:
    return _table().head(SMALL).drop(columns="case")


def _refused(code: int, output: str, *parts: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output
    for part in parts:
        assert part in output


@pytest.fixture
def no_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if the learner is fitted: these errors must come before any fitting."""
    from overblik.models._dr_learner import DRLearner

    def fit(*args: object, **kwargs: object) -> None:
        raise AssertionError("the learner was fitted before the bad input was refused")

    monkeypatch.setattr(DRLearner, "fit", fit)


def test_out_that_cannot_be_written_is_refused_before_fitting(
        files: dict[str, Path], tmp_path: Path, no_fit: None) -> None:
    (tmp_path / "afile").write_text("x")
    code, output = _effects(files["csv"], tmp_path / "afile" / "sub")
    _refused(code, output, "afile is a file, so no folder can be made in it")
    (tmp_path / "taken" / "effects.json").mkdir(parents=True)
    code, output = _effects(files["csv"], tmp_path / "taken")
    _refused(code, output, "effects.json is a folder, so effects.json cannot be written")
    assert not (tmp_path / "taken" / "cate.csv").exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux's /proc")
def test_out_the_system_refuses_exits_2(files: dict[str, Path], no_fit: None) -> None:
    code, output = _effects(files["csv"], Path("/proc/overblik_test_out"))
    _refused(code, output, "--out /proc/overblik_test_out: cannot write", "pass a folder you "
             "can write to")


def test_a_failed_write_after_the_fit_exits_2(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from overblik.experiments import _effects_file

    def full_disk(out: Path, result: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "cate.csv"))

    monkeypatch.setattr(_effects_file, "write_effects", full_disk)
    data = _write(tmp_path, "small.csv", _small())
    code, output = _effects(data, tmp_path / "out", "--n-bootstrap", "0")
    _refused(code, output, "cannot write", "cate.csv (No space left on device)")


def test_cr_only_line_endings_read_like_newlines(tmp_path: Path) -> None:
    frame = _small()
    lf, cr = tmp_path / "lf.csv", tmp_path / "cr.csv"
    frame.to_csv(lf, index=False)
    frame.to_csv(cr, index=False, lineterminator="\r")
    a = read_effects_table(lf, treatment="treated", outcome="outcome")
    b = read_effects_table(cr, treatment="treated", outcome="outcome")
    assert b.rows == SMALL and b.covariates == ["severity", "district", "age"]
    pd.testing.assert_frame_equal(a.X, b.X)
    assert (a.T == b.T).all() and (a.y == b.y).all()


def test_huge_outcome_is_refused_naming_the_row(tmp_path: Path, no_fit: None) -> None:
    frame = _small()
    frame.loc[6, "outcome"] = 3e300
    code, output = _effects(_write(tmp_path, "huge.csv", frame), tmp_path / "out")
    _refused(code, output, "--outcome column 'outcome' has '3e+300' in row 7 (line 8)",
             "rescale the outcome")


def test_summary_line_survives_a_missing_interval() -> None:
    from overblik.experiments._cli_effects import _interval

    assert _interval({"estimate": 1.5, "ci_low": None, "ci_high": None}) == "1.5 [–, –]"


def _nested(tmp_path: Path, **columns: pa.Array) -> Path:
    frame = _small()
    table = pa.table({"severity": frame["severity"], "treated": frame["treated"] == "true",
                      "outcome": frame["outcome"]})
    for name, values in columns.items():
        table = table.drop_columns([name]) if name in table.column_names else table
        table = table.append_column(name, values)
    path = tmp_path / "nested.parquet"
    pq.write_table(table, path)
    return path


def test_nested_parquet_columns(tmp_path: Path, no_fit: None) -> None:
    treated = (_small()["treated"] == "true").tolist()
    data = _nested(tmp_path, treated=pa.array([[int(t)] for t in treated]))
    code, output = _effects(data, tmp_path / "out")
    _refused(code, output, "--treatment column 'treated' holds nested values (Parquet type "
             "list<")
    data = _nested(tmp_path, outcome=pa.array([{"a": 1.0}] * SMALL))
    _refused(*_effects(data, tmp_path / "out"), "--outcome column 'outcome' holds nested")
    data = _nested(tmp_path, tags=pa.array([[1, 2]] * SMALL))
    table = read_effects_table(data, treatment="treated", outcome="outcome")
    assert table.covariates == ["severity"]
    assert any("'tags' holds nested values" in n and "left out" in n for n in table.notes)
    code, output = _effects(data, tmp_path / "out", "--covariates", "severity,tags")
    _refused(code, output, "--covariates column 'tags' holds nested values")


def test_header_longer_than_the_sniff_buffer(tmp_path: Path) -> None:
    from overblik.features._readers import SNIFF_BYTES

    frame = _small().head(40)
    wide = pd.DataFrame(np.zeros((40, 5000)), columns=[f"covariate_{i:05d}" for i in
                                                       range(5000)])
    path = tmp_path / "wide.csv"
    pd.concat([wide, frame], axis=1).to_csv(path, index=False)
    assert len(path.read_bytes().split(b"\n", 1)[0]) > SNIFF_BYTES
    table = read_effects_table(path, treatment="treated", outcome="outcome",
                               covariates=["covariate_04999", "severity"])
    assert table.rows == 40 and table.covariates == ["covariate_04999", "severity"]


@pytest.mark.parametrize(("header", "message"), [
    ("severity,treated,treated,outcome",
     "column 'treated' appears twice in the header (columns 2 and 3): rename one"),
    ("severity,severity,treated,outcome",
     "column 'severity' appears twice in the header (columns 1 and 2): rename one"),
])
def test_duplicate_csv_columns_are_refused(tmp_path: Path, header: str, message: str,
                                           no_fit: None) -> None:
    rows = "".join(f"{i % 7},{i % 2},{1 - i % 2},{i}\n" for i in range(60))
    data = tmp_path / "dup.csv"
    data.write_text(f"{header}\n{rows}", encoding="utf-8")
    _refused(*_effects(data, tmp_path / "out"), message)


def test_duplicate_parquet_columns_give_the_same_one_line_message(tmp_path: Path,
                                                                   no_fit: None) -> None:
    frame = _small()
    table = pa.table([frame["severity"], frame["age"], frame["treated"] == "true",
                      frame["outcome"]], names=["x1", "x1", "treated", "outcome"])
    data = tmp_path / "dup.parquet"
    pq.write_table(table, data)
    result = runner.invoke(app, ["effects", "--data", str(data), "--treatment", "treated",
                                 "--outcome", "outcome", "--out", str(tmp_path / "out")])
    _refused(result.exit_code, _text(result.output), "column 'x1' appears twice in the file's "
             "columns (columns 1 and 2): rename one")
    assert "__fragment_index" not in result.output  # no Arrow schema dump


def _one_bad_value(frame: pd.DataFrame, column: str, value: str) -> pd.DataFrame:
    frame[column] = frame[column].astype(object)
    frame.loc[3, column] = value
    return frame


@pytest.mark.parametrize(("column", "value", "round_first"), [
    ("severity", "n/a", False),  # 400 distinct values: was "an identifier?"
    ("severity", "?", True),  # few distinct values: was one-hot encoded as categories
    ("severity", "inf", False),
])
def test_one_bad_value_in_a_numeric_covariate_is_named(
        tmp_path: Path, column: str, value: str, round_first: bool, no_fit: None) -> None:
    frame = _small()
    if round_first:
        frame[column] = frame[column].round(0)
    data = _write(tmp_path, "typo.csv", _one_bad_value(frame, column, value))
    expected = f"--covariates column 'severity': row 4 (line 5) holds '{value}', not a"
    # Also when the covariates are not named: leaving the column out would drop a
    # confounder and move the estimate with only a warning (it did).
    with pytest.raises(InputError, match=re.escape(expected)):
        read_effects_table(data, treatment="treated", outcome="outcome")
    _refused(*_effects(data, tmp_path / "out"), expected, "fix or blank it (blank = missing)")
    code, output = _effects(data, tmp_path / "out", "--covariates", "severity,age")
    _refused(code, output, expected, "fix or blank it (blank = missing)")


def test_a_numeric_covariate_with_many_missing_codes_is_refused_naming_them(
        tmp_path: Path, no_fit: None) -> None:
    """10 % 'n/a' (and some 'unknown') among numbers: beyond the few-typos share it was read
    as text with hundreds of values, "an identifier?", and left out when the covariates
    were inferred, dropping a confounder (ATE 1.22 against a truth of 0.30, exit 0)."""
    frame = _small()
    frame["severity"] = frame["severity"].astype(object)
    rows = len(frame)
    frame.loc[frame.index[3:rows:10], "severity"] = "n/a"
    frame.loc[frame.index[5:rows:40], "severity"] = "unknown"
    data = _write(tmp_path, "codes.csv", frame)
    bad = int(frame["severity"].isin(["n/a", "unknown"]).sum())
    expected = (f"--covariates column 'severity' holds numbers, and 'n/a', 'unknown' in {bad:,} "
                f"of the {rows:,} rows with a value (first row 4 (line 5)): if these mean "
                "missing, blank them (blank = missing)")
    with pytest.raises(InputError, match=re.escape(expected)):
        read_effects_table(data, treatment="treated", outcome="outcome")
    _refused(*_effects(data, tmp_path / "out"), expected)
    # Blanked, the same column is used as numbers with missing values.
    frame["severity"] = pd.to_numeric(frame["severity"], errors="coerce")
    table = read_effects_table(_write(tmp_path, "blank.csv", frame), treatment="treated",
                               outcome="outcome")
    assert "severity" in table.covariates


def test_parquet_values_show_plainly(tmp_path: Path, no_fit: None) -> None:
    frame = _small().assign(treated=lambda f: f.treated == "true")
    frame.loc[7, "outcome"] = np.inf
    frame.loc[3, "severity"] = -np.inf
    data = tmp_path / "inf.parquet"
    frame.to_parquet(data, index=False)
    with pytest.raises(InputError, match="row 8 holds inf, not a finite number") as raised:
        read_effects_table(data, treatment="treated", outcome="age")  # 'outcome' a covariate
    assert "np.float64" not in str(raised.value)
    with pytest.raises(InputError, match="'severity': row 4 holds -inf, not a finite number"):
        read_effects_table(data, treatment="treated", outcome="age", covariates=["severity"])
    code, output = _effects(data, tmp_path / "out")
    _refused(code, output, "row 8 has inf, which is not a number")
    assert "np.float64" not in output


def test_messages_hide_cprs_but_not_the_digits_of_a_fraction() -> None:
    from overblik.experiments._audit_file import hide_cprs_in_text

    assert hide_cprs_in_text("{'a': 0.7086123183051166}") == "{'a': 0.7086123183051166}"
    assert "0101901234" not in hide_cprs_in_text("id 0101901234, 010190-1234.5")
    assert "1234" not in hide_cprs_in_text("id 010190-1234.5")


def test_no_overlap_is_warned_even_when_nothing_is_trimmed(tmp_path: Path) -> None:
    frame = _small()
    treated = frame["treated"] == "true"
    # A covariate that separates the arms perfectly: no row of one arm resembles the other.
    frame["severity"] = np.where(treated, 5 + frame["severity"].abs(),
                                 -5 - frame["severity"].abs())
    data = _write(tmp_path, "apart.csv", frame)
    code, output = _effects(data, tmp_path / "out", "--trim", "0,1", "--n-folds", "2",
                            "--n-bootstrap", "0")
    assert code == 0, output
    warnings = json.loads((tmp_path / "out" / "effects.json").read_text())["warnings"]
    found = [w for w in warnings if w.startswith("little overlap for treated")]
    assert len(found) == 1, warnings
    shares = [float(s) for s in re.findall(r"([\d.]+)% of the (?:un)?treated", found[0])]
    assert len(shares) == 2 and min(shares) > 90
    assert "little overlap" in output


def test_good_overlap_gives_no_extrapolation_warning(csv_run: Path) -> None:
    summary = json.loads((csv_run / "effects.json").read_text(encoding="utf-8"))
    assert not any("little overlap" in w for w in summary["warnings"])


# A CSV whose first column is named PAR1 starts with Parquet's magic bytes: it is read as
# the CSV it is (a Parquet file also ends with them).

def test_csv_whose_first_column_is_named_par1_is_read_as_csv(tmp_path: Path) -> None:
    frame = _small().rename(columns={"severity": "PAR1"})
    data = _write(tmp_path, "par1.csv", frame[["PAR1", "treated", "outcome", "age"]])
    assert data.read_bytes().startswith(b"PAR1,")
    code, output = _effects(data, tmp_path / "out", "--n-folds", "2", "--n-bootstrap", "0")
    assert code == 0, output
    summary = json.loads((tmp_path / "out" / "effects.json").read_text(encoding="utf-8"))
    assert summary["covariates"] == ["PAR1", "age"] and summary["n"] == SMALL


def test_truncated_parquet_is_still_a_broken_parquet_file(tmp_path: Path,
                                                          no_fit: None) -> None:
    whole = tmp_path / "whole.parquet"
    _small().to_parquet(whole, index=False)
    for name in ("cut.parquet", "cut.csv"):  # binary after the magic: Parquet, whatever the name
        cut = tmp_path / name
        cut.write_bytes(whole.read_bytes()[:-200])
        _refused(*_effects(cut, tmp_path / "out"), f"{name} is not a readable Parquet file "
                 "(it may be truncated)")


# Date covariates are days since the column's earliest date, said in a warning; never
# one category per date.

def _dated(rows: int = SMALL) -> pd.DataFrame:
    frame = _small().head(rows)
    quarters = pd.date_range("2024-01-01", periods=8, freq="QS")
    return frame.assign(start=quarters[np.arange(rows) % 8])


def test_iso_dates_in_a_csv_become_days_since_the_earliest(tmp_path: Path) -> None:
    frame = _dated()
    data = _write(tmp_path, "dated.csv", frame.assign(start=frame.start.dt.strftime("%Y-%m-%d")))
    code, output = _effects(data, tmp_path / "out", "--covariates", "severity,start",
                            "--n-folds", "2", "--n-bootstrap", "0")
    assert code == 0, output
    note = ("--covariates column 'start' holds dates (2024-01-01 to 2025-10-01): used as the "
            "number of days since 2024-01-01")
    assert f"warning: {note}" in output
    summary = json.loads((tmp_path / "out" / "effects.json").read_text(encoding="utf-8"))
    assert summary["covariates"] == ["severity", "start"]
    assert any(w.startswith(note) for w in summary["warnings"])
    table = read_effects_table(data, treatment="treated", outcome="outcome",
                               covariates=["start"])
    assert list(table.X.columns) == ["start (days since 2024-01-01)"]
    expected = (frame.start - pd.Timestamp("2024-01-01")).dt.days.to_numpy(dtype=float)
    np.testing.assert_array_equal(table.X.iloc[:, 0].to_numpy(), expected)


@pytest.mark.parametrize("kind", ["date32", "timestamp[us]", "timestamp[ns, tz]", "text"])
def test_parquet_dates_become_days_since_the_earliest(tmp_path: Path, kind: str) -> None:
    frame = _dated()
    start = (frame.start + pd.Timedelta(hours=12)).mask(frame.index == SMALL - 1)  # one NaT
    values = {"date32": pa.array(start.dt.date, pa.date32()),
              "timestamp[us]": pa.array(start, pa.timestamp("us")),
              # Wall-clock time where it was recorded, as a CSV export would show it.
              "timestamp[ns, tz]": pa.array(start.dt.tz_localize("Europe/Copenhagen")
                                            .astype("datetime64[ns, Europe/Copenhagen]")),
              "text": pa.array(start.dt.strftime("%Y-%m-%d %H:%M"))}[kind]
    assert values.null_count == 1
    table = pa.table({"treated": frame.treated == "true", "outcome": frame.outcome,
                      "severity": frame.severity, "start": values})
    data = tmp_path / "dated.parquet"
    pq.write_table(table, data)
    read = read_effects_table(data, treatment="treated", outcome="outcome")
    earliest = "2024-01-01" if kind == "date32" else "2024-01-01 12:00:00"
    assert read.covariates == ["severity", "start"]
    assert list(read.X.columns) == ["severity", f"start (days since {earliest})"]
    days = read.X.iloc[:, 1].to_numpy()
    expected = (frame.start - pd.Timestamp("2024-01-01")).dt.days.to_numpy(dtype=float)
    np.testing.assert_array_equal(days[:-1], expected[:-1])
    assert np.isnan(days[-1])
    assert any(f"'start' holds dates ({earliest} to 2025-10-01" in n for n in read.notes)


def test_far_future_end_dates_are_days_too(tmp_path: Path) -> None:
    """9999-12-31 ("no end") is beyond pandas' nanoseconds; still a number of days."""
    frame = _dated()
    ends = np.where(np.arange(SMALL) % 3 == 0, "9999-12-31",
                    frame.start.dt.strftime("%Y-%m-%d"))
    data = _write(tmp_path, "ends.csv", frame.assign(start=ends))
    table = read_effects_table(data, treatment="treated", outcome="outcome",
                               covariates=["start"])
    days = table.X.iloc[:, 0].to_numpy()
    assert days.max() == (pd.Timestamp("9999-12-31").to_pydatetime()
                          - pd.Timestamp("2024-01-01").to_pydatetime()).days


@pytest.mark.parametrize(("value", "dates", "message"), [
    ("2024-02-30", None, "--covariates column 'start': row 4 (line 5) holds '2024-02-30', not "
                         "a date (YYYY-MM-DD) (1 of the 400 rows with a value): fix or blank it"),
    ("n/a", None, "--covariates column 'start': row 4 (line 5) holds 'n/a', not a date"),
    (None, "%d-%m-%Y", "--covariates column 'start' holds dates written as '01-01-2024' (is "
                       "the day or the month first?): write them as YYYY-MM-DD"),
])
def test_bad_dates_are_refused_naming_the_row(tmp_path: Path, value: str | None,
                                              dates: str | None, message: str,
                                              no_fit: None) -> None:
    frame = _dated()
    frame["start"] = frame.start.dt.strftime(dates or "%Y-%m-%d").astype(object)
    if value is not None:
        frame.loc[3, "start"] = value
    data = _write(tmp_path, "bad-dates.csv", frame)
    if value is not None:  # a typo among dates: refused even when the column is not named
        with pytest.raises(InputError, match=re.escape(message)):
            read_effects_table(data, treatment="treated", outcome="outcome")
    else:  # a whole column in a format that cannot be read is left out, with the reason
        table = read_effects_table(data, treatment="treated", outcome="outcome")
        assert "start" not in table.covariates
        assert not any(c.startswith("start") for c in table.X.columns)
        assert any(message in n and n.endswith(" — left out") for n in table.notes)
    _refused(*_effects(data, tmp_path / "out", "--covariates", "severity,start"), message)


# A run that fails after making --out removes what it made, never a folder the user had.

def _too_few_for_the_folds(tmp_path: Path) -> Path:
    """12 treated rows: read fine, but the fit refuses 20 cross-fitting folds."""
    frame = _small()
    frame["treated"] = np.where(np.arange(SMALL) < 12, "true", "false")
    return _write(tmp_path, "few.csv", frame)


def test_failed_fit_removes_the_out_folders_it_made(tmp_path: Path) -> None:
    data = _too_few_for_the_folds(tmp_path)
    code, output = _effects(data, tmp_path / "new" / "out", "--n-folds", "20")
    _refused(code, output, "only 12 treated rows for 20 cross-fitting folds")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["few.csv"]


@pytest.mark.parametrize("mine", [[], ["notes.txt"]])
def test_failed_fit_keeps_a_folder_the_user_had(tmp_path: Path, mine: list[str]) -> None:
    data = _too_few_for_the_folds(tmp_path)
    out = tmp_path / "mine"
    out.mkdir()
    for name in mine:
        (out / name).write_text("keep me")
    _refused(*_effects(data, out, "--n-folds", "20"), "cross-fitting folds")
    assert sorted(p.name for p in out.iterdir()) == mine


def test_failed_write_removes_what_this_run_wrote(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from overblik.experiments import _effects_file

    def half_written(out: Path, result: object) -> None:
        (out / "effects.json").write_text("{}")
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "cate.csv"))

    monkeypatch.setattr(_effects_file, "write_effects", half_written)
    data = _write(tmp_path, "small.csv", _small())
    code, output = _effects(data, tmp_path / "out", "--n-folds", "2", "--n-bootstrap", "0")
    _refused(code, output, "No space left on device")
    assert not (tmp_path / "out").exists()


def test_the_same_rows_in_another_order_give_the_same_numbers(files: dict[str, Path],
                                                              tmp_path: Path) -> None:
    """The folds and bootstrap draw by position; fitting in content order makes a sorted
    or shuffled copy of a file give the same digits, row for row."""
    frame = pd.read_csv(files["csv"])
    shuffled = frame.sample(frac=1.0, random_state=3)
    copy = _write(tmp_path, "shuffled.csv", shuffled)
    first, second = (estimate_effects(read_effects_table(path, treatment="treated",
                                                         outcome="outcome"), n_bootstrap=2)
                     for path in (files["csv"], copy))
    assert {k: v for k, v in first.summary.items() if k != "data"} == {
        k: v for k, v in second.summary.items() if k != "data"}
    # The shuffled file's cate rows, put back in the original file's order.
    back = second.cate.iloc[np.argsort(shuffled.index.to_numpy())].reset_index(drop=True)
    pd.testing.assert_frame_equal(first.cate.drop(columns="row"), back.drop(columns="row"))
    # Per-row values that differ, so a misaligned row would show.
    assert first.cate["propensity"].nunique() > ROWS // 2
