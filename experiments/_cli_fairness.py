"""``overblik`` commands for fairness: audit, review, promote, reviews.

``audit`` audits any scored table; ``review`` records the ethics board's decision on a
registered model version; ``promote`` moves ``champion`` to a version only when the board
approved it and its fairness audit passed (or the board overrode a failed audit, with a
reason); ``reviews`` lists the record. Reviews and promotions are added to the record in
the registry's database (``<data>/reviews.jsonl`` for a file store or an MLflow server).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated

import typer

from overblik.experiments._cli_common import (
    app,
    console,
    fail,
    out_console,
    prepare_out_folder,
    progress_bar,
    removed_if_failed,
    writing_out,
)
from overblik.features._errors import InputError

__all__ = ["app"]

_AUDIT_FILES = ("report.html", "audit.json")
_TRACKING_HELP = ("MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the SQLite file "
                  "data/mlflow.db).")


@app.command()
def audit(
    data: Annotated[Path, typer.Option(help="Scored table: a CSV (UTF-8, ',' separated, "
                                       "header line) or Parquet file, one row per person.")],
    label: Annotated[str, typer.Option(help="Column with the recorded outcome, 0/1 "
                                       "(or true/false).")],
    score: Annotated[str, typer.Option(help="Column with the model's score (a number; a "
                                       "probability for calibration and Brier).")],
    sensitive: Annotated[list[str], typer.Option(
        help="Sensitive-attribute column(s) to audit by, comma-separated or repeated, e.g. "
        "--sensitive sex,origin. Pairs are audited as intersections too.")],
    out: Annotated[Path, typer.Option(help="Output folder: report.html and audit.json.")],
    threshold: Annotated[float | None, typer.Option(
        help="Decision rule: selected when score >= T. Give this or --top-k.")] = None,
    top_k: Annotated[int | None, typer.Option(
        "--top-k", help="Decision rule: the K highest scores are selected (the capacity). "
        "Give this or --threshold.")] = None,
    reference: Annotated[list[str] | None, typer.Option(
        help="Reference group COLUMN=VALUE that disparities are measured against (repeat per "
        "column); default: the largest group.")] = None,
    min_count: Annotated[int, typer.Option(
        min=1, help="Groups with fewer rows are suppressed (no numbers shown).")] = 20,
    n_boot: Annotated[int, typer.Option(
        min=10, help="Bootstrap resamples for the confidence intervals.")] = 1000,
    seed: Annotated[int, typer.Option(min=0, help="Random seed of the bootstrap.")] = 0,
) -> None:
    """Audit a scored table for bias: group and intersection metrics with intervals.

    Writes OUT/report.html (one self-contained page, Danish and English: verdict against
    the default thresholds, tables with confidence intervals, disparity and calibration
    plots; small groups suppressed) and OUT/audit.json (the same numbers, machine-readable).

    Example: overblik audit --data scores.csv --label placed --score risk --top-k 200
    --sensitive sex,origin --reference origin=danish --out audit/
    """
    from overblik.experiments._audit_file import (
        parse_reference,
        parse_sensitive,
        read_audit_table,
    )

    try:
        if (threshold is None) == (top_k is None):
            raise InputError("give exactly one decision rule: --threshold T (selected when "
                             "score >= T) or --top-k K (the K highest scores)")
        if threshold is not None and not math.isfinite(threshold):
            raise InputError(f"--threshold {threshold}: give a finite number, e.g. "
                             "--threshold 0.3")
        if top_k is not None and top_k <= 0:
            raise InputError(f"--top-k {top_k}: must be at least 1")
        columns = parse_sensitive(sensitive)
        table = read_audit_table(data, label=label, score=score, sensitive=columns)
        references = parse_reference(reference or [], table)
        if top_k is not None and top_k > table.rows:
            raise InputError(f"--top-k {top_k} is more than the {table.rows:,} rows of {data}: "
                             "choose K at most the number of rows")
        if threshold is not None:
            low, high = float(table.scores.min()), float(table.scores.max())
            if not low < threshold <= high:
                # Everyone or no one selected: every group's rates are equal, a vacuous pass.
                who = "no one" if threshold > high else "everyone"
                raise InputError(f"--threshold {threshold:g} selects {who} (the scores in "
                                 f"{data} range from {low:.4g} to {high:.4g}): choose a "
                                 "threshold inside that range")
        from overblik.fairness import Bilingual, FairnessThresholds, write_report
        from overblik.fairness import audit as run_audit
        from overblik.fairness._wording import format_count

        policy = FairnessThresholds(min_count=min_count)
        with removed_if_failed(out, _AUDIT_FILES), progress_bar("audit") as progress:
            prepare_out_folder(out, _AUDIT_FILES)
            result = run_audit(table.y_true, table.scores, table.sensitive,
                               threshold=threshold, top_k=top_k, reference=references or None,
                               min_count=min_count, n_boot=n_boot, seed=seed,
                               progress=progress)
            progress("report", 0, 1)
            with writing_out(out):
                (out / "audit.json").write_text(json.dumps(result.to_json(), indent=1,
                                                           ensure_ascii=False),
                                                encoding="utf-8")
                write_report(out / "report.html", result, thresholds=policy,
                             title=Bilingual(f"Fairness-audit: {data.name}",
                                             f"Fairness audit: {data.name}"),
                             data=Bilingual(
                                 f"alle {format_count(result.n, 'da')} rækker i {data.name}",
                                 f"all {format_count(result.n, 'en')} rows of {data.name}"))
            progress("report", 1, 1)
        verdict = policy.evaluate(result)
    except InputError as exc:
        fail(str(exc))
        return
    out_console.print(f"audited {result.n:,} rows of {data} ({result.decision}); "
                      f"{sum(g.suppressed for g in result.groups)} group(s) suppressed "
                      f"(fewer than {min_count} rows)")
    limits = ", ".join(f"{k} {v:g}" for k, v in policy.limits().items())
    state = ("meets" if verdict.passed
             else f"does NOT meet ({len(verdict.failures)} failures)" if verdict.failures
             else f"can NOT be shown to meet ({len(verdict.unchecked)} not checked)")
    out_console.print(f"{state} the default thresholds (largest |difference|: {limits})")
    shown = 10  # the report lists them all
    for reason in verdict.reasons[:shown]:
        out_console.print(f"  {reason}", highlight=False)
    if len(verdict.reasons) > shown:
        out_console.print(f"  ... and {len(verdict.reasons) - shown} more in the report")
    out_console.print(f"wrote {out / 'report.html'} and {out / 'audit.json'}")


@app.command()
def review(
    model: Annotated[str, typer.Argument(help="Registered model name, e.g. "
                                         "overblik-child-placement.")],
    version: Annotated[str, typer.Argument(help="Model version number, or an alias such as "
                                           "challenger (the latest trained version).")],
    approve: Annotated[bool, typer.Option("--approve", help="The board approves the "
                                          "version.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="The board rejects the "
                                         "version.")] = False,
    by: Annotated[str, typer.Option(help="Who decides, e.g. \"Etisk råd\" or a "
                                    "name.")] = "",
    reason: Annotated[str, typer.Option(help="The board's reason (recorded and shown to "
                                        "whoever promotes or serves the model).")] = "",
    override_fairness: Annotated[bool, typer.Option(
        "--override-fairness", help="Approve although the fairness audit missed its "
        "thresholds; the reason must say why. Only with --approve.")] = False,
    tracking_uri: Annotated[str | None, typer.Option(help=_TRACKING_HELP)] = None,
) -> None:
    """Record the ethics board's decision on a model version (approve or reject).

    Sets the version's approval tags in MLflow (the latest decision) and adds the
    decision, with time (UTC), reviewer, reason, the audit verdict, run id and config
    hash, to the record (a table in the registry's database; data/reviews.jsonl for a
    file store or an MLflow server), which is never rewritten: `overblik reviews` lists it.
    """
    from overblik.experiments._review import champion_of
    from overblik.experiments._review import review as run_review
    from overblik.experiments._review_log import ReviewLog
    from overblik.experiments._tracking import use_tracking

    try:
        if approve == reject:
            raise InputError("give exactly one of --approve and --reject")
        if not by.strip():
            raise InputError("--by is missing: name who decides (e.g. --by \"Etisk råd\")")
        if not reason.strip():
            raise InputError("--reason is missing: every decision is recorded with the "
                             "board's reason")
        if override_fairness and not approve:
            raise InputError("--override-fairness only goes with --approve")
        log = ReviewLog(use_tracking(tracking_uri, must_exist=True))
        entry = run_review(model, version, decision="approved" if approve else "rejected",
                           by=by, reason=reason, override_fairness=override_fairness)
    except InputError as exc:
        fail(str(exc))
        return
    out_console.print(f"{entry.model} version {entry.version}: {entry.decision} by {entry.by} "
                      f"at {entry.time}; recorded in {log.location}")
    # The verdict the decision is recorded with, in words: the board checks it against the
    # report it read (the gate holds the version to this verdict from now on).
    verdict = ("no fairness audit" if entry.fairness_passed is None else
               "passed" if entry.fairness_passed else "MISSED its thresholds")
    out_console.print(f"fairness audit on record: {verdict}"
                      + ("; the approval overrides it" if entry.overrides_fairness else ""))
    if entry.decision == "approved" and entry.fairness_passed is not True \
            and not entry.overrides_fairness:
        audit_state = ("has no fairness audit" if entry.fairness_passed is None
                       else "missed its fairness thresholds")
        console.print(f"[yellow]note:[/] this version {audit_state}: `overblik promote` will "
                      "refuse it unless the board approves with --override-fairness")
    if entry.decision == "rejected" and champion_of(entry.model) == entry.version:
        console.print(f"[yellow]note:[/] version {entry.version} is the champion: running "
                      "services stop answering its scores within seconds (they read the "
                      "board's decision every 10 s) and cannot start with it; promote an "
                      f"approved version (overblik promote {entry.model} VERSION)")


@app.command()
def promote(
    model: Annotated[str, typer.Argument(help="Registered model name, e.g. "
                                         "overblik-child-placement.")],
    version: Annotated[str, typer.Argument(help="Model version number, or an alias such as "
                                           "challenger (the latest trained version).")],
    tracking_uri: Annotated[str | None, typer.Option(help=_TRACKING_HELP)] = None,
) -> None:
    """Make a model version the champion that the scoring service serves.

    Allowed only when the latest review approved the version and its fairness audit passed,
    or the approval overrides a failed (or missing) audit with a reason. Every promotion
    and every refusal is added to the record (see `overblik review`) with the previous
    champion.
    """
    from overblik.experiments._review import PromotionRefused
    from overblik.experiments._review import promote as run_promote
    from overblik.experiments._review_log import ReviewLog
    from overblik.experiments._tracking import use_tracking

    try:
        log = ReviewLog(use_tracking(tracking_uri, must_exist=True))
        done = run_promote(model, version)
    except PromotionRefused as exc:
        fail(f"{exc} (the refusal is recorded in {log.location})")
        return
    except InputError as exc:
        fail(str(exc))
        return
    before = (f"(was version {done.previous_champion})" if done.previous_champion
              else "(there was no champion)")
    out_console.print(f"{done.model} version {done.version} is now 'champion' {before}; "
                      f"recorded in {log.location}")


@app.command()
def reviews(
    model: Annotated[str | None, typer.Argument(help="Registered model name (default: "
                                                "every model).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line, every "
                                          "field, instead of the listing.")] = False,
    tracking_uri: Annotated[str | None, typer.Option(help=_TRACKING_HELP)] = None,
) -> None:
    """List the ethics board's decisions and the promotions, oldest first.

    Every `overblik review`, promotion and refused promotion of the registry, with time
    (UTC), version, who decided and why, the fairness verdict at the time and the
    champion before a promotion.
    """
    from rich.markup import escape
    from rich.padding import Padding
    from rich.text import Text

    from overblik.experiments._review_log import ReviewLog
    from overblik.experiments._tracking import use_tracking

    try:
        log = ReviewLog(use_tracking(tracking_uri, must_exist=True))
        every = log.records()
    except InputError as exc:
        fail(str(exc))
        return
    found = [r for r in every if model is None or r.model == model]
    if as_json:
        for record in found:
            typer.echo(record.to_json())
        return
    if not found:
        whose = f" for {model}" if model else ""
        # A misspelt name reads as "never reviewed": say which models the record knows.
        known = sorted({r.model for r in every})
        others = f"; models in the record: {', '.join(known)}" if known else ""
        out_console.print(escape(f"no reviews or promotions{whose} in {log.location}{others}"))
        return
    # One block per entry, like `git log`: readable in any terminal width.
    out_console.print(escape(f"{len(found)} entries, oldest first (the record: "
                             f"{log.location})"))
    for r in found:
        audit_state = {True: "passed", False: "failed", None: "none"}[r.fairness_passed]
        if r.overrides_fairness:
            audit_state += ", overridden by the approval"
        event = {"review": f"review: {r.decision} by {r.by}",
                 "promotion": f"promoted to champion (before: {r.previous_champion or 'none'})",
                 "promotion_refused": "promotion refused"}[r.event]
        out_console.print(f"[bold]{escape(r.time.replace('T', ' ').removesuffix('Z'))} UTC  "
                          f"{escape(r.model)} version {escape(r.version)}[/]  {escape(event)}")
        lines = [f"fairness audit: {audit_state}"]
        if r.event == "promotion_refused":
            lines.append(f"why: {r.detail}")
        elif r.event == "promotion":
            lines.append(f"on the approval by {r.by}: {r.reason}")
        else:
            lines.append(f"reason: {r.reason}")
        for line in lines:
            # Text: reasons are free text ("[see minutes]" is not markup); the padding keeps
            # wrapped lines indented under their entry.
            out_console.print(Padding(Text(line), (0, 0, 0, 2)))
