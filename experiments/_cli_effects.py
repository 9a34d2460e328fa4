"""``overblik`` commands for effects: ``effects`` (bring your own data)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from overblik.experiments._cli_common import (
    app,
    fail,
    out_console,
    prepare_out_folder,
    progress_bar,
    removed_if_failed,
    writing_out,
)
from overblik.features._errors import InputError

__all__ = ["app", "effects"]


@app.command()
def effects(
    data: Annotated[Path, typer.Option(help="Table: a CSV (UTF-8, ',' separated, header "
                                       "line) or Parquet file, one row per person.")],
    treatment: Annotated[str, typer.Option(help="Column with the treatment, 0/1 (or "
                                           "true/false): 1 = received the programme.")],
    outcome: Annotated[str, typer.Option(help="Column with the outcome: a number, or 0/1.")],
    out: Annotated[Path, typer.Option(help="Output folder: effects.json, cate.csv and "
                                      "effects.html.")],
    covariates: Annotated[str | None, typer.Option(
        help="Comma-separated covariate columns (known before treatment); default: every "
        "other column.")] = None,
    trim: Annotated[str, typer.Option(
        help="Propensity trimming bounds LOW,HIGH: rows outside are left out of the "
        "averages (0,1 trims nothing).")] = "0.01,0.99",
    n_folds: Annotated[int, typer.Option(min=2, max=20, help="Cross-fitting folds.")] = 5,
    n_bootstrap: Annotated[int, typer.Option(
        min=0, help="Bootstrap fits of the effect model for individual intervals (0: none; "
        "otherwise at least 2).")] = 30,
    seed: Annotated[int, typer.Option(min=0, help="Random seed.")] = 0,
) -> None:
    """Estimate the effect of a binary treatment on an outcome from observational data.

    Fits a cross-fitted doubly-robust learner (LightGBM nuisance models) and writes
    OUT/effects.json (naive difference, ATE and ATT with confidence intervals, overlap
    diagnostics, warnings), OUT/cate.csv (one row per input row, in input order: the
    estimated individual effect, its interval, whether the row was trimmed, and its
    propensity) and OUT/effects.html (one self-contained page with the overlap and effect
    plots). The estimates are causal only if every confounder is among the covariates.

    Example: overblik effects --data nsw.csv --treatment treat --outcome re78
    --covariates age,educ,re74,re75 --out effects/
    """
    from overblik.experiments._effects_file import (
        EFFECTS_FILES,
        estimate_effects,
        parse_covariates,
        parse_trim,
        read_effects_table,
        write_effects,
    )

    try:
        bounds = parse_trim(trim)
        if n_bootstrap == 1:
            raise InputError("--n-bootstrap 1: use 0 (no individual intervals) or at least 2")
        names = parse_covariates(covariates)
        with progress_bar("effects") as progress, removed_if_failed(out, EFFECTS_FILES):
            progress("read", 0, 1)
            table = read_effects_table(data, treatment=treatment, outcome=outcome,
                                       covariates=names)
            progress("read", 1, 1)
            prepare_out_folder(out, EFFECTS_FILES)
            result = estimate_effects(table, trim=bounds, n_folds=n_folds,
                                      n_bootstrap=n_bootstrap, random_state=seed,
                                      progress=progress)
            progress("report", 0, 1)
            with writing_out(out):
                write_effects(out, result)
            progress("report", 1, 1)
    except InputError as exc:
        fail(str(exc))
        return
    s = result.summary
    out_console.print(f"{s['n']:,} rows ({s['n_treated']:,} treated), "
                      f"{s['overlap']['trimmed']:,} trimmed; naive difference "
                      f"{_number(s['naive_difference'])}")
    out_console.print(f"ATE {_interval(s['ate'])}; ATT {_interval(s['att'])}")
    for warning in s["warnings"]:
        out_console.print(f"warning: {warning}", highlight=False)
    paths = [str(out / name) for name in EFFECTS_FILES]
    out_console.print(f"wrote {', '.join(paths[:-1])} and {paths[-1]}")


def _number(value: float | None) -> str:
    """A summary number; ``effects.json`` holds null where it could not be computed."""
    return "–" if value is None else f"{value:.4g}"


def _interval(estimate: dict[str, Any]) -> str:
    return (f"{_number(estimate['estimate'])} [{_number(estimate['ci_low'])}, "
            f"{_number(estimate['ci_high'])}]")
