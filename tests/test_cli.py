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
