"""The command line: --help everywhere, exit 2 on bad usage, one clear message."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from overblik.experiments._cli import app

runner = CliRunner()
COMMANDS = [c.name or c.callback.__name__ for c in app.registered_commands if c.callback]


def test_every_command_is_listed() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for name in COMMANDS:
        assert name in result.output


@pytest.mark.parametrize("command", COMMANDS)
def test_help_on_every_command(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output
    assert len(result.output.splitlines()) > 5


def test_unknown_option_exits_2() -> None:
    result = runner.invoke(app, ["generate", "--citizenz", "5"])
    assert result.exit_code == 2


def test_out_of_range_value_exits_2() -> None:
    result = runner.invoke(app, ["generate", "--citizens", "-5"])
    assert result.exit_code == 2
    assert "citizens" in result.output


def test_installed_console_script_runs() -> None:
    exe = str(Path(sys.executable).with_name("overblik"))
    proc = subprocess.run([exe, "--help"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0
    assert "ingest" in proc.stdout


def test_summary_of_missing_folder_is_clear(tmp_path) -> None:
    result = runner.invoke(app, ["summary", "--clean", str(tmp_path)])
    assert result.exit_code == 2
    assert "ingest_report.json" in result.output
    assert "Traceback" not in result.output


def test_generate_defaults_to_the_data_folder(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Was ./data/municipality whatever $OVERBLIK_DATA said, unlike every other default path.
    monkeypatch.setenv("OVERBLIK_DATA", str(tmp_path / "elsewhere"))
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["generate", "--citizens", "60", "--years", "4"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "elsewhere" / "municipality" / "manifest.json").is_file()
    assert not (tmp_path / "data").exists()


def test_generate_refuses_an_out_that_is_not_its_own(tmp_path: Path) -> None:
    """A file, a folder under a file, or a folder holding other things (e.g. ingested data)."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "clean").mkdir()
    (tmp_path / "clean" / "population.parquet").write_text("x")
    for out, words in ((tmp_path / "afile", "is a file"),
                       (tmp_path / "afile" / "sub", "is a file, not a folder"),
                       (tmp_path / "clean", "holds other files")):
        result = runner.invoke(app, ["generate", "--citizens", "60", "--out", str(out)])
        assert result.exit_code == 2, result.output
        assert words in " ".join(result.output.split()) and "Traceback" not in result.output
    assert sorted(p.name for p in (tmp_path / "clean").iterdir()) == ["population.parquet"]
    for args in (["--citizens", "20"], ["--label-bias", "inf"]):
        result = runner.invoke(app, ["generate", *args, "--out", str(tmp_path / "new")])
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output
    assert not (tmp_path / "new").exists()


@pytest.mark.parametrize("command", ["review", "promote"])
def test_registry_commands_refuse_a_bad_tracking_uri(command: str, tmp_path: Path) -> None:
    """An unknown scheme is one line, and a missing SQLite file is not created."""
    extra = ["--approve", "--by", "board", "--reason", "ok"] if command == "review" else []
    missing = tmp_path / "nowhere" / "mlflow.db"
    for uri, words in (("bogus://x", "bogus://x"), (f"sqlite:///{missing}", "no such file")):
        result = runner.invoke(app, [command, "overblik-child-placement", "1", *extra,
                                     "--tracking-uri", uri])
        assert result.exit_code == 2, result.output
        assert words in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not missing.parent.exists()


@pytest.mark.parametrize(("today", "words"), [
    ("2999-01-01", "give a date from 1900-01-01 to 2199-12-31"),
    ("9999-12-31", "give a date from 1900-01-01 to 2199-12-31"),
    ("01-02-2025", "write the date as YYYY-MM-DD")])
def test_ingest_today_out_of_range_exits_2(tmp_path: Path, today: str, words: str) -> None:
    """A --today past pandas' last timestamp (April 2262) quarantined every row as 'in the
    future', and 9999-12-31 was a traceback; both are refused before any work."""
    result = runner.invoke(app, ["ingest", "--raw", str(tmp_path / "raw"), "--out",
                                 str(tmp_path / "out"), "--demo-key", "--today", today])
    assert result.exit_code == 2, result.output
    assert words in " ".join(result.output.split()) and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()
