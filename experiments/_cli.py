"""The ``overblik`` command line.

Every command has ``--help``; bad input exits with code 2 and one clear message (no
traceback); long work shows a progress bar. Heavy imports happen inside the commands so
that ``--help`` answers at once.
"""

from __future__ import annotations

import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer
from rich.table import Table

from overblik.experiments._cli_common import (
    app,
    console,
    fail,
    out_console,
    parse_day,
    progress_bar,
    warn,
)
from overblik.experiments._mlflow_output import quiet_mlflow
from overblik.features._errors import InputError

if TYPE_CHECKING:
    from overblik.experiments._config import ExperimentConfig
    from overblik.experiments._oracle import OracleComparison
    from overblik.experiments._train import TrainResult


@app.command()
def generate(
    citizens: Annotated[int, typer.Option(min=50, help="Number of citizens.")] = 10_000,
    years: Annotated[int, typer.Option(min=4, max=30, help="Years of history to simulate.")] = 5,
    seed: Annotated[int, typer.Option(min=0, help="Random seed (same seed, same data).")] = 1,
    out: Annotated[Path | None, typer.Option(
        help="Output folder (raw/, truth/, manifest.json); default: municipality/ in the "
        "data folder ($OVERBLIK_DATA, else ./data), like every other default path.")] = None,
    label_bias: Annotated[
        float,
        typer.Option(min=1.0, help="Surveillance multiplier on recorded events for the "
                     "surveilled group; 1.0 switches label bias off."),
    ] = 1.6,
    fmt: Annotated[
        Literal["parquet", "csv"], typer.Option("--format", help="File format of raw/.")
    ] = "parquet",
) -> None:
    """Write a synthetic municipality with known ground truth.

    Raw extracts in the source contracts go to OUT/raw (they go through `overblik ingest`
    like real data); true probabilities and effects go to OUT/truth, which model fitting
    never reads (`overblik train --truth` compares the fitted model with it afterwards).
    OUT/truth is keyed by CPR number as well as pseudonym: keep it with the raw extracts.
    """
    from overblik.experiments._tracking import data_dir
    from overblik.features import SyntheticConfig, generate_municipality

    out = out if out is not None else data_dir() / "municipality"
    try:
        config = SyntheticConfig(citizens=citizens, years=years, seed=seed,
                                 label_bias=label_bias, fmt=fmt)
        with progress_bar("generate") as progress:
            manifest = generate_municipality(config, out, progress=progress)
    except ValueError as exc:
        fail(str(exc))
        return
    table = Table(title=f"synthetic municipality in {out}")
    table.add_column("file")
    table.add_column("rows", justify="right")
    for name, rows in manifest.row_counts.items():
        table.add_row(name, f"{rows:,}")
    out_console.print(table)


# Dates the checks can compare: pandas' timestamps end in April 2262 (a later --today
# made every row 'in the future').
_FIRST_DAY, _LAST_DAY = date(1900, 1, 1), date(2199, 12, 31)


def _reference_day(text: str) -> date:
    """``--today`` of ingest: a date in the range the checks can compare."""
    day = parse_day(text, "--today")
    if not _FIRST_DAY <= day <= _LAST_DAY:
        raise InputError(f"--today {text}: give a date from {_FIRST_DAY} to {_LAST_DAY}")
    return day


@app.command()
def ingest(
    raw: Annotated[Path, typer.Option(help="Folder with one SOURCE.csv or SOURCE.parquet per "
                                      "source.")],
    out: Annotated[Path, typer.Option(help="Output folder for accepted rows and quarantine.")],
    key_file: Annotated[
        Path | None,
        typer.Option(help="File holding the pseudonymisation key (else $OVERBLIK_PSEUDONYM_KEY)."),
    ] = None,
    demo_key: Annotated[
        bool,
        typer.Option("--demo-key", help="Use the public demo key (synthetic data only); marks "
                     "every output as demo data."),
    ] = False,
    today: Annotated[
        str | None,
        typer.Option(help="Reference date for 'no future dates' (YYYY-MM-DD); default today."),
    ] = None,
) -> None:
    """Validate and pseudonymise source extracts; quarantine bad rows with their reasons.

    Every row is either accepted (OUT/SOURCE.parquet) or quarantined
    (OUT/quarantine/SOURCE.parquet) with a reason; OUT/ingest_report.json reconciles the
    counts. CPR numbers are replaced by keyed pseudonyms before anything is written.
    """
    from overblik.features import ingest as run_ingest
    from overblik.features import load_key

    try:
        if key_file is not None and demo_key:
            raise InputError("give either --key-file or --demo-key, not both")
        key = load_key(key_file, demo=demo_key)
        reference = _reference_day(today) if today else None
        with progress_bar("ingest") as progress:
            report = run_ingest(raw, out, key, progress=progress, today=reference)
    except InputError as exc:
        fail(str(exc))
        return
    table = Table(title=f"ingest into {out}" + (" (DEMO DATA)" if report.demo_data else ""))
    for col in ("source", "rows in", "accepted", "quarantined", "top reasons"):
        table.add_column(col, justify="left" if col in ("source", "top reasons") else "right")
    for name, s in report.sources.items():
        ranked = sorted(s.reasons.items(), key=lambda kv: -kv[1])[:3]
        top = ", ".join(f"{r} {n:,}" for r, n in ranked)
        table.add_row(name, f"{s.rows_in:,}", f"{s.accepted:,}", f"{s.quarantined:,}", top)
    out_console.print(table)
    for warning in report.warnings:
        warn(warning)


def main() -> None:
    """Entry point of the ``overblik`` command."""
    quiet_mlflow()
    try:
        app()
    except KeyboardInterrupt:
        console.print("interrupted")
        sys.exit(130)


@app.command()
def summary(
    clean: Annotated[Path, typer.Option(help="Folder written by `overblik ingest`.")],
) -> None:
    """Print who lives in the (ingested) municipality and which siloes know them."""
    from overblik.features import summarise_clean

    try:
        s = summarise_clean(clean)
    except InputError as exc:
        fail(str(exc))
        return
    demo = " (DEMO DATA: synthetic, demo key)" if s.demo_data else ""
    out_console.print(f"[bold]{s.persons:,} citizens in {s.households:,} households{demo}[/]")
    out_console.print(
        f"rows in {s.rows_in:,}; quarantined {s.quarantined:,} "
        f"({s.quarantined / max(s.rows_in, 1):.2%})"
    )
    origin = ", ".join(f"{k} {v:.1%}" for k, v in s.origin_shares.items())
    out_console.print(f"origin: {origin}")
    ages = Table(title="age bands")
    for band in s.age_bands:
        ages.add_column(band, justify="right")
    ages.add_row(*(f"{n:,}" for n in s.age_bands.values()))
    out_console.print(ages)
    silo = Table(title="siloes")
    silo.add_column("source")
    silo.add_column("events", justify="right")
    silo.add_column("citizens known", justify="right")
    for name, n in s.events_per_source.items():
        silo.add_row(name, f"{n:,}", f"{s.persons_per_source[name]:,}")
    out_console.print(silo)
    multi = sum(v for k, v in s.persons_in_siloes.items() if k >= 2)
    out_console.print(
        f"citizens known to 2 or more siloes: {multi:,} ({multi / max(s.persons, 1):.1%}) — "
        "the people nobody sees whole"
    )


@app.command()
def contracts() -> None:
    """Print the source contracts (columns, types, code lists) as Markdown."""
    from overblik.features._contracts import contracts_markdown

    print(contracts_markdown())


@app.command()
def train(
    experiment: Annotated[str, typer.Argument(help="Experiment file, or the name of a "
                                              "shipped one (e.g. child_placement).")],
    tracking_uri: Annotated[
        str | None,
        typer.Option(help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or a SQLite "
                     "file in data/)."),
    ] = None,
    clean: Annotated[
        Path | None, typer.Option(help="Ingested data folder (default: the experiment's "
                                  "data.clean).")
    ] = None,
    truth: Annotated[
        Path | None,
        typer.Option(help="Synthetic truth/ folder: after training, compare the model with "
                     "the oracle on the same test rows (training itself never reads it)."),
    ] = None,
) -> None:
    """Train and validate an experiment over time; track it in MLflow.

    Builds the cohort, labels and point-in-time profiles, trains LightGBM, a logistic and a
    one-line heuristic baseline on rolling as-of dates (with a gap as long as the horizon),
    logs metrics, plots, features and the model to MLflow, and registers the LightGBM model
    with the alias `challenger`.
    """
    from overblik.experiments._config import load_experiment, resolve_experiment
    from overblik.experiments._oracle import compare_with_truth
    from overblik.experiments._train import MODEL_NAMES
    from overblik.experiments._train import train as run_train

    try:
        path = resolve_experiment(experiment)
        config = load_experiment(path)
        folder = clean or config.data.clean
        if not (folder / "ingest_report.json").exists():
            raise InputError(f"{folder} holds no ingested data (no ingest_report.json): run "
                             "`overblik ingest` first or pass --clean DIR")
        with progress_bar(f"train {config.name}") as progress:
            result = run_train(config, clean=folder, tracking_uri=tracking_uri,
                               config_text=path.read_text(encoding="utf-8"), progress=progress,
                               source=str(path))
        comparison = compare_with_truth(result.run_id, truth, tracking_uri=tracking_uri
                                        ) if truth else None
    except InputError as exc:
        fail(str(exc))
        return
    table = Table(title=f"{config.name}: test {result.splits[-1].split.test_as_of.date()} "
                  f"(config {result.config_hash[:8]})")
    for col in ("model", "ROC AUC", "PR AUC", "Brier", "ECE", f"prec@{config.capacity_k}",
                f"recall@{config.capacity_k}"):
        table.add_column(col, justify="left" if col == "model" else "right")
    for name in MODEL_NAMES:
        m = result.final[name]
        table.add_row(name, f"{m.roc_auc:.3f}", f"{m.pr_auc:.3f}", f"{m.brier:.4f}",
                      f"{m.ece:.4f}", f"{m.precision_at_k:.3f}", f"{m.recall_at_k:.3f}")
    if comparison is not None:
        table.add_row("oracle", f"{comparison.oracle_roc_auc:.3f}", "", "", "", "", "")
        table.add_row("oracle@as-of", f"{comparison.oracle_as_of_roc_auc:.3f}", "", "", "",
                      "", "")
    out_console.print(table)
    for warning in result.warnings:
        warn(warning)
    out_console.print(f"registered {result.model_name} version {result.model_version} as "
                      f"'challenger'; MLflow run {result.run_id}")
    if result.effects is not None:
        out_console.print(_effects_table(config, result.effects, comparison))
        for warning in result.effects_warnings:
            warn(warning)
    if result.fairness_passed is not None:
        verdict = "met" if result.fairness_passed else "MISSED"
        out_console.print(f"fairness audit: the experiment's thresholds were {verdict}; the "
                          f"ethics board reads {_report_location(result)}")
    out_console.print(f"open the runs: mlflow ui --backend-store-uri {result.tracking_uri}")


def _effects_table(config: ExperimentConfig, metrics: dict[str, float],
                   comparison: OracleComparison | None) -> Table:
    """Average effect per programme and, with the truth, PEHE and the allocation's share."""
    oracle = None if comparison is None else comparison.effects
    # ATE, naive difference and trimming are of the training rows; Qini and PEHE of the
    # test rows (the title said "training rows" for all of them).
    table = Table(title="intervention effects (reduction of the bad outcome)")
    for col in ("programme", "ATE [95% CI] (train)", "naive (train)", "trimmed (train)",
                "Qini area (test)", *(("PEHE (test)", "PEHE const. (test)") if oracle else ())):
        table.add_column(col, justify="left" if col == "programme" else "right")
    assert config.effects is not None
    for p in config.effects.programmes:
        m = {k.removeprefix(f"effects_{p}_"): v for k, v in metrics.items()
             if k.startswith(f"effects_{p}_")}
        qini = m.get("test_qini_area")
        table.add_row(p, f"{m['ate']:+.3f} [{m['ate_ci_low']:+.3f}, {m['ate_ci_high']:+.3f}]",
                      f"{m['naive_difference']:+.3f}", f"{m['trimmed_share']:.0%}",
                      "–" if qini is None else f"{qini:+.4f}",
                      *((f"{oracle.pehe[p]:.3f}", f"{oracle.pehe_constant[p]:.3f}")
                        if oracle else ()))
    if oracle is not None:
        shares = ", ".join(f"{k} {v:.0%}" for k, v in oracle.allocation_share.items())
        table.caption = f"allocation of the places, share of the oracle's true benefit: {shares}"
    elif "allocation_benefit_effect" in metrics:
        table.caption = ("allocation judged by the test date's imputed effects: " + ", ".join(
            f"{k} {metrics[f'allocation_benefit_{k}']:+.2f}" for k in ("effect", "risk",
                                                                        "random")))
    return table


def _report_location(result: TrainResult) -> str:
    """Where the run's fairness report is: a local path for a file artifact store."""
    import mlflow

    from overblik.experiments._fairness_run import FAIRNESS_ARTIFACTS

    uri = f"{mlflow.get_run(result.run_id).info.artifact_uri}/{FAIRNESS_ARTIFACTS}/report.html"
    return uri.removeprefix("file://")


# Each area's commands register themselves on ``app`` when imported.
from overblik.experiments import _cli_effects, _cli_fairness, _cli_serving  # noqa: E402, F401
