"""The ethics board's gate: record a review of a model version, and promote a version to
``champion`` only when the latest review approves it and the fairness audit passed (or the
board overrode a failed audit, with a reason).

Every review, promotion and refused promotion is added to the record
(:class:`overblik.experiments._review_log.ReviewLog`: a table in the registry's database, or
``<data>/reviews.jsonl``); the MLflow tags hold the latest review and the alias the current
champion.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from overblik.experiments._approval import (
    CHAMPION,
    FAIRNESS_PASSED,
    Approval,
    Decision,
    ReviewRecord,
    approval_of,
    utc_now,
    write_approval,
)
from overblik.experiments._review_log import ReviewLog
from overblik.experiments._tracking import without_password
from overblik.experiments._version_files import files_digest, version_folder
from overblik.features._cpr_text import contains_cpr
from overblik.features._errors import InputError

__all__ = ["MAX_REASON_CHARS", "GateVerdict", "Promotion", "PromotionRefused", "champion_of",
           "gate", "promote", "review"]

MAX_REASON_CHARS = 5000  # MLflow stores model-version tag values up to 5000 characters
# Letters that print as nothing: Hangul fillers (U+115F, U+1160, U+3164, U+FFA0).
_BLANK_LETTERS = frozenset("\u115f\u1160\u3164\uffa0")


class PromotionRefused(InputError):
    """``promote`` refused: the message says why and what the board must do first."""


@dataclass(frozen=True)
class Promotion:
    """A version moved to ``champion``."""

    model: str
    version: str
    previous_champion: str | None
    record: ReviewRecord


def _model_version(client: mlflow.MlflowClient, name: str, version: str) -> ModelVersion:
    """The registered version (a number, or an alias such as ``challenger``), or an
    InputError naming the model/version and what exists."""
    try:
        registered = client.get_registered_model(name)
    except MlflowException:
        known = sorted(m.name for m in client.search_registered_models())
        listed = ", ".join(known) if known else "none: train one with `overblik train`"
        raise InputError(f"model {name!r} is not registered; registered models: {listed}"
                         ) from None
    if not version.isdigit() and version in (registered.aliases or {}):
        return client.get_model_version_by_alias(name, version)
    try:
        return client.get_model_version(name, version)
    except MlflowException:
        found = client.search_model_versions(f"name='{name}'")
        versions = sorted((str(v.version) for v in found), key=int)
        aliases = ", ".join(sorted(registered.aliases or {})) or "none"
        raise InputError(f"model {name!r} has no version {version!r}; its versions: "
                         f"{', '.join(versions) or 'none'} (aliases: {aliases})") from None


def _fairness_passed(mv: ModelVersion) -> bool | None:
    value = mv.tags.get(FAIRNESS_PASSED)
    return None if value is None else value == "true"


def champion_of(name: str, client: mlflow.MlflowClient | None = None) -> str | None:
    """The version behind ``name``'s ``champion`` alias, or None."""
    try:
        return str((client or mlflow.MlflowClient()).get_model_version_by_alias(
            name, CHAMPION).version)
    except MlflowException:
        return None


def _recorded_text(option: str, text: str, fix: str) -> str:
    """``text`` stripped, refused when nothing in it is visible or it holds a CPR number."""
    text = text.strip()
    # Space, format and filler characters (a zero-width space, a braille blank, a Hangul
    # filler) look like nothing: an approval "by" nobody must not open the gate. A name or a
    # reason has a letter or a digit.
    if not any(unicodedata.category(c)[0] in "LN" and c not in _BLANK_LETTERS for c in text):
        raise InputError(f"{option} is empty (or holds only invisible characters): {fix}")
    if contains_cpr(text):
        raise InputError(f"{option} holds what looks like a CPR number: the record is kept "
                         "for good and the service shows the reason to its callers; refer to "
                         "a case by its case number, never a CPR number")
    return text


def review(name: str, version: str, *, decision: Decision, by: str, reason: str,
           override_fairness: bool = False, client: mlflow.MlflowClient | None = None,
           record: Path | None = None) -> ReviewRecord:
    """Record the board's decision on a model version (record line first, then tags).

    Parameters
    ----------
    name, version
        The registered model and its version.
    decision
        ``"approved"`` or ``"rejected"``.
    by, reason
        Who decided (a person or the board) and why; both required.
    override_fairness
        Approve although the fairness audit missed its thresholds (only with approval).
    client
        MLflow client (default: the current tracking URI).
    record
        A JSON-lines file to record in (default: the registry's :class:`ReviewLog`).

    Raises
    ------
    InputError
        Unknown model or version, empty ``by``/``reason``, or an override with a rejection.
    """
    mlflow_client = client or mlflow.MlflowClient()
    by = _recorded_text("--by", by, "name who decides (e.g. \"Etisk råd / ethics board\")")
    reason = _recorded_text("--reason", reason,
                            "the board's reason is recorded with every decision")
    if len(reason) > MAX_REASON_CHARS:
        raise InputError(f"--reason has {len(reason)} characters; keep it under "
                         f"{MAX_REASON_CHARS} and refer to a document for the full minutes")
    if override_fairness and decision != "approved":
        raise InputError("--override-fairness only goes with --approve: a rejection needs no "
                         "override")
    mv = _model_version(mlflow_client, name, version)
    version = str(mv.version)
    with version_folder(mlflow_client, name, version) as root:
        digest = files_digest(root)  # the files the board decides on
    entry = ReviewRecord(event="review", time=utc_now(), model=name, version=version,
                         run_id=mv.run_id, config_hash=mv.tags.get("overblik.config_hash"),
                         fairness_passed=_fairness_passed(mv), decision=decision, by=by,
                         reason=reason, overrides_fairness=override_fairness,
                         registry=without_password(mlflow_client.tracking_uri),
                         files_sha256=digest)
    # The record first: a crash in between leaves a recorded decision not yet in effect,
    # never a decision in effect that the record lacks.
    ReviewLog(mlflow_client.tracking_uri, record).append(entry)
    write_approval(name, str(version), Approval(decision=decision, by=by, reason=reason,
                                                at=entry.time,
                                                overrides_fairness=override_fairness),
                   mlflow_client)
    return entry


def _refusal(mv: ModelVersion, approval: Approval | None, passed: bool | None) -> str | None:
    """Why the version may not become champion, or None when it may."""
    label = f"{mv.name} version {mv.version}"
    if approval is None:
        return (f"{label} has never been reviewed: the ethics board must approve it first "
                f"(overblik review {mv.name} {mv.version} --approve --by NAME --reason TEXT)")
    if not approval.approved:
        return (f"the latest review of {label} rejected it ({approval.by}, {approval.at}: "
                f"{approval.reason!r}); only a new approval can change that")
    if passed is True:
        return None
    audit = ("has no fairness audit (no overblik.fairness_passed tag), which counts as a "
             "failed audit" if passed is None else "missed its fairness thresholds")
    if not approval.overrides_fairness:
        return (f"{label} {audit}, and its approval ({approval.by}, {approval.at}) does not "
                "override that; the board must read the report and approve again with "
                "--override-fairness and a reason")
    if not approval.reason.strip():
        return (f"{label} {audit}; the approval overrides that but gives no reason; "
                "approve again with --override-fairness and a reason")
    return None


@dataclass(frozen=True)
class GateVerdict:
    """What the gate says of a version: the board's latest review of it as the record holds
    it (None: never reviewed), the audit verdict it was reviewed with, and why the version
    may not serve or become champion (None: it may)."""

    approval: Approval | None
    fairness_passed: bool | None
    refusal: str | None


def _as_approval(entry: ReviewRecord) -> Approval:
    return Approval(decision=entry.decision or "rejected", by=entry.by or "",
                    reason=entry.reason or "", at=entry.time,
                    overrides_fairness=bool(entry.overrides_fairness))


def gate(mv: ModelVersion, client: mlflow.MlflowClient, *, record: Path | None = None,
         files_sha256: str | None = None, check_files: bool = True) -> GateVerdict:
    """The ethics board's gate for one registered version, read from the board's record.

    The version's approval tags are a copy of its latest review for MLflow's UI; anyone who
    can write to the registry can set them (and ``copy_model_version`` copies them to
    another version or model). So the gate reads the record (append-only, kept by
    ``overblik review``): the latest review of *this* name and version must approve it, for
    the run it points at, and its audit must have passed or the approval override that with
    a reason. Tags that differ from the record, a version now pointing at another run, files
    that changed since the review (``files_sha256``: their digest, when the caller has read
    them; else read here unless ``check_files`` is False, as for a service that holds its
    model in memory), or an audit verdict that changed since the review close the gate too.
    """
    label = f"{mv.name} version {mv.version}"
    reviews = [r for r in ReviewLog(client.tracking_uri, record).records(
        mv.name, earlier_file=False) if r.event == "review" and r.version == str(mv.version)]
    latest = reviews[-1] if reviews else None
    tagged = approval_of(mv.name, str(mv.version), client)
    passed_now = _fairness_passed(mv)
    if latest is None:
        why = _refusal(mv, None, passed_now)
        if tagged is not None:
            why = (f"{label} carries approval tags ({tagged.decision} by {tagged.by}, "
                   f"{tagged.at}) but the ethics board's record has no review of it: the tags "
                   "were set or copied outside `overblik review`; the board must review it "
                   f"(overblik review {mv.name} {mv.version} --approve ...)")
        return GateVerdict(None, passed_now, why)
    approval = _as_approval(latest)
    if tagged != approval:
        return GateVerdict(approval, latest.fairness_passed,
                           f"{label}'s approval tags do not match the board's latest review "
                           f"in the record ({approval.decision} by {approval.by}, "
                           f"{approval.at}): the tags were changed outside `overblik review`; "
                           "the board must review it again")
    if latest.run_id != mv.run_id:
        return GateVerdict(approval, latest.fairness_passed,
                           f"{label} now points at run {mv.run_id}, but the board reviewed it "
                           f"for run {latest.run_id}; the board must review it again")
    # The experiment's config lives with the run, outside the version's files: its hash, as
    # reviewed, must still be the version's (the service checks the run's config against it).
    config_now = mv.tags.get("overblik.config_hash")
    if latest.config_hash != config_now:
        return GateVerdict(approval, latest.fairness_passed,
                           f"{label}'s experiment config changed since the board's review "
                           f"(hash {latest.config_hash} then, {config_now} now); the board "
                           "must review it again")
    if check_files:
        if latest.files_sha256 is None:  # fail closed: nothing says which files were seen
            return GateVerdict(approval, latest.fairness_passed,
                               f"{label} was reviewed before reviews recorded the model's "
                               "files, so they cannot be checked; the board must review it "
                               "again")
        if files_sha256 is None:
            with version_folder(client, mv.name, str(mv.version)) as root:
                files_sha256 = files_digest(root)
        if files_sha256 != latest.files_sha256:
            return GateVerdict(approval, latest.fairness_passed,
                               f"{label}'s files changed since the board's review (SHA-256 "
                               f"{latest.files_sha256[:12]}… then, {files_sha256[:12]}… now): "
                               "the board has not seen this model; train and review again")
    if passed_now != latest.fairness_passed:
        return GateVerdict(approval, latest.fairness_passed,
                           f"{label}'s fairness verdict changed since the board's review "
                           f"({_verdict(latest.fairness_passed)} then, {_verdict(passed_now)} "
                           "now); the board must review it again")
    return GateVerdict(approval, latest.fairness_passed,
                       _refusal(mv, approval, latest.fairness_passed))


def _verdict(passed: bool | None) -> str:
    return "no audit" if passed is None else "passed" if passed else "missed"


def promote(name: str, version: str, *, client: mlflow.MlflowClient | None = None,
            record: Path | None = None) -> Promotion:
    """Move the ``champion`` alias to the version if the gate allows it; record either way.

    The gate (:func:`gate`): the latest review in the board's record approves the version,
    and its fairness audit passed (``overblik.fairness_passed`` = ``"true"``) or the approval
    overrides the failed (or missing) audit with a reason.

    Raises
    ------
    InputError
        Unknown model or version (nothing recorded).
    PromotionRefused
        The gate is closed; the refusal is recorded with the current champion.
    """
    mlflow_client = client or mlflow.MlflowClient()
    mv = _model_version(mlflow_client, name, version)
    version = str(mv.version)
    verdict = gate(mv, mlflow_client, record=record)
    approval, passed, why = verdict.approval, verdict.fairness_passed, verdict.refusal
    previous = champion_of(name, mlflow_client)
    entry = ReviewRecord(
        event="promotion" if why is None else "promotion_refused", time=utc_now(),
        model=name, version=str(version), run_id=mv.run_id,
        config_hash=mv.tags.get("overblik.config_hash"), fairness_passed=passed,
        decision=approval.decision if approval else None,
        by=approval.by if approval else None, reason=approval.reason if approval else None,
        overrides_fairness=approval.overrides_fairness if approval else None,
        previous_champion=previous, detail=why,
        registry=without_password(mlflow_client.tracking_uri))
    ReviewLog(mlflow_client.tracking_uri, record).append(entry)
    if why is not None:
        raise PromotionRefused(f"promotion refused: {why}")
    mlflow_client.set_registered_model_alias(name, CHAMPION, str(version))
    return Promotion(model=name, version=str(version), previous_champion=previous,
                     record=entry)
