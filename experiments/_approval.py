"""The ethics board's decision on a registered model version, as MLflow model-version tags.

``overblik review`` writes these tags (and an append-only record); ``overblik promote`` and
the scoring service read them: nothing serves without ``approved``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast

import mlflow

__all__ = [
    "APPROVAL_AT",
    "APPROVAL_BY",
    "APPROVAL_DECISION",
    "APPROVAL_OVERRIDES_FAIRNESS",
    "APPROVAL_REASON",
    "CHAMPION",
    "FAIRNESS_PASSED",
    "Approval",
    "approval_of",
]

CHAMPION = "champion"
APPROVAL_DECISION = "overblik.approval"  # "approved" | "rejected"
APPROVAL_BY = "overblik.approval_by"
APPROVAL_REASON = "overblik.approval_reason"
APPROVAL_AT = "overblik.approval_at"  # ISO 8601, UTC
APPROVAL_OVERRIDES_FAIRNESS = "overblik.approval_overrides_fairness"  # "true" | "false"
FAIRNESS_PASSED = "overblik.fairness_passed"  # set by train from the audit: "true" | "false"

Decision = Literal["approved", "rejected"]


@dataclass(frozen=True)
class Approval:
    """The latest review of one model version."""

    decision: Decision
    by: str
    reason: str
    at: str
    overrides_fairness: bool

    @property
    def approved(self) -> bool:
        return self.decision == "approved"


def approval_of(name: str, version: str,
                client: mlflow.MlflowClient | None = None) -> Approval | None:
    """The board's latest decision on ``name`` version ``version``, or None if never reviewed."""
    tags = (client or mlflow.MlflowClient()).get_model_version(name, version).tags
    decision = tags.get(APPROVAL_DECISION)
    if decision not in ("approved", "rejected"):
        return None
    return Approval(decision=cast(Decision, decision), by=tags.get(APPROVAL_BY, ""),
                    reason=tags.get(APPROVAL_REASON, ""), at=tags.get(APPROVAL_AT, ""),
                    overrides_fairness=tags.get(APPROVAL_OVERRIDES_FAIRNESS) == "true")
