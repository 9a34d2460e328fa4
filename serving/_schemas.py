"""Request and response models of the scoring API (they are its OpenAPI schema).

Requests have limits (string lengths, batch size, number of features) and forbid unknown
keys; their validation errors never repeat the input (``hide_input_in_errors``), so a
malformed CPR number cannot reach a log through an error message.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from overblik.serving._cpr import CPR_IN_TEXT, check_cpr

__all__ = [
    "MAX_BATCH",
    "BatchRequest",
    "BatchResponse",
    "BatchResult",
    "Citizen",
    "Contribution",
    "ErrorResponse",
    "ExplainRequest",
    "ExplainResponse",
    "FeedbackRequest",
    "FeedbackResponse",
    "FieldError",
    "MetadataResponse",
    "ModelRef",
    "Reason",
    "RiskBand",
    "ScoreRequest",
    "ScoreResponse",
    "VerifyResponse",
]

MAX_BATCH = 1000
MAX_FEATURES = 1000
RiskBand = Literal["low", "medium", "high"]
FeatureName = Annotated[str, StringConstraints(min_length=1, max_length=200)]
FeatureValue = Annotated[float, Field(allow_inf_nan=False)] | None
REQUEST_ID = r"^[0-9a-f]{32}(-\d{1,4})?$"


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True, frozen=True)


class Citizen(_Request):
    """One citizen: a CPR number (looked up in the profile store) or their features."""

    cpr: str | None = Field(
        default=None, min_length=10, max_length=11,
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

    top: int | None = Field(default=None, ge=1, le=20,
                            description="How many reasons to return (default 5).")


class ExplainRequest(Citizen):
    """``POST /explain``."""


class BatchRequest(_Request):
    """``POST /score/batch``: up to 1,000 citizens per request (page through longer lists)."""

    items: list[Citizen] = Field(min_length=1, max_length=MAX_BATCH)
    top: int | None = Field(default=None, ge=0, le=20,
                            description="Reasons per citizen (default 5; 0 for none).")


class FeedbackRequest(_Request):
    """``POST /feedback``: what the caseworker decided after a score."""

    request_id: str = Field(pattern=REQUEST_ID, description="The request_id of the score.")
    decision: Literal["followed", "overridden"] = Field(
        description="Did the caseworker follow the score's indication or override it?")
    action: str | None = Field(
        default=None, min_length=1, max_length=64, pattern=r"^[\w\- ]+$",
        description="The action chosen, e.g. family_support or none.")
    reason: str | None = Field(
        default=None, max_length=2000, validate_default=True,
        description="Why (required when overridden). Never a CPR number, name or address: "
        "refer to the citizen through the request id.")

    @field_validator("reason")
    @classmethod
    def _reason(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and CPR_IN_TEXT.search(v):
            raise ValueError("contains what looks like a CPR number; refer to the citizen "
                             "only through the request id")
        if info.data.get("decision") == "overridden" and not (v and v.strip()):
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


class FieldError(BaseModel):
    """One bad field: where (``items[3].cpr``) and what to do."""

    field: str
    message: str


class ErrorResponse(BaseModel):
    """Every 4xx/5xx answer."""

    error: str
    fields: list[FieldError] = []
    request_id: str | None = None


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
    approval: dict[str, str]
    metrics: dict[str, float]
    features: list[dict[str, str]]
    profile_store: dict[str, str | int]
    risk_bands: dict[str, str]
    explanation: str
    notice: dict[str, str]
    demo_data: bool
    roles: dict[str, list[str]]


class VerifyResponse(BaseModel):
    """``GET /audit/verify``: is the audit log's hash chain intact?"""

    intact: bool
    entries: int
    head: str
    problem: str | None
    kind: str | None
    seq: int | None
