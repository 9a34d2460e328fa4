"""Request and response models of the scoring API (they are its OpenAPI schema).

Requests have limits (string lengths, batch size, number of features) and forbid unknown
keys; their validation errors never repeat the input (``hide_input_in_errors``), so a
malformed CPR number cannot reach a log through an error message.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from overblik.models._allocation import MAX_BUDGET, MAX_COST, MAX_PLACES
from overblik.serving._cpr import check_cpr, contains_cpr

__all__ = [
    "MAX_ALLOCATE",
    "MAX_BATCH",
    "AllocateCitizen",
    "AllocateRequest",
    "AllocateResponse",
    "AllocatedCitizen",
    "AllocationTotals",
    "BatchRequest",
    "BatchResponse",
    "BatchResult",
    "Citizen",
    "Contribution",
    "EffectReason",
    "EffectsInfo",
    "ErrorResponse",
    "ExplainRequest",
    "ExplainResponse",
    "FeedbackRequest",
    "FeedbackResponse",
    "FieldError",
    "MetadataResponse",
    "ModelRef",
    "ProgrammeEffect",
    "ProgrammeInfo",
    "Reason",
    "RecommendRequest",
    "RecommendResponse",
    "RiskBand",
    "ScoreRequest",
    "ScoreResponse",
    "VerifyResponse",
]

MAX_BATCH = 1000
MAX_ALLOCATE = 20_000
MAX_FEATURES = 1000
RiskBand = Literal["low", "medium", "high"]
FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
# Strict: "3", true or "1_000" are not read as numbers (a client bug, not a value); the
# same for every number of a request (top, places, costs, budget).
FeatureValue = Annotated[float, Field(strict=True, allow_inf_nan=False)] | None
# A request id, and a batch item's: the batch's id, a dash and the index as the results write
# it (no leading zeros), so that a decision always names the item as the log does.
_REQUEST_ID = re.compile(r"[0-9a-f]{32}(-(0|[1-9][0-9]{0,3}))?")
_DECISION_ID = re.compile(r"[0-9a-f]{32}")  # a /feedback answer's own id: never an item
# The patterns of a request's free identifiers, and what they allow in words (an error
# names the words, not the regular expression).
REF_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
ACTION_PATTERN = r"^[\w\- ]+$"
PROGRAMME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
PATTERN_WORDS = {
    REF_PATTERN: "letters A-Z and a-z, digits and _ . : -",
    ACTION_PATTERN: "letters, digits, _, - and spaces",
    PROGRAMME_PATTERN: "a programme's name: a small letter, then small letters, digits and _",
}
ProgrammeName = Annotated[str, StringConstraints(pattern=PROGRAMME_PATTERN)]


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, frozen=True)


class Citizen(_Request):
    """One citizen: a CPR number (looked up in the profile store) or their features."""

    cpr: str | None = Field(
        default=None, min_length=1, max_length=32,
        description="CPR number, DDMMYY-SSSS or ten digits. Pseudonymised on arrival with the "
        "ingest key and looked up in the profile store; it is not stored or logged.")
    features: dict[FeatureName, FeatureValue] | None = Field(
        default=None, max_length=MAX_FEATURES, validate_default=True,
        description="Instead of a CPR number: every feature of the model by name (GET "
        "/metadata lists them); null for a missing value.")

    @field_validator("cpr")
    @classmethod
    def _cpr(cls, v: str | None) -> str | None:
        return None if v is None else check_cpr(v)

    @field_validator("features")
    @classmethod
    def _one_of(cls, v: dict[str, float | None] | None,
                info: ValidationInfo) -> dict[str, float | None] | None:
        if "cpr" not in info.data:  # the CPR number failed: that error says enough
            return v
        has_cpr = info.data["cpr"] is not None
        if has_cpr and v is not None:
            raise ValueError("give either cpr or features, not both")
        if not has_cpr and v is None:
            raise ValueError("give either cpr (to use the profile store) or features")
        return v


class ScoreRequest(Citizen):
    """``POST /score``."""

    top: int | None = Field(default=None, strict=True, ge=0, le=20,
                            description="How many reasons to return (default 5; 0 for none, "
                            "as in /score/batch and /recommend).")


class ExplainRequest(Citizen):
    """``POST /explain``."""


class RecommendRequest(Citizen):
    """``POST /recommend``."""

    top: int | None = Field(default=None, strict=True, ge=0, le=20,
                            description="Reasons per programme (default 5; 0 for none).")


class AllocateCitizen(_Request):
    """One citizen of an allocation: the caller's reference and every feature."""

    ref: str = Field(min_length=1, max_length=64, pattern=REF_PATTERN,
                     description="The caller's own reference, returned with the citizen's "
                     "place. Never a CPR number (refused).")
    features: dict[FeatureName, FeatureValue] = Field(
        max_length=MAX_FEATURES, description="Every feature of the model by name (GET "
        "/metadata lists them); null for a missing value.")

    @field_validator("ref")
    @classmethod
    def _no_cpr(cls, v: str) -> str:
        if contains_cpr(v):
            raise ValueError("looks like it holds a CPR number; use your own reference (CPR "
                             "numbers are not accepted here)")
        return v


class AllocateRequest(_Request):
    """``POST /allocate``: places of each programme for a list of citizens (feature payloads).

    ``places``, ``costs`` and ``budget`` default to the served version's (GET /metadata);
    programmes not named keep their default.
    """

    citizens: list[AllocateCitizen] = Field(
        max_length=MAX_ALLOCATE, description=f"Up to {MAX_ALLOCATE:,} citizens; the "
        "allocation is over the whole list, so it cannot be split into pages.")
    places: dict[ProgrammeName, Annotated[int, Field(strict=True, ge=0,
                                                     le=MAX_PLACES)]] | None = Field(
        default=None, description="Places per programme (default: the version's).")
    costs: dict[ProgrammeName, Annotated[float, Field(strict=True, gt=0, le=MAX_COST,
                                                      allow_inf_nan=False)]] | None = \
        Field(default=None, description="Cost of one place per programme (default: the "
              "version's).")
    budget: float | None = Field(default=None, strict=True, gt=0, le=MAX_BUDGET,
                                 allow_inf_nan=False,
                                 description="Total cost of the places given (default: the "
                                 "version's; none when it has none).")


class BatchRequest(_Request):
    """``POST /score/batch``: up to 1,000 citizens per request (page through longer lists).

    Feature payloads also count against the body limit (``max_body_bytes``, 2 MB by default:
    about 300 payloads of a hundred features); CPR numbers always fit.
    """

    items: list[Citizen] = Field(min_length=1, max_length=MAX_BATCH)
    top: int | None = Field(default=None, strict=True, ge=0, le=20,
                            description="Reasons per citizen (default 5; 0 for none).")


class FeedbackRequest(_Request):
    """``POST /feedback``: what the caseworker decided after a score."""

    request_id: str = Field(max_length=64, description="The request_id of the score (a batch "
                            "item's: <request_id>-<index>, as in the batch's results).")
    decision: Literal["followed", "overridden"] = Field(
        description="Did the caseworker follow the score's indication or override it?")
    action: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=ACTION_PATTERN,
        description="The action chosen, e.g. family_support or none. Never a CPR number.")
    reason: str | None = Field(
        default=None, max_length=2000, validate_default=True,
        description="Why (required when overridden). Never a CPR number, name or address: "
        "refer to the citizen through the request id.")
    corrects: str | None = Field(
        default=None, max_length=32, description="A second decision on the same score: the "
        "request_id of the decision it replaces (the latest one; the log keeps both). "
        "Without it a second decision is refused (409).")

    @field_validator("request_id")
    @classmethod
    def _request_id(cls, v: str) -> str:
        if not _REQUEST_ID.fullmatch(v):
            raise ValueError("is not a request id: give the request_id of a /score or "
                             "/recommend answer (32 characters 0-9a-f), or a batch item's "
                             "<request_id>-<index> as in the batch's results")
        return v

    @field_validator("corrects")
    @classmethod
    def _corrects(cls, v: str | None) -> str | None:
        if v is not None and not _DECISION_ID.fullmatch(v):
            raise ValueError("is not a decision's id: give the request_id that /feedback "
                             "answered for the earlier decision (32 characters 0-9a-f)")
        return v

    @field_validator("action", "reason")
    @classmethod
    def _no_cpr(cls, v: str | None) -> str | None:
        if v is not None and contains_cpr(v):
            raise ValueError("contains what looks like a CPR number; refer to the citizen "
                             "only through the request id")
        return v

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str | None, info: ValidationInfo) -> str | None:
        # Letters or digits: a reason of spaces or invisible characters says nothing.
        if info.data.get("decision") == "overridden" and not (
                v and any(ch.isalnum() for ch in v)):
            raise ValueError("is required when the decision is overridden: say why")
        return v


class ModelRef(BaseModel):
    """Which model gave the answer."""

    name: str
    version: str
    alias: str


class Reason(BaseModel):
    """One feature's part in the score."""

    feature: str
    sentence: str = Field(description="The reason in the response language.")
    value: float | None
    contribution: float = Field(description="SHAP value on the raw margin (log-odds).")
    direction: Literal["raises", "lowers"]


def _unknown_features() -> Any:
    return Field(default=0, description="How many of the model's features the payload left "
                 "null (unknown; 0 for a profile from the store): the more, the less the "
                 "answer rests on what is known about the citizen.")


class ScoreResponse(BaseModel):
    """A calibrated probability with its reasons; it supports, and does not make, a decision."""

    request_id: str
    probability: float = Field(description="Calibrated probability of the outcome within "
                               "the horizon.")
    risk_band: RiskBand
    risk_band_text: str
    reasons: list[Reason]
    model: ModelRef
    outcome: str
    horizon_days: int
    source: Literal["profile_store", "payload"]
    as_of: str | None = Field(description="Date of the profile used (profile store only).")
    unknown_features: int = _unknown_features()
    language: Literal["da", "en"]
    notice: str


class BatchResult(BaseModel):
    """One citizen of a batch (``not_found``: not in the profile store)."""

    index: int
    request_id: str
    status: Literal["scored", "not_found"]
    probability: float | None = None
    risk_band: RiskBand | None = None
    reasons: list[Reason] = []
    unknown_features: int = _unknown_features()


class BatchResponse(BaseModel):
    """``POST /score/batch``: results in the order of the request's items."""

    request_id: str
    model: ModelRef
    outcome: str
    horizon_days: int
    as_of: str | None
    scored: int
    not_found: int
    results: list[BatchResult]
    language: Literal["da", "en"]
    notice: str


class Contribution(BaseModel):
    """One feature's SHAP contribution."""

    feature: str
    description: str
    value: float | None
    value_text: str
    contribution: float


class ExplainResponse(BaseModel):
    """Every feature's contribution; ``base_value + sum(contribution) == margin``."""

    request_id: str
    model: ModelRef
    probability: float
    margin: float = Field(description="Raw LightGBM margin (log-odds) that SHAP explains.")
    base_value: float
    scale: str
    contributions: list[Contribution]
    source: Literal["profile_store", "payload"]
    as_of: str | None
    language: Literal["da", "en"]
    notice: str


class FeedbackResponse(BaseModel):
    """The decision was appended to the audit log next to its request."""

    request_id: str
    for_request: str
    decision: Literal["followed", "overridden"]
    stored: bool
    corrects: str | None = None


class EffectReason(BaseModel):
    """One feature's part in a programme's estimated effect."""

    feature: str
    sentence: str = Field(description="The reason in the response language.")
    value: float | None
    contribution: float = Field(description="The feature's share of the effect (probability "
                                "scale): average + all contributions = effect.")
    direction: Literal["raises", "lowers"] = Field(
        description="Whether the feature makes the programme help more (raises) or less.")


class ProgrammeEffect(BaseModel):
    """One programme's estimated effect for the citizen."""

    programme: str
    effect: float = Field(description="Estimated reduction in the probability of the outcome "
                          "within the horizon if the citizen gets the programme rather than "
                          "none (0.05 = 5 percentage points; positive = it helps).")
    ci_low: float | None = Field(description="Lower end of the effect's interval (the spread "
                                 "of the bagged effect models; null when not available).")
    ci_high: float | None
    extrapolated: bool = Field(description="The citizen's propensity for the programme is "
                               "outside the trimming bounds: unlike anyone who got it, so the "
                               "effect is an extrapolation (never suggested).")
    cost: float = Field(description="Cost of one place.")
    average: float = Field(description="The effect model's average effect; average + sum of "
                           "every feature's contribution = effect.")
    reasons: list[EffectReason] = Field(
        description="The largest contributions (at most `top`) of at least 1 % of the "
                    "effect or of the average, whichever is larger; empty when the model "
                    "finds no such differences between citizens.")


class RecommendResponse(BaseModel):
    """Each programme's estimated effect for one citizen; it supports, and does not make, a
    decision."""

    request_id: str
    model: ModelRef
    outcome: str
    horizon_days: int
    programmes: list[ProgrammeEffect] = Field(description="Largest estimated effect first.")
    suggested: str | None = Field(
        description="The programme with the largest effect whose interval is above zero "
        "(ci_low > 0) and that is not an extrapolation; null when none is.")
    scale: str
    source: Literal["profile_store", "payload"]
    as_of: str | None = Field(description="Date of the profile used (profile store only).")
    unknown_features: int = _unknown_features()
    language: Literal["da", "en"]
    notice: str


class AllocatedCitizen(BaseModel):
    """One citizen's place (``programme`` null: none)."""

    ref: str
    programme: str | None
    expected_benefit: float | None = Field(
        description="The estimated effect of the programme given (null without one).")
    extrapolated: bool | None = Field(
        description="The effect of the programme given is an extrapolation (null without "
        "one).")


class AllocationTotals(BaseModel):
    """What the allocation gives and uses."""

    citizens: int
    assigned: int
    expected_benefit: float = Field(description="Sum of the effects of the places given: the "
                                    "expected number of bad outcomes prevented.")
    upper_bound: float | None = Field(description="No allocation can do better (the LP "
                                      "relaxation).")
    places_used: dict[str, int]
    places: dict[str, int] = Field(description="The places that were available.")
    costs: dict[str, float]
    cost: float
    budget: float | None
    status: str = Field(description="optimal, or the solver's message when it stopped early.")
    method: str = Field(description="lp, lp+milp, milp, or none (nothing to give).")


class AllocateResponse(BaseModel):
    """``POST /allocate``: who gets which programme, in the order of the request."""

    request_id: str
    model: ModelRef
    outcome: str
    citizens: list[AllocatedCitizen]
    totals: AllocationTotals
    notes: list[str] = Field(description="What the allocation does not take into account.")
    notice: str


class FieldError(BaseModel):
    """One bad field: where (``items[3].cpr``) and what to do."""

    field: str
    message: str
    index: int | None = Field(default=None, description="The item at fault of a list "
                              "(items[i], citizens[i]); null when not in a list.")
    ref: str | None = Field(default=None, description="That item's own reference (the "
                            "caller's ref), when it has one; never a CPR number.")


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer; ``fields`` lists every bad field (the first 20 of them)."""

    error: str
    fields: list[FieldError] = []
    more: int = Field(default=0, description="Bad fields found beyond those listed in "
                      "fields (only the first 20 are listed).")
    request_id: str | None = None


class ProgrammeInfo(BaseModel):
    """One programme of the served version's effect models."""

    name: str
    places: int
    cost: float
    average_effect: float | None = Field(description="Average effect over the training rows "
                                         "(doubly robust).")
    average_effect_ci: tuple[float, float] | None


class EffectsInfo(BaseModel):
    """Whether the served version has effect models (``/recommend``, ``/allocate``)."""

    available: bool
    outcome: str | None = None
    programmes: list[ProgrammeInfo] = []
    budget: float | None = None
    trained_until: str | None = None
    how_to: str | None = Field(default=None, description="How to get effect models when the "
                               "version has none.")


class ApprovalInfo(BaseModel):
    """The ethics board's latest decision on the served version."""

    decision: Literal["approved", "rejected"] = Field(
        description="rejected: the board withdrew its approval; the model's endpoints answer "
        "503 until it approves again.")
    by: str
    at: str = Field(description="When, ISO 8601 in UTC.")
    reason: str
    overrides_fairness: bool = Field(
        description="The approval accepts a fairness audit that missed its thresholds.")
    fairness_passed: bool | None = Field(
        description="The fairness audit's verdict the board decided on (null: no audit).")


class MetadataResponse(BaseModel):
    """Model card summary of the served version."""

    model: ModelRef
    experiment: str
    description: str
    cohort: str
    outcome: str
    horizon_days: int
    run_id: str
    config_hash: str
    approval: ApprovalInfo
    metrics: dict[str, float]
    features: list[dict[str, str | float | None]] = Field(
        description="The model's features: name, descriptions (da, en), source, purpose, "
        "unit, and the lowest and highest value a profile can hold (low, high; null where "
        "only the unit bounds it, e.g. a count is a whole number from 0).")
    profile_store: dict[str, str | int]
    risk_bands: dict[str, str]
    explanation: str
    notice: dict[str, str]
    demo_data: bool
    roles: dict[str, list[str]]
    effects: EffectsInfo


class VerifyResponse(BaseModel):
    """``GET /audit/verify``: is the audit log's hash chain intact?"""

    intact: bool
    entries: int
    head: str
    problem: str | None
    kind: str | None
    seq: int | None
