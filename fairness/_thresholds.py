"""The fairness policy a model must meet, and the verdict of an audit against it.

The rule (decided with the brief of issue 4): a difference between a group and its reference
*fails* when its point estimate is larger than the limit in absolute value. The bootstrap
interval does not decide, because a small group's wide interval would otherwise let any gap
pass; it is reported with every check (``interval_beyond``: the whole interval lies beyond
the limit, so the gap is clear; ``interval_reaches``: part of it does, so a gap beyond the
limit cannot be ruled out, which the verdict reports as a warning even when the check passes).
Both directions count: selecting a group more often means more surveillance, less often
means help withheld.

An audit passes only what it could check: an attribute with nothing to compare (one group,
or its reference or every other group suppressed), a metric no group has an estimate of
(ECE of scores that are not probabilities), and a group of an attribute whose metric has no
estimate (TPR of a group with no recorded outcome among its persons) are listed as
``unchecked``, and the verdict is not a pass. An intersection without an estimate is named
in the report but does not decide: two-attribute cells are often too thin to have every
outcome, and their attributes are checked on their own.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from overblik.fairness._audit import AuditResult, Disparity, Interval
from overblik.fairness._wording import (
    Language,
    attribute_label,
    format_bound,
    format_difference,
    format_limit,
    group_label,
    metric_label,
    text,
)

__all__ = ["DisparityCheck", "FairnessThresholds", "Unchecked", "Verdict"]

CheckStatus = Literal["fail", "uncertain", "ok", "unknown"]
UncheckedReason = Literal["one_group", "all_suppressed", "reference_suppressed",
                          "others_suppressed", "no_estimate", "no_group_estimate"]


class FairnessThresholds(BaseModel):
    """Largest allowed absolute differences between a group and its reference group.

    Parameters
    ----------
    selection_rate, tpr, fpr : float, default 0.10
        Limits on the difference in selection rate, true positive rate and false positive
        rate (0.10 = ten percentage points).
    ece : float, default 0.05
        Limit on the difference in expected calibration error.
    min_count : int, default 20
        The smallest group the audit may show; an audit that suppressed less fails.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    selection_rate: float = Field(0.10, gt=0, le=1)
    tpr: float = Field(0.10, gt=0, le=1)
    fpr: float = Field(0.10, gt=0, le=1)
    ece: float = Field(0.05, gt=0, le=1)
    min_count: int = Field(20, ge=1)

    def limits(self) -> dict[str, float]:
        """Metric name -> allowed absolute difference, in the audit's metric names."""
        return {"selection_rate": self.selection_rate, "tpr": self.tpr, "fpr": self.fpr,
                "ece": self.ece}

    def evaluate(self, audit: AuditResult) -> Verdict:
        """Check every disparity of ``audit`` that has a limit; see the module docstring."""
        limits = self.limits()
        # A group below the policy's minimum is suppressed even if the audit showed it.
        suppressed = {(g.attribute, g.group) for g in audit.groups
                      if g.suppressed or g.n < self.min_count}
        disparities = [d for d in audit.disparities if d.metric in limits]
        have = {(d.attribute, d.group, d.metric) for d in disparities}
        # An audit without ECE disparities still has ECE by group: compare point estimates.
        disparities += [d for d in _derived_disparities(audit, limits) if
                        (d.attribute, d.group, d.metric) not in have]
        checks = tuple(
            _check(d, limits[d.metric], audit.confidence) for d in disparities
            if (d.attribute, d.group) not in suppressed
            and (d.attribute, d.reference) not in suppressed
        )
        failures = [c.describe() for c in checks if c.status == "fail"]
        if audit.min_count < self.min_count:
            failures.insert(0, f"the audit suppresses groups below {audit.min_count} persons; "
                               f"the policy requires min_count={self.min_count}")
        unchecked = _unchecked(audit, checks, suppressed, tuple(limits), self.min_count)
        return Verdict(
            passed=not failures and not unchecked,
            failures=tuple(failures),
            unchecked=unchecked,
            checks=checks,
            warnings=tuple(c.describe() for c in checks if c.status == "uncertain"),
            policy_min_count=self.min_count,
            audit_min_count=audit.min_count,
            suppressed_groups=len(suppressed),
        )


@dataclass(frozen=True)
class DisparityCheck:
    """One difference held against its limit."""

    metric: str
    attribute: str
    group: str
    reference: str
    difference: Interval
    limit: float
    confidence: float

    @property
    def exceeds(self) -> bool:
        """The point estimate is beyond the limit (this is what fails)."""
        return abs(self.difference.value) > self.limit

    @property
    def has_interval(self) -> bool:
        return math.isfinite(self.difference.ci_low) and math.isfinite(self.difference.ci_high)

    @property
    def interval_beyond(self) -> bool:
        """The whole interval lies beyond the limit: the gap is clear, not noise."""
        d = self.difference
        return self.has_interval and (d.ci_low > self.limit or d.ci_high < -self.limit)

    @property
    def interval_reaches(self) -> bool:
        """Some of the interval lies beyond the limit: such a gap cannot be ruled out."""
        d = self.difference
        return self.has_interval and (d.ci_high > self.limit or d.ci_low < -self.limit)

    @property
    def status(self) -> CheckStatus:
        if not math.isfinite(self.difference.value):
            return "unknown"
        if self.exceeds:
            return "fail"
        return "uncertain" if self.interval_reaches else "ok"

    @property
    def severity(self) -> float:
        """|difference| / limit: above 1 fails; used to order the largest gaps first."""
        v = self.difference.value
        return abs(v) / self.limit if math.isfinite(v) else -1.0

    def sentence(self, language: Language) -> str:
        """The check in plain words for the board, in ``language``."""
        d = self.difference
        gap = text(
            "verdict_gap", language,
            metric=metric_label(self.metric, language),
            group=group_label(self.attribute, self.group, language),
            reference=group_label(self.attribute, self.reference, language),
            amount=format_difference(self.metric, abs(d.value), language).lstrip("+"),
            direction=text("higher" if d.value >= 0 else "lower", language),
            confidence=round(100 * self.confidence),
            low=format_bound(self.metric, d.ci_low, language, difference=True),
            high=format_bound(self.metric, d.ci_high, language, difference=True),
            limit=format_limit(self.metric, self.limit, language),
        )
        where = ("gap_no_interval" if not self.has_interval
                 else "gap_interval_beyond" if self.interval_beyond
                 else "gap_interval_straddles" if self.interval_reaches
                 else "gap_interval_within")
        return f"{gap} {text(where, language)}"

    def describe(self) -> str:
        """One line in English, for logs, tags and the failures list."""
        d = self.difference
        where = (
            "whole interval beyond the limit" if self.interval_beyond
            else "interval reaches beyond the limit" if self.interval_reaches
            else "no interval" if not self.has_interval
            else "interval within the limit"
        )
        return (f"{self.metric} {self.attribute}={self.group} vs {self.reference}: difference "
                f"{d.value:+.3f} ({self.confidence:.0%} CI {d.ci_low:+.3f} to {d.ci_high:+.3f}), "
                f"limit ±{self.limit:.3f}; {where}")


@dataclass(frozen=True)
class Unchecked:
    """An attribute or metric of the policy the audit could not check, and why."""

    kind: Literal["attribute", "metric", "group"]
    name: str  # the attribute, or the metric (kind metric or group)
    reason: UncheckedReason
    group: str = ""  # the only group, the suppressed reference, or the group without estimate
    min_count: int = 20
    attribute: str = ""  # kind group: the group's attribute

    def _reason(self, language: Language) -> str:
        if self.kind == "metric":
            return text("unchecked_metric", language,
                        needs=text(f"needs_{self.name}", language))
        if self.kind == "group":
            return text("unchecked_group", language,
                        group=group_label(self.attribute, self.group, language),
                        needs=text(f"needs_{self.name}", language))
        return text(f"unchecked_{self.reason}", language, min_count=self.min_count,
                    group=group_label(self.name, self.group, language))

    def describe(self) -> str:
        """One line in English, for logs, the command line and MLflow."""
        return f"{self.name}: {self._reason('en')}"

    def sentence(self, language: Language) -> str:
        """The item in plain words for the board, in ``language``."""
        name = (attribute_label(self.name, language) if self.kind == "attribute"
                else metric_label(self.name, language))
        return f"{name}: {self._reason(language)}"


def _unchecked(audit: AuditResult, checks: tuple[DisparityCheck, ...],
               suppressed: set[tuple[str, str]], metrics: tuple[str, ...], min_count: int
               ) -> tuple[Unchecked, ...]:
    """The attributes (not intersections) and metrics without a single estimated check."""
    estimated = [c for c in checks if math.isfinite(c.difference.value)]
    out: list[Unchecked] = []
    attributes = dict.fromkeys(g.attribute for g in audit.groups if "&" not in g.attribute)
    for attribute in attributes:
        if any(c.attribute == attribute for c in estimated):
            continue
        groups = [g.group for g in audit.groups if g.attribute == attribute]
        reference = audit.references.get(attribute, "")
        small = [(attribute, g) in suppressed for g in groups]
        reason: UncheckedReason = (
            "one_group" if len(groups) == 1
            else "all_suppressed" if all(small)
            else "reference_suppressed" if (attribute, reference) in suppressed
            else "others_suppressed" if all((attribute, g) in suppressed for g in groups
                                            if g != reference)
            else "no_estimate")
        out.append(Unchecked("attribute", attribute, reason,
                             groups[0] if reason == "one_group" else reference, min_count))
    if len(out) < len(attributes):  # some attribute was compared: are all metrics?
        for metric in metrics:
            if not any(c.metric == metric for c in estimated):
                out.append(Unchecked("metric", metric, "no_estimate", min_count=min_count))
    whole = {u.name for u in out}  # attributes and metrics already listed as a whole
    for c in checks:
        if (c.status == "unknown" and c.attribute in attributes
                and c.attribute not in whole and c.metric not in whole):
            out.append(Unchecked("group", c.metric, "no_group_estimate", group=c.group,
                                 min_count=min_count, attribute=c.attribute))
    return tuple(out)


@dataclass(frozen=True)
class Verdict:
    """Whether an audit meets the thresholds.

    ``failures`` name each failed check in English (the ``overblik.fairness_passed`` tag is
    ``passed``); ``unchecked`` what the policy asks for but the audit could not check (it
    cannot pass then either); ``warnings`` the passed checks whose interval reaches beyond
    the limit.
    """

    passed: bool
    failures: tuple[str, ...]
    unchecked: tuple[Unchecked, ...] = ()
    checks: tuple[DisparityCheck, ...] = ()
    warnings: tuple[str, ...] = ()
    policy_min_count: int = 20
    audit_min_count: int = 20
    suppressed_groups: int = 0

    @property
    def reasons(self) -> tuple[str, ...]:
        """Why the verdict is not a pass, in English: the failures, then what was not checked."""
        return self.failures + tuple(f"not checked: {u.describe()}" for u in self.unchecked)

    def largest(self, k: int = 3) -> tuple[DisparityCheck, ...]:
        """The ``k`` checks furthest beyond (or closest to) their limits, one per metric.

        One per metric, because a gap usually shows in an attribute and again in its
        intersections; the board sees the breadth first, the tables give the rest.
        """
        ranked = sorted((c for c in self.checks if c.status != "unknown"),
                        key=lambda c: c.severity, reverse=True)
        best: dict[str, DisparityCheck] = {}
        for c in ranked:
            best.setdefault(c.metric, c)
        return tuple(list(best.values())[:k])


def _derived_disparities(audit: AuditResult, limits: dict[str, float]) -> list[Disparity]:
    """Point differences group − reference from the group metrics (no interval)."""
    by_key = {(g.attribute, g.group): g for g in audit.groups if not g.suppressed}
    nan = float("nan")
    out = []
    for (attribute, group), result in by_key.items():
        reference = audit.references.get(attribute)
        ref = by_key.get((attribute, reference)) if reference is not None else None
        if ref is None or group == reference:
            continue
        for metric in limits:
            if metric in result.metrics and metric in ref.metrics:
                diff = result.metrics[metric].value - ref.metrics[metric].value
                ratio = (result.metrics[metric].value / ref.metrics[metric].value
                         if ref.metrics[metric].value else nan)
                out.append(Disparity(attribute=attribute, group=group, reference=ref.group,
                                     metric=metric, difference=Interval(diff, nan, nan),
                                     ratio=Interval(ratio, nan, nan)))
    return out


def _check(d: Disparity, limit: float, confidence: float) -> DisparityCheck:
    return DisparityCheck(metric=d.metric, attribute=d.attribute, group=d.group,
                          reference=d.reference, difference=d.difference, limit=limit,
                          confidence=confidence)
