"""What every ``overblik`` command shares: the typer app, consoles, progress bars, errors.

Commands live in ``_cli.py`` (foundation and training) and in one ``_cli_<area>.py`` module
per area; each registers itself on :data:`app` when imported.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

__all__ = ["ProgressFn", "app", "console", "fail", "out_console", "progress_bar"]

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
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    ) as bar:
        task = bar.add_task(title, total=None)

        def update(description: str, done: int, total: int) -> None:
            bar.update(task, description=f"{title}: {description}", completed=done, total=total)

        yield update


def fail(message: str) -> None:
    """Print one clear error and exit 2 (bad input or usage)."""
    console.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code=2)
