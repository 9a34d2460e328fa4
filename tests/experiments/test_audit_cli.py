"""`overblik audit` on any scored CSV or Parquet file: report.html and audit.json, and one
clear message with exit code 2 for every kind of bad input."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from overblik.experiments._audit_file import read_audit_table
from overblik.experiments._cli import app
from overblik.features import InputError

runner = CliRunner()
ROWS = 1200
INTERVAL_KEYS = {"value", "ci_low", "ci_high"}


def _scored(seed: int = 3) -> pd.DataFrame:
    """A scored cohort with a group effect, a tiny group (suppressed) and extra columns."""
    rng = np.random.default_rng(seed)
    origin = rng.choice(["danish", "immigrant", "descendant"], ROWS, p=[0.7, 0.2, 0.1])
    origin[:8] = "other"  # fewer than min_count: suppressed
    sex = rng.choice(["F", "M"], ROWS)
    risk = rng.beta(2, 8, ROWS) + np.where(origin == "immigrant", 0.08, 0.0)
    risk = np.clip(risk, 0, 1)
    return pd.DataFrame({
        "person": [f"p{i:05d}" for i in range(ROWS)],
        "placed": (rng.random(ROWS) < risk).astype(int),
        "risk": risk.round(6),
        "sex": sex,
        "origin": origin,
        "note": "irrelevant",
    })


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("scored")
    frame = _scored()
    csv, parquet = folder / "scores.csv", folder / "scores.parquet"
    frame.to_csv(csv, index=False)
    frame.to_parquet(parquet, index=False)
    return {"csv": csv, "parquet": parquet}


def _text(output: str) -> str:
    return " ".join(output.split())


def _audit(data: Path, out: Path, *extra: str) -> tuple[int, str]:
    args = ["audit", "--data", str(data), "--label", "placed", "--score", "risk",
            "--sensitive", "sex,origin", "--out", str(out), "--n-boot", "40", *extra]
    result = runner.invoke(app, args)
    return result.exit_code, result.output


def _check_interval(value: object) -> None:
    assert isinstance(value, dict) and set(value) == INTERVAL_KEYS
    for key in INTERVAL_KEYS:
        v = value[key]
        assert v is None or isinstance(v, int | float)


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_audit_writes_report_and_json(files: dict[str, Path], tmp_path: Path,
                                      fmt: str) -> None:
    out = tmp_path / "audit"
    code, output = _audit(files[fmt], out, "--top-k", "150", "--reference", "origin=danish")
    assert code == 0, output
    html = (out / "report.html").read_text(encoding="utf-8")
    assert html.lstrip().lower().startswith("<!doctype html")
    assert 'lang="da"' in html and 'lang="en"' in html
    # Each language its own title, and the method names the file, not "test data" (the
    # page said "Fairness-audit / fairness audit" and "computed on test data" for any file).
    name = files[fmt].name
    da, en = html.split('lang="da"', 1)[1], html.split('lang="en"', 1)[1]
    assert f"Fairness-audit: {name}" in da.split('lang="en"')[0]
    assert f"Fairness audit: {name}" in en
    assert "Fairness-audit / fairness audit" not in html and "test data" not in html
    assert f"all {ROWS:,} rows of {name}".replace(",", "\u2009") in html
    doc = json.loads((out / "audit.json").read_text(encoding="utf-8"))
    for key in ("n", "decision", "min_count", "n_boot", "confidence", "overall", "groups",
                "disparities"):
        assert key in doc
    assert doc["n"] == ROWS and doc["n_boot"] == 40 and doc["min_count"] == 20
    assert "150" in doc["decision"]
    for interval in doc["overall"].values():
        _check_interval(interval)
    assert doc["overall"]["selection_rate"]["value"] == pytest.approx(150 / ROWS)
    groups = {(g["attribute"], g["group"]): g for g in doc["groups"]}
    assert {("sex", "F"), ("sex", "M"), ("origin", "danish"), ("origin", "immigrant")} <= set(
        groups)
    assert any("&" in attribute for attribute, _ in groups)  # intersections
    tiny = groups[("origin", "other")]
    assert tiny["suppressed"] is True and tiny["metrics"] == {} and tiny["n"] is None
    immigrant = groups[("origin", "immigrant")]
    assert immigrant["suppressed"] is False
    for metric in ("selection_rate", "tpr", "fpr", "fnr", "ppv", "auc", "brier", "ece",
                   "base_rate"):
        _check_interval(immigrant["metrics"][metric])
    frame = _scored()
    assert immigrant["n"] == int((frame["origin"] == "immigrant").sum())
    origin_refs = {d["reference"] for d in doc["disparities"] if d["attribute"] == "origin"}
    assert origin_refs == {"danish"}
    for d in doc["disparities"]:
        assert set(d) >= {"attribute", "group", "reference", "metric", "difference", "ratio"}
        _check_interval(d["difference"])
    assert "suppressed" in _text(output) and "report.html" in _text(output)


def test_csv_and_parquet_give_the_same_numbers(files: dict[str, Path], tmp_path: Path
                                               ) -> None:
    docs = []
    for fmt in ("csv", "parquet"):
        code, output = _audit(files[fmt], tmp_path / fmt, "--threshold", "0.25")
        assert code == 0, output
        docs.append(json.loads((tmp_path / fmt / "audit.json").read_text()))
    assert docs[0] == docs[1]
    expected = float((_scored()["risk"] >= 0.25).mean())
    assert docs[0]["overall"]["selection_rate"]["value"] == pytest.approx(expected)


def _write(tmp_path: Path, edit: Callable[[pd.DataFrame], pd.DataFrame],
           name: str = "bad.csv") -> Path:
    path = tmp_path / name
    frame = edit(_scored().head(300).copy())
    if name.endswith(".parquet"):
        frame.to_parquet(path, index=False)
    else:
        frame.to_csv(path, index=False)
    return path


def _set(column: str, row: int, value: object) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def edit(frame: pd.DataFrame) -> pd.DataFrame:
        frame[column] = frame[column].astype(object)
        frame.loc[row, column] = value
        return frame
    return edit


def _unchanged(frame: pd.DataFrame) -> pd.DataFrame:
    return frame


def _raw(name: str, content: bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        path.write_bytes(content)
        return path
    return make


BAD_FILES: dict[str, tuple[Callable[[Path], Path], list[str], list[str]]] = {
    "missing column": (lambda t: _write(t, lambda f: f.drop(columns="placed")), [],
                       ["--label column 'placed'", "its columns are: person, risk, sex"]),
    "score not a number": (lambda t: _write(t, _set("risk", 4, "high")), [],
                           ["--score column 'risk'", "row 5 (line 6)", "'high'"]),
    "score missing": (lambda t: _write(t, _set("risk", 9, None), "bad.parquet"), [],
                      ["--score column 'risk'", "row 10 has no value"]),
    "label not binary": (lambda t: _write(t, _set("placed", 2, 2)), [],
                         ["--label column 'placed' must hold 0/1", "row 3 (line 4)", "'2'"]),
    "label missing": (lambda t: _write(t, _set("placed", 0, None)), [],
                      ["--label column 'placed' is empty in row 1 (line 2)"]),
    "sensitive all empty": (lambda t: _write(t, lambda f: f.assign(sex=None)), [],
                            ["--sensitive column 'sex' has no value in any row"]),
    "reference value absent": (lambda t: _write(t, _unchanged), ["--reference", "origin=martian"],
                               ["origin = 'martian' (an empty group)", "danish"]),
    "reference syntax": (lambda t: _write(t, _unchanged), ["--reference", "origin"],
                         ["--reference 'origin' is not COLUMN=VALUE"]),
    "reference column": (lambda t: _write(t, _unchanged), ["--reference", "note=x"],
                         ["'note' is not one of the --sensitive columns (sex, origin)"]),
    "top-k beyond rows": (lambda t: _write(t, _unchanged), ["--top-k", "301"],
                          ["--top-k 301 is more than the 300 rows"]),
    "file missing": (lambda t: t / "nope.csv", [], ["nope.csv does not exist"]),
    "file empty": (_raw("e.csv", b""), [], ["e.csv is empty (zero bytes)"]),
    "header only": (lambda t: _write(t, lambda f: f.head(0)), [], ["has a header but no rows"]),
    "binary garbage": (_raw("g.csv", b"\x00\x01\x02" * 50), [],
                       ["neither CSV text nor Parquet"]),
    "broken parquet": (_raw("b.parquet", b"PAR1" + b"x" * 100), [],
                       ["is not a readable Parquet file"]),
    "truncated parquet named .csv": (lambda t: _truncated(t, "cut.csv"), [],
                                     ["cut.csv is not a readable Parquet file (it may be "
                                      "truncated)"]),
    "not utf-8": (_raw("l.csv", "placed,risk,sex,origin\n1,0.5,F,dansk\u00f8\n".encode("latin-1")),
                  [], ["is not UTF-8 text"]),
    "ragged rows": (_raw("r.csv", b"placed,risk,sex,origin\n1,0.5,F,danish\n0,0.2,M,da,x\n"),
                    [], ["cannot be read as CSV", "as many fields as the header"]),
    "column twice": (lambda t: _write(t, _unchanged), ["--sensitive", "placed"],
                     ["'placed' is given for more than one of --label, --score and --sensitive"]),
    "header names a column twice": (
        _raw("d.csv", b"placed,risk,sex,sex,origin\n1,0.5,F,M,danish\n0,0.2,M,F,danish\n"),
        [], ["column 'sex' appears twice in the header (columns 3 and 4): rename one"]),
    "parquet names a column twice": (
        lambda t: _parquet(t, pa.table([[1, 0], [0.5, 0.2], ["F", "M"], ["M", "F"], ["a", "b"]],
                                       names=["placed", "risk", "sex", "sex", "origin"])),
        [], ["column 'sex' appears twice in the file's columns (columns 3 and 4): rename one"]),
    "nested label": (
        lambda t: _parquet(t, pa.table({"placed": [[1], [0]], "risk": [0.5, 0.2],
                                        "sex": ["F", "M"], "origin": ["a", "b"]})),
        [], ["--label column 'placed' holds nested values (Parquet type list<"]),
    "score inf shown plainly": (lambda t: _write(t, _set("risk", 4, np.inf), "bad.parquet"), [],
                                ["row 5 has inf, which is not a finite number"]),
}


def _truncated(folder: Path, name: str) -> Path:
    """A real Parquet file without its last bytes (an interrupted copy): magic at the start,
    binary data, no magic at the end."""
    whole = _write(folder, _unchanged, "whole.parquet")
    path = folder / name
    path.write_bytes(whole.read_bytes()[:-100])
    return path


def _parquet(folder: Path, table: pa.Table) -> Path:
    path = folder / "t.parquet"
    pq.write_table(table, path)
    return path


@pytest.mark.parametrize("case", list(BAD_FILES), ids=list(BAD_FILES))
def test_bad_input_exits_2_naming_the_problem(tmp_path: Path, case: str) -> None:
    make, extra, expected = BAD_FILES[case]
    data = make(tmp_path)
    if "--top-k" not in extra:
        extra = [*extra, "--top-k", "10"]
    result = runner.invoke(app, ["audit", "--data", str(data), "--label", "placed", "--score",
                                 "risk", "--sensitive", "sex,origin", "--out",
                                 str(tmp_path / "out"), *extra])
    text = _text(result.output)
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    for part in expected:
        assert part in text
    assert not (tmp_path / "out" / "report.html").exists()
    assert "np.float64" not in text


@pytest.mark.parametrize(("extra", "expected"), [
    (["--threshold", "nan"], "--threshold nan: give a finite number"),
    (["--threshold", "inf"], "--threshold inf: give a finite number"),
    ([], "give exactly one decision rule"),
    (["--threshold", "0.3", "--top-k", "5"], "give exactly one decision rule"),
    (["--top-k", "0"], "--top-k 0: must be at least 1"),
    # Everyone or no one selected: every group's rates equal, which read as a pass.
    (["--threshold", "2"], "--threshold 2 selects no one (the scores in"),
    (["--threshold", "-1"], "--threshold -1 selects everyone (the scores in"),
])
def test_decision_rule_usage_exits_2(files: dict[str, Path], tmp_path: Path,
                                     extra: list[str], expected: str) -> None:
    code, output = _audit(files["csv"], tmp_path / "out", *extra)
    assert code == 2
    assert expected in _text(output)


def test_out_that_is_a_file_exits_2(files: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "taken"
    out.write_text("x")
    code, output = _audit(files["csv"], out, "--top-k", "5")
    assert code == 2
    assert "is a file: pass a folder" in _text(output)


@pytest.fixture
def no_audit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail loudly if the audit runs: an unusable --out must be refused before it."""
    import overblik.fairness

    def run(*args: object, **kwargs: object) -> None:
        raise AssertionError("the audit ran before --out was checked")

    monkeypatch.setattr(overblik.fairness, "audit", run)


def test_out_that_cannot_be_written_is_refused_before_the_audit(
        files: dict[str, Path], tmp_path: Path, no_audit: None) -> None:
    (tmp_path / "afile").write_text("x")
    code, output = _audit(files["csv"], tmp_path / "afile" / "sub", "--top-k", "5")
    assert code == 2 and "Traceback" not in output
    assert "afile is a file, so no folder can be made in it" in _text(output)
    (tmp_path / "taken" / "audit.json").mkdir(parents=True)
    code, output = _audit(files["csv"], tmp_path / "taken", "--top-k", "5")
    assert code == 2 and "Traceback" not in output
    assert "audit.json is a folder, so audit.json cannot be written" in _text(output)
    assert not (tmp_path / "taken" / "report.html").exists()


def test_a_failed_write_after_the_audit_exits_2(files: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    import overblik.fairness

    def full_disk(path: Path, *args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(overblik.fairness, "write_report", full_disk)
    code, output = _audit(files["csv"], tmp_path / "out", "--top-k", "5")
    assert code == 2 and "Traceback" not in output
    assert "report.html (No space left on device)" in _text(output)


def test_cr_only_line_endings_give_the_same_audit(files: dict[str, Path],
                                                  tmp_path: Path) -> None:
    cr = tmp_path / "cr.csv"
    _scored().to_csv(cr, index=False, lineterminator="\r")
    docs = []
    for data, out in ((files["csv"], tmp_path / "lf"), (cr, tmp_path / "cr")):
        code, output = _audit(data, out, "--threshold", "0.25")
        assert code == 0, output
        docs.append(json.loads((out / "audit.json").read_text()))
    assert docs[0] == docs[1] and docs[1]["n"] == ROWS


def test_missing_columns_suggest_the_close_name(files: dict[str, Path]) -> None:
    with pytest.raises(InputError, match="--score column 'rsik' \\(did you mean 'risk'\\?\\)"):
        read_audit_table(files["parquet"], label="placed", score="rsik", sensitive=["sex"])


def test_reader_accepts_true_false_labels_and_keeps_missing_groups(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("y,s,g\ntrue,0.1,a\nFALSE,0.9,\n1,0.4,b\n", encoding="utf-8")
    table = read_audit_table(path, label="y", score="s", sensitive=["g"])
    assert table.y_true.tolist() == [1, 0, 1]
    assert table.scores.tolist() == [0.1, 0.9, 0.4]
    assert table.sensitive["g"].isna().tolist() == [False, True, False]


def test_help_explains_the_options() -> None:
    result = runner.invoke(app, ["audit", "--help"])
    assert result.exit_code == 0
    text = _text(result.output)
    for option in ("--data", "--label", "--score", "--threshold", "--top-k", "--sensitive",
                   "--reference", "--min-count", "--n-boot", "--out", "report.html"):
        assert option in text


def test_an_audit_that_compares_nothing_says_so(tmp_path: Path) -> None:
    """One group only: the command does not claim the thresholds are met."""
    rng = np.random.default_rng(0)
    score = rng.uniform(size=400)
    frame = pd.DataFrame({"label": (rng.uniform(size=400) < score).astype(int),
                          "score": score, "sex": "F"})
    frame.to_csv(tmp_path / "one.csv", index=False)
    result = CliRunner().invoke(app, [
        "audit", "--data", str(tmp_path / "one.csv"), "--label", "label", "--score", "score",
        "--sensitive", "sex", "--threshold", "0.5", "--n-boot", "20", "--out",
        str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "can NOT be shown to meet (1 not checked)" in result.output
    assert "not checked: sex: only one group" in result.output
    assert "meets the default" not in result.output


def test_csv_whose_first_column_is_named_par1_is_audited_as_csv(tmp_path: Path) -> None:
    """Parquet's magic bytes at the start alone do not make a Parquet file (it also ends
    with them): this is CSV text whose first column is named PAR1."""
    path = _write(tmp_path, lambda f: f.rename(columns={"person": "PAR1"}), "par1.csv")
    assert path.read_bytes().startswith(b"PAR1,")
    table = read_audit_table(path, label="placed", score="risk", sensitive=["PAR1", "sex"])
    assert table.is_csv and table.rows == 300
    assert table.sensitive["PAR1"].tolist()[:2] == ["p00000", "p00001"]
    code, output = _audit(path, tmp_path / "out", "--top-k", "30")
    assert code == 0, output
    assert json.loads((tmp_path / "out" / "audit.json").read_text())["n"] == 300


def test_a_cpr_column_given_as_sensitive_is_not_printed(tmp_path: Path) -> None:
    """The messages that list a sensitive column's values printed the CPR numbers of a
    column given by mistake (20 with --reference, 3 as examples of too many groups)."""
    cprs = [f"{d:02d}0190-{1000 + i:04d}" for i, d in enumerate(np.arange(ROWS) % 28 + 1)]
    _scored().assign(cpr=cprs).to_csv(tmp_path / "with_cpr.csv", index=False)
    base = ["audit", "--data", str(tmp_path / "with_cpr.csv"), "--label", "placed", "--score",
            "risk", "--top-k", "100", "--n-boot", "20", "--out", str(tmp_path / "out")]
    for extra in (["--sensitive", "origin,cpr", "--reference", "cpr=none"],
                  ["--sensitive", "origin,cpr"]):
        result = runner.invoke(app, [*base, *extra])
        assert result.exit_code == 2, result.output
        assert "<CPR-shaped value hidden>" in _text(result.output)
        assert not any(c in result.output or c.replace("-", "") in result.output
                       for c in cprs), result.output


def test_a_failed_audit_leaves_no_new_out_folder(tmp_path: Path) -> None:
    """A sensitive column of ages is refused by the audit itself, after --out was made."""
    frame = _scored().assign(age=np.arange(ROWS) % 70 + 18)
    frame.to_csv(tmp_path / "ages.csv", index=False)
    out = tmp_path / "new" / "audit"
    base = ["audit", "--data", str(tmp_path / "ages.csv"), "--label", "placed", "--score",
            "risk", "--sensitive", "age", "--top-k", "100", "--n-boot", "20"]
    result = runner.invoke(app, [*base, "--out", str(out)])
    assert result.exit_code == 2
    assert "sensitive column 'age' has 70 distinct values" in _text(result.output)
    assert "━" not in result.output  # the error stands alone, no half-filled bar above it
    assert not (tmp_path / "new").exists()
    # A folder the user already had is kept, with what it held.
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep")
    result = runner.invoke(app, [*base, "--out", str(tmp_path / "mine")])
    assert result.exit_code == 2
    assert sorted(p.name for p in (tmp_path / "mine").iterdir()) == ["notes.txt"]
