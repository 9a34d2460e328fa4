"""The fairness report: one self-contained HTML page in Danish and English.

The ethics board reads this before a model may serve. Order: the verdict in plain words, the
whole population, groups and intersections with intervals, the differences between groups
(forest plot), calibration by group, then mitigation, proxies and label bias when given, the
model card and the method. Everything (plots included) is inside the one file: it opens
offline, can be archived with the decision, and a Content-Security-Policy forbids the page
to load anything. The language switch is plain CSS (no script); printing shows both.

Suppressed groups (fewer persons than the minimum count) appear as
"undertrykt / suppressed (n < 20)" and never with a number, not even their count; when an
attribute has a suppressed group, the other groups' counts are rounded to the nearest 10 so
the hidden count cannot be worked out by subtraction.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import jinja2
import numpy as np
import pandas as pd

from overblik.fairness._audit import METRICS, AuditResult, Disparity, GroupResult
from overblik.fairness._card import CardSection, ModelCard
from overblik.fairness._report_plots import (
    DISPARITY_METRICS,
    figure_data_uri,
    plot_disparities,
    plot_group_calibration,
)
from overblik.fairness._thresholds import DisparityCheck, FairnessThresholds, Verdict
from overblik.fairness._wording import (
    LANGUAGES,
    RATE_METRICS,
    Bilingual,
    Language,
    attribute_label,
    format_bound,
    format_count,
    format_interval,
    format_limit,
    format_number,
    format_value,
    group_label,
    metric_label,
    metric_short,
    text,
    value_label,
)

if TYPE_CHECKING:  # optional sections: their modules load only when a report has them
    from overblik.fairness._label_bias import LabelBiasReport
    from overblik.fairness._mitigation import MitigationReport
    from overblik.fairness._places import PlacesReport
    from overblik.fairness._proxies import ProxyReport

__all__ = ["render_report", "write_report"]

TEMPLATES = Path(__file__).parent / "templates"


@dataclass(frozen=True)
class _Cell:
    value: str
    interval: str = ""
    css: str = ""
    span: int = 1


@dataclass(frozen=True)
class _Table:
    caption: str
    columns: tuple[str, ...]
    rows: tuple[tuple[_Cell, ...], ...]
    note: str = ""
    kind: Literal["table"] = "table"

    @property
    def header_classes(self) -> tuple[str, ...]:
        """Headers align like their column's first cell: text left, numbers right."""
        first = self.rows[0] if self.rows else ()
        return tuple("left" if i < len(first) and first[i].css in ("text", "label", "group")
                     else "" for i in range(len(self.columns)))


@dataclass(frozen=True)
class _Figure:
    uri: str
    alt: str
    kind: Literal["figure"] = "figure"


@dataclass(frozen=True)
class _Paragraph:
    text: str
    kind: Literal["paragraph"] = "paragraph"


_Block = _Table | _Figure | _Paragraph


@dataclass(frozen=True)
class _Section:
    id: str
    heading: str
    blocks: tuple[_Block, ...]


@dataclass(frozen=True)
class _VerdictView:
    status: Literal["pass", "warn", "fail"]
    headline: str
    paragraph: str
    largest_heading: str
    largest: tuple[str, ...]
    small_print: tuple[str, ...]


@dataclass(frozen=True)
class _Page:
    language: Language
    language_name: str
    title: str
    facts: tuple[tuple[str, str], ...]
    demo_banner: str
    verdict_heading: str
    verdict: _VerdictView
    contents_heading: str
    sections: tuple[_Section, ...]
    card_heading: str
    card: tuple[CardSection, ...]
    closing: tuple[_Section, ...]


def render_report(
    audit: AuditResult,
    *,
    card: ModelCard | None = None,
    proxies: ProxyReport | None = None,
    label_bias: LabelBiasReport | None = None,
    mitigation: MitigationReport | None = None,
    places: PlacesReport | None = None,
    thresholds: FairnessThresholds | None = None,
    title: str | Bilingual | None = None,
    generated: datetime | None = None,
    data: Bilingual | None = None,
) -> str:
    """The fairness report as one self-contained HTML page (Danish and English).

    Parameters
    ----------
    audit : AuditResult
        From :func:`overblik.fairness.audit`.
    card : ModelCard, optional
        Shown at the end; its ``demo_data`` flag puts a banner on top.
    proxies, label_bias, mitigation : optional
        Reports from :func:`proxy_diagnostics`, :func:`label_bias_diagnostics` and
        :func:`compare_mitigations`; each adds a section when given.
    places : PlacesReport, optional
        Who gets programme places per group against who needs them
        (:func:`~overblik.fairness._places.places_by_group`); adds a section.
    thresholds : FairnessThresholds, optional
        The policy the verdict is held against (default: ``FairnessThresholds()``).
    title : str or Bilingual, optional
        The title, one for both languages or one per language (default:
        "Fairness-rapport" / "Fairness report").
    generated : datetime, optional
        The time stamped on the page (default: now, UTC).
    data : Bilingual, optional
        What the metrics are computed on, for the method paragraph (default: the test
        data, as in ``overblik train``).

    Returns
    -------
    str
        HTML with every plot embedded as a data URI and no reference to anything outside.
    """
    policy = thresholds or FairnessThresholds()
    verdict = policy.evaluate(audit)
    min_count = max(audit.min_count, policy.min_count)
    stamp = (generated or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    tradeoff: dict[Language, str] = {}
    if mitigation is not None:
        from overblik.fairness._mitigation import plot_tradeoff

        tradeoff = {lang: figure_data_uri(plot_tradeoff(mitigation, lang), tight=True)
                    for lang in LANGUAGES}
    pages = [
        _page(language, audit, verdict, policy, min_count=min_count, card=card,
              proxies=proxies, label_bias=label_bias, mitigation=mitigation,
              places=places, tradeoff_uri=tradeoff.get(language),
              title=title.pick(language) if isinstance(title, Bilingual) else title,
              stamp=stamp, data=data)
        for language in LANGUAGES
    ]
    whole = " / ".join(title.pick(lang) if isinstance(title, Bilingual) else text("title", lang)
                       for lang in LANGUAGES) if not isinstance(title, str) else title
    return _environment().get_template("report.html.j2").render(
        pages=pages, demo=bool(card and card.demo_data), title=whole)


def write_report(
    path: str | Path,
    audit: AuditResult,
    *,
    card: ModelCard | None = None,
    proxies: ProxyReport | None = None,
    label_bias: LabelBiasReport | None = None,
    mitigation: MitigationReport | None = None,
    places: PlacesReport | None = None,
    thresholds: FairnessThresholds | None = None,
    title: str | Bilingual | None = None,
    generated: datetime | None = None,
    data: Bilingual | None = None,
) -> Path:
    """Render the report (see :func:`render_report`) and write it to ``path`` as UTF-8.

    Returns
    -------
    Path
        ``path``; missing parent folders are created.
    """
    target = Path(path)
    html = render_report(audit, card=card, proxies=proxies, label_bias=label_bias,
                         mitigation=mitigation, places=places, thresholds=thresholds,
                         title=title, generated=generated, data=data)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(html, encoding="utf-8")
    return target


@cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _page(language: Language, audit: AuditResult, verdict: Verdict,
          policy: FairnessThresholds, *, min_count: int, card: ModelCard | None,
          proxies: ProxyReport | None, label_bias: LabelBiasReport | None,
          mitigation: MitigationReport | None, places: PlacesReport | None,
          tradeoff_uri: str | None, title: str | None, stamp: str,
          data: Bilingual | None = None) -> _Page:
    confidence = round(100 * audit.confidence)
    sections = [
        _overall_section(language, audit),
        _groups_section(language, audit, min_count, confidence),
        _disparity_section(language, audit, verdict, confidence),
        _calibration_section(language, audit, min_count),
    ]
    if mitigation is not None:
        scope = text("mitigation_scope", language,
                     attribute=attribute_label(mitigation.attribute, language).lower(),
                     n_test=format_count(mitigation.n_test, language),
                     n_train=format_count(mitigation.n_train, language))
        # "option" repeats method and criterion.
        table = mitigation.table().drop(columns=["option"], errors="ignore")
        sections.append(_frame_section(
            language, "mitigation", table, min_count, extra=scope,
            figure=_Figure(tradeoff_uri, text("mitigation_plot_alt", language))
            if tradeoff_uri else None))
    if proxies is not None:
        sections.append(_frame_section(language, "proxies", proxies.table(), min_count))
    if label_bias is not None:
        sections.append(_frame_section(language, "label_bias", label_bias.table(), min_count))
    if places is not None:
        scope = text("places_scope", language,
                     programmes=", ".join(places.programmes) or "–",
                     places=format_count(places.total_places, language),
                     in_need=format_count(places.total_in_need, language),
                     min_count=places.min_count)
        sections.append(_frame_section(language, "places", places.table(), min_count,
                                       extra=scope))
    method = _Section(f"{language}-method", text("method", language), (_Paragraph(
        text("method_text", language, n_boot=format_count(audit.n_boot, language),
             confidence=confidence, min_count=min_count,
             data=data.pick(language) if data else text("test_data", language))),))
    facts: list[tuple[str, str]] = []
    if card is not None:
        facts.append((text("report_for", language),
                      card.name + (f" (version {card.version})" if card.version else "")))
        if card.protected_inputs:  # the domain rule: shown where the board reads first
            facts.append((text("protected_inputs", language), ", ".join(
                attribute_label(a, language) for a in card.protected_inputs)))
    facts += [
        (text("generated", language), stamp),
        (text("decision_rule", language), _decision_rule(audit, language)),
        (text("population", language), format_count(audit.n, language)),
        (text("intervals", language), text(
            "intervals_value", language, confidence=confidence,
            n_boot=format_count(audit.n_boot, language), seed=audit.seed)),
        (text("suppression", language), text("suppression_value", language,
                                              min_count=min_count)),
    ]
    return _Page(
        language=language,
        language_name=text("language_name", language),
        title=title or text("title", language),
        facts=tuple(facts),
        demo_banner=text("demo_banner", language),
        verdict_heading=text("verdict", language),
        verdict=_verdict_view(language, verdict, policy, min_count),
        contents_heading=text("contents", language),
        sections=tuple(sections),
        card_heading=text("card", language),
        card=card.sections(language) if card is not None else (),
        closing=(method,),
    )


def _decision_rule(audit: AuditResult, language: Language) -> str:
    if audit.top_k is not None:
        return text("rule_top_k", language, top_k=format_count(audit.top_k, language))
    if audit.threshold is not None:
        return text("rule_threshold", language,
                    threshold=format_number(audit.threshold, language, 3))
    return str(audit.decision)


def _verdict_view(language: Language, verdict: Verdict, policy: FairnessThresholds,
                  min_count: int) -> _VerdictView:
    assessed = [c for c in verdict.checks if c.status != "unknown"]
    failed = [c for c in assessed if c.status == "fail"]
    uncertain = [c for c in assessed if c.status == "uncertain"]
    status: Literal["pass", "warn", "fail"] = (
        "fail" if not verdict.passed else "warn" if uncertain else "pass")
    if failed:
        lead = text("verdict_failed_lead", language, failed=len(failed), checked=len(assessed))
    elif verdict.passed:
        lead = text("verdict_passed_lead", language, checked=len(assessed))
    elif verdict.audit_min_count < verdict.policy_min_count:
        lead = text("verdict_policy_lead", language)
    else:
        lead = text("verdict_unchecked_lead", language)
    sentences = [lead]
    if verdict.unchecked:
        sentences.append(text("verdict_unchecked", language, items="; ".join(
            u.sentence(language) for u in verdict.unchecked)))
    if verdict.audit_min_count < verdict.policy_min_count:
        sentences.append(text("verdict_policy_breach", language,
                              audit_min=verdict.audit_min_count,
                              policy_min=verdict.policy_min_count))
    if uncertain:
        sentences.append(text("verdict_uncertain", language, count=len(uncertain)))
    if verdict.suppressed_groups:
        sentences.append(text("verdict_suppressed", language, count=verdict.suppressed_groups,
                              min_count=min_count))
    # Unknown checks of whole groups are in the unchecked items above; these are the rest.
    unknown = [c for c in verdict.checks if c.status == "unknown" and "&" in c.attribute]
    if unknown:
        sentences.append(text("verdict_not_assessed", language, items=", ".join(
            f"{metric_label(c.metric, language)} ({group_label(c.attribute, c.group, language)})"
            for c in unknown)))
    rate_limits = sorted({policy.selection_rate, policy.tpr, policy.fpr})
    rule = text("verdict_rule", language,
                rate_limits=" / ".join(format_limit("tpr", v, language).lstrip("±")
                                       for v in rate_limits),
                ece=format_limit("ece", policy.ece, language).lstrip("±"))
    return _VerdictView(
        status=status,
        headline=text(f"verdict_{status}", language),
        paragraph=" ".join(sentences),
        largest_heading=text("verdict_largest", language),
        largest=tuple(c.sentence(language) for c in verdict.largest(3)),
        small_print=(rule, text("verdict_board", language)),
    )


def _overall_section(language: Language, audit: AuditResult) -> _Section:
    rows = tuple(
        (_Cell(metric_label(m, language)), _Cell(format_value(m, v.value, language)),
         _Cell(format_interval(v.ci_low, v.ci_high, language, metric=m)))
        for m, v in audit.overall.items()
    )
    table = _Table(caption="", columns=(text("metric", language), text("value", language),
                                        text("interval", language)), rows=rows)
    return _Section(f"{language}-overall", text("overall", language),
                    (_Paragraph(text("overall_intro", language)), table))


def _metrics_of(groups: Sequence[GroupResult]) -> list[str]:
    present = {m for g in groups for m in g.metrics}
    return [m for m in METRICS if m in present] + sorted(present - set(METRICS))


def _groups_section(language: Language, audit: AuditResult, min_count: int,
                    confidence: int) -> _Section:
    blocks: list[_Block] = [_Paragraph(text("groups_intro", language, confidence=confidence,
                                            min_count=min_count))]
    attributes = list(dict.fromkeys(g.attribute for g in audit.groups))
    # Single attributes first, then intersections.
    attributes.sort(key=lambda a: "&" in a)
    for attribute in attributes:
        groups = [g for g in audit.groups if g.attribute == attribute]
        metrics = _metrics_of(groups)
        hidden = [g for g in groups if _suppressed(g, min_count)]
        reference = audit.references.get(attribute)
        rows: list[tuple[_Cell, ...]] = []
        for g in groups:
            label = group_label(attribute, g.group, language)
            if g.group == reference:
                label += f" ({text('reference_mark', language)})"
            if _suppressed(g, min_count):
                # A cell hidden to protect a smaller one is not small: say why instead.
                size, why = ("–", text("suppressed_protects", language)) if g.protects else (
                    f"< {min_count}", text("suppressed", language, min_count=min_count))
                rows.append((_Cell(label, css="group"), _Cell(size, css="suppressed"),
                             _Cell(why, css="suppressed", span=len(metrics))))
                continue
            cells = [_Cell(label, css="group ref" if g.group == reference else "group"),
                     _Cell(format_count(g.n, language, rounded=bool(hidden)))]
            for m in metrics:
                v = g.metrics.get(m)
                cells.append(_Cell("–") if v is None else _Cell(
                    format_value(m, v.value, language),
                    format_interval(v.ci_low, v.ci_high, language, metric=m, compact=True)))
            rows.append(tuple(cells))
        blocks.append(_Table(
            caption=attribute_label(attribute, language),
            columns=(text("group", language), "n",
                     *(metric_short(m, language) for m in metrics)),
            rows=tuple(rows),
            note=text("groups_rounded", language) if hidden else "",
        ))
    return _Section(f"{language}-groups", text("groups", language), tuple(blocks))


def _suppressed(group: GroupResult, min_count: int) -> bool:
    # The policy's minimum can be stricter than the audit's: suppress by both.
    return group.suppressed or group.n < min_count


def _disparity_section(language: Language, audit: AuditResult, verdict: Verdict,
                       confidence: int) -> _Section:
    heading = text("disparities", language)
    checks = verdict.checks
    if not checks:
        return _Section(f"{language}-disparities", heading,
                        (_Paragraph(text("no_disparities", language)),))
    blocks: list[_Block] = [_Paragraph(text("disparities_intro", language,
                                            confidence=confidence))]
    figure = plot_disparities(checks, language)
    if figure is not None:
        blocks.append(_Figure(figure_data_uri(figure), text("disparity_plot_alt", language)))
    metrics = [m for m in DISPARITY_METRICS if any(c.metric == m for c in checks)]
    by_key = {(c.attribute, c.group, c.metric): c for c in checks}
    ratios = {(d.attribute, d.group): d for d in audit.disparities
              if d.metric == "selection_rate"}
    keys = list(dict.fromkeys((c.attribute, c.group, c.reference) for c in checks))
    keys.sort(key=lambda k: "&" in k[0])
    rows = []
    for attribute, group, reference in keys:
        cells = [
            _Cell(f"{attribute_label(attribute, language)}: "
                  f"{group_label(attribute, group, language)}", css="group"),
            _Cell(group_label(attribute, reference, language), css="label"),
        ]
        for m in metrics:
            check = by_key.get((attribute, group, m))
            cells.append(_check_cell(check, language) if check else _Cell("–"))
        ratio = ratios.get((attribute, group))
        cells.append(_ratio_cell(ratio, language) if ratio else _Cell("–"))
        rows.append(tuple(cells))
    columns = (text("group", language), text("reference", language),
               *(_difference_header(m, next(c.limit for c in checks if c.metric == m),
                                    language) for m in metrics),
               metric_label("selection_rate_ratio", language))
    blocks.append(_Table(caption=text("difference", language), columns=columns,
                         rows=tuple(rows)))
    return _Section(f"{language}-disparities", heading, tuple(blocks))


def _difference_header(metric: str, limit: float, language: Language) -> str:
    unit = text("difference_unit_rate" if metric in RATE_METRICS else "difference_unit",
                language)
    bound = format_bound(metric, limit, language)
    return f"{metric_short(metric, language)}, {unit} ({text('limit', language).lower()} ±{bound})"


def _check_cell(check: DisparityCheck, language: Language) -> _Cell:
    d = check.difference
    return _Cell(format_bound(check.metric, d.value, language, difference=True),
                 format_interval(d.ci_low, d.ci_high, language, metric=check.metric,
                                 difference=True, compact=True),
                 css=f"status-{check.status}")


def _ratio_cell(d: Disparity, language: Language) -> _Cell:
    r = d.ratio
    return _Cell(format_number(r.value, language, 2),
                 format_interval(r.ci_low, r.ci_high, language, metric="ratio", compact=True))


def _calibration_section(language: Language, audit: AuditResult, min_count: int) -> _Section:
    heading = text("calibration", language)
    figure = plot_group_calibration(audit, language, min_count=min_count)
    if figure is None:
        return _Section(f"{language}-calibration", heading,
                        (_Paragraph(text("no_calibration", language)),))
    return _Section(f"{language}-calibration", heading, (
        _Paragraph(text("calibration_intro", language, min_count=min_count)),
        _Figure(figure_data_uri(figure), text("calibration_plot_alt", language)),
    ))


def _frame_section(language: Language, key: str, frame: pd.DataFrame, min_count: int, *,
                   figure: _Figure | None = None, extra: str = "") -> _Section:
    """A section around a diagnostic's table; rows with too few persons are suppressed."""
    intro = text(f"{key}_intro", language) + (f" {extra}" if extra else "")
    blocks: list[_Block] = [_Paragraph(intro), _frame_table(frame, language, min_count)]
    if figure is not None:
        blocks.append(figure)
    return _Section(f"{language}-{key.replace('_', '-')}", text(key, language), tuple(blocks))


def _frame_table(frame: pd.DataFrame, language: Language, min_count: int) -> _Table:
    """A diagnostic's DataFrame as a table: known names and codes in words, numbers in the
    language's format, ``x_ci_low``/``x_ci_high`` shown as the interval under ``x``."""
    names = [str(c) for c in frame.columns]
    bounds = {c for c in names for b in ("_ci_low", "_ci_high")
              if c.endswith(b) and c.removesuffix(b) in names}
    columns = [c for c in names if c not in bounds]
    records = frame.to_dict("records")
    counts = "n" in columns
    hidden_in: set[object] = set()
    if counts:
        hidden_in = {r.get("attribute") for r in records if _small(r["n"], min_count)}
    rows = []
    for record in records:
        attribute = str(record.get("attribute", ""))
        if counts and _small(record["n"], min_count):
            cells = []
            for c in columns:
                if c == "attribute":
                    cells.append(_Cell(attribute_label(attribute, language), css="group"))
                elif c == "group":
                    cells.append(_Cell(group_label(attribute, str(record[c]), language),
                                       css="text"))
                elif c == "n":
                    cells.append(_Cell(f"< {min_count}", css="suppressed"))
            rest = len(columns) - len(cells)
            cells.append(_Cell(text("suppressed", language, min_count=min_count),
                               css="suppressed", span=rest))
            rows.append(tuple(cells))
            continue
        cells = []
        for c in columns:
            cell = _frame_cell(c, record[c], attribute, language,
                               rounded=record.get("attribute") in hidden_in)
            if f"{c}_ci_low" in bounds and f"{c}_ci_high" in bounds:
                cell = dataclasses.replace(cell, interval=format_interval(
                    _float(record[f"{c}_ci_low"]), _float(record[f"{c}_ci_high"]), language,
                    metric="ratio" if c == "ratio" else c, compact=True))
            cells.append(cell)
        rows.append(tuple(cells))
    return _Table(caption="", columns=tuple(metric_label(c, language) for c in columns),
                  rows=tuple(rows),
                  note=text("groups_rounded", language) if hidden_in else "")


def _small(n: object, min_count: int) -> bool:
    try:
        count = float(n)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return True
    return not math.isfinite(count) or count < min_count


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return math.nan


def _frame_cell(column: str, value: object, attribute: str, language: Language, *,
                rounded: bool) -> _Cell:
    if column == "attribute":
        return _Cell(attribute_label(str(value), language), css="group")
    if column == "group":
        return _Cell(group_label(attribute, str(value), language), css="text")
    if column == "n":
        return _Cell(format_count(int(value), language, rounded=rounded))  # type: ignore[call-overload]
    if isinstance(value, (list, tuple, np.ndarray)):
        return _Cell(", ".join(str(v) for v in value), css="text")
    if isinstance(value, (bool, np.bool_)):
        return _Cell(text("yes" if value else "no", language))
    if isinstance(value, numbers.Integral):
        return _Cell(format_count(int(value), language))
    if isinstance(value, numbers.Real):
        if column in RATE_METRICS or column.endswith(("_rate", "_share")):
            return _Cell(format_value("base_rate", float(value), language))
        return _Cell(format_number(float(value), language, 2 if column == "ratio" else 3))
    if value is None or value is pd.NA or value == "":
        return _Cell("–", css="text")
    return _Cell(value_label(str(value), language), css="text")
