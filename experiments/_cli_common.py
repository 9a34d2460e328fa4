"""What every ``overblik`` command shares: the typer app, consoles, progress bars, errors.

Commands live in ``_cli.py`` (foundation and training) and in one ``_cli_<area>.py`` module
per area; each registers itself on :data:`app` when imported.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from datetime import date
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from overblik.features._cpr_text import CPR_IN_TEXT, HIDDEN
from overblik.features._errors import InputError

__all__ = ["ProgressFn", "app", "console", "fail", "out_console", "parse_day",
           "prepare_out_folder", "progress_bar", "removed_if_failed", "warn", "writing_out"]

app = typer.Typer(
    name="overblik",
    help="overblik: point-in-time citizen profiles, risk and effect models, fairness audits "
    "and scoring for Danish municipal welfare.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    # Docstrings are wrapped at 95 columns; markdown mode reflows them to the terminal.
    rich_markup_mode="markdown",
)
console = Console(stderr=True)
out_console = Console()

ProgressFn = Callable[[str, int, int], None]


@contextmanager
def progress_bar(title: str) -> Iterator[ProgressFn]:
    """A rich progress bar driven by ``progress(description, done, total)`` callbacks."""
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),  # "0/?" until a step knows its total (was "0/None")
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(title, total=None)

        def update(description: str, done: int, total: int) -> None:
            bar.update(task, description=f"{title}: {description}", completed=done, total=total)

        try:
            yield update
        except BaseException:
            # A failed run ends with its one error message, not a half-filled bar above it.
            bar.update(task, visible=False)
            raise


_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


def parse_day(text: str, option: str) -> date:
    """A ``YYYY-MM-DD`` date given to ``option``.

    Raises
    ------
    InputError
        For anything else (``date.fromisoformat`` alone would also take ``20260131``).
    """
    if not _DAY.match(text.strip()):
        raise InputError(f"{option} {text!r}: write the date as YYYY-MM-DD")
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{option} {text!r} is not a date: write YYYY-MM-DD") from None


def warn(message: str) -> None:
    """Print one warning (the command goes on)."""
    # Escaped: a message quoting a pattern ([a-z]...) or a list would be read as markup.
    console.print(f"[bold yellow]warning:[/] {escape(message)}", highlight=False)


def fail(message: str) -> None:
    """Print one clear error and exit 2 (bad input or usage).

    A CPR number in the message (an option's value quoted back: ``--request-id`` given a
    CPR number) is hidden: terminals and CI logs are kept.
    """
    shown = CPR_IN_TEXT.sub(HIDDEN, message)
    console.print(f"[bold red]error:[/] {escape(shown)}", highlight=False)
    raise typer.Exit(code=2)


def _listing(names: Sequence[str]) -> str:
    """``a, b and c``."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _out_error(out: Path, exc: OSError) -> InputError:
    where = exc.filename or out
    return InputError(f"--out {out}: cannot write {where} ({exc.strerror or exc}): pass a "
                      "folder you can write to")


def prepare_out_folder(out: Path, files: Sequence[str]) -> None:
    """Create the ``--out`` folder and check that each of ``files`` can be written in it.

    Commands call this after reading their input and before fitting anything, so that an
    unusable ``--out`` fails in seconds instead of after the whole fit.

    Raises
    ------
    InputError
        ``out`` or a folder above it is a file, one of ``files`` is a folder, or the
        operating system refuses to create or write them.
    """
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} is a file: pass a folder for {_listing(files)}")
    above = next((p for p in out.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise InputError(f"--out {out}: {above} is a file, so no folder can be made in it: "
                         "pass another folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _out_error(out, exc) from None
    for name in files:
        path = out / name
        if path.is_dir():
            raise InputError(f"--out {out}: {path} is a folder, so {name} cannot be written: "
                             "remove it or pass another folder")
        with writing_out(out):
            _try_write(path)


@contextmanager
def removed_if_failed(out: Path, files: Sequence[str]) -> Iterator[None]:
    """Remove the ``--out`` folder (and folders above it) when this run made it and fails.

    A failed run must not leave an empty folder that looks like a result. Only folders
    that did not exist before are removed, and only while they hold nothing but ``files``
    (which this run wrote, the folder being new): a folder the user had is never touched.
    """
    new: list[Path] = []
    for folder in (out, *out.parents):
        if folder.exists() or folder.is_symlink():
            break
        new.append(folder)  # deepest first
    try:
        yield
    except BaseException:  # Ctrl-C as well: the folder is as useless then
        if new:
            for name in files:
                with suppress(OSError):
                    (out / name).unlink(missing_ok=True)
        for folder in new:
            try:
                folder.rmdir()  # fails on a folder that holds anything else: kept
            except OSError:
                break
        raise


def _try_write(path: Path) -> None:
    """Open ``path`` for writing without changing it (an existing file keeps its content)."""
    if path.exists():
        with path.open("ab"):
            return
    with path.open("xb"):
        pass
    path.unlink()


@contextmanager
def writing_out(out: Path) -> Iterator[None]:
    """Turn a failed write into ``--out``'s exit-2 error (e.g. the disk is full)."""
    try:
        yield
    except OSError as exc:
        raise _out_error(out, exc) from None
