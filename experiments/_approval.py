"""The ethics board's decision on a registered model version, as MLflow model-version tags,
and the append-only record of every review and promotion.

``overblik review`` writes these tags (and a line in the record); ``overblik promote`` and
the scoring service read them: nothing serves without ``approved``. The tags hold only the
latest decision; the record (``<data>/reviews.jsonl``, one JSON object per line, appended and
fsynced, never rewritten) keeps them all, with the promotions and refused promotions.
"""

from __future__ import annotations

import fcntl
import json
import os
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

import mlflow

from overblik.experiments._tracking import data_dir
from overblik.features._errors import InputError

__all__ = [
    "APPROVAL_AT",
    "APPROVAL_BY",
    "APPROVAL_DECISION",
    "APPROVAL_OVERRIDES_FAIRNESS",
    "APPROVAL_REASON",
    "CHAMPION",
    "FAIRNESS_PASSED",
    "Approval",
    "Decision",
    "Event",
    "ReviewRecord",
    "append_record",
    "approval_of",
    "read_records",
    "reviews_path",
    "utc_now",
    "write_approval",
]

CHAMPION = "champion"
APPROVAL_DECISION = "overblik.approval"  # "approved" | "rejected"
APPROVAL_BY = "overblik.approval_by"
APPROVAL_REASON = "overblik.approval_reason"
APPROVAL_AT = "overblik.approval_at"  # ISO 8601, UTC
APPROVAL_OVERRIDES_FAIRNESS = "overblik.approval_overrides_fairness"  # "true" | "false"
FAIRNESS_PASSED = "overblik.fairness_passed"  # set by train from the audit: "true" | "false"

Decision = Literal["approved", "rejected"]
Event = Literal["review", "promotion", "promotion_refused"]


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


@dataclass(frozen=True)
class ReviewRecord:
    """One line of the append-only record: a review, a promotion or a refused promotion.

    ``fairness_passed`` is the version's audit verdict at the time (None: no audit tag);
    ``previous_champion`` is the version behind ``champion`` before a promotion (None:
    there was none); ``detail`` says why a promotion was refused; ``registry`` is the
    MLflow store the decision took effect in (its URI without a password; None in records
    written before it was kept), so records of several stores in one file are told apart;
    ``files_sha256`` is the digest of the version's files a review saw
    (:func:`~overblik.experiments._version_files.files_digest`; None before it was kept).
    """

    event: Event
    time: str
    model: str
    version: str
    run_id: str | None
    config_hash: str | None
    fairness_passed: bool | None
    decision: Decision | None = None
    by: str | None = None
    reason: str | None = None
    overrides_fairness: bool | None = None
    previous_champion: str | None = None
    detail: str | None = None
    registry: str | None = None
    files_sha256: str | None = None

    def to_json(self) -> str:
        """One line of JSON (UTF-8 text, keys in field order)."""
        return json.dumps(asdict(self), ensure_ascii=False)


def utc_now() -> str:
    """The current time as ISO 8601 in UTC, to the second (``2025-01-31T09:15:02Z``)."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def reviews_path() -> Path:
    """The record of reviews and promotions: ``<data>/reviews.jsonl``."""
    return data_dir() / "reviews.jsonl"


def append_record(record: ReviewRecord, path: Path | None = None) -> Path:
    """Append one record as a line and fsync it before returning.

    The line is written with one ``write`` on a file opened for appending, under an
    exclusive lock, so concurrent writers never interleave and nothing earlier is touched.
    """
    target = path or reviews_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    line = (record.to_json() + "\n").encode("utf-8")
    fd = os.open(target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)  # closing releases the lock
    return target


def read_records(path: Path | None = None) -> list[ReviewRecord]:
    """Every record, oldest first (empty when nothing was recorded yet)."""
    target = path or reviews_path()
    if not target.exists():
        return []
    out = []
    for number, line in enumerate(target.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            out.append(ReviewRecord(**json.loads(line)))
        except (ValueError, TypeError) as exc:  # not JSON, not an object, unknown keys
            raise InputError(f"{target} line {number} is not a record ({exc}): the file is "
                             "appended to only, so restore it from the backup") from None
    return out


def write_approval(name: str, version: str, approval: Approval,
                   client: mlflow.MlflowClient | None = None) -> None:
    """Set the model-version tags of the board's latest decision."""
    mlflow_client = client or mlflow.MlflowClient()
    for key, value in {APPROVAL_DECISION: approval.decision, APPROVAL_BY: approval.by,
                       APPROVAL_REASON: approval.reason, APPROVAL_AT: approval.at,
                       APPROVAL_OVERRIDES_FAIRNESS: str(approval.overrides_fairness).lower(),
                       }.items():
        mlflow_client.set_model_version_tag(name, version, key, value)


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
