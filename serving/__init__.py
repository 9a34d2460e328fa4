"""The scoring service: BentoML API with reasons, access control and a tamper-evident audit
log; the profile store it reads; API keys.

``ScoringService`` (the BentoML service) is imported lazily: importing this package does not
import BentoML.
"""

from typing import Any

from overblik.serving._audit_export import (
    ExportFilter,
    ExportFormat,
    ExportResult,
    export_audit_log,
)
from overblik.serving._auditlog import (
    AuditEntry,
    AuditLog,
    DecisionCheck,
    StoredEntry,
    Verification,
)
from overblik.serving._cpr import CPR_IN_TEXT, check_cpr, contains_cpr, cpr_birth_date
from overblik.serving._database import Database, open_database
from overblik.serving._effects import EffectsScorer
from overblik.serving._engine import NOTICE, RequestRecord, ScoringEngine
from overblik.serving._keys import ROLES, ApiKey, KeyStore, Role
from overblik.serving._model import ServedModel, StartupError, load_served_model
from overblik.serving._problems import ApiError
from overblik.serving._profile_store import (
    ProfileStore,
    ProfileStoreMeta,
    StoreFormat,
    build_profile_store,
)
from overblik.serving._reasons import Explainer, Language, format_value, pick_language
from overblik.serving._routes import ROUTES, RouteRule, match_route
from overblik.serving._schemas import (
    MAX_ALLOCATE,
    MAX_BATCH,
    AllocateRequest,
    AllocateResponse,
    BatchRequest,
    BatchResponse,
    ExplainRequest,
    ExplainResponse,
    FeedbackRequest,
    FeedbackResponse,
    MetadataResponse,
    RecommendRequest,
    RecommendResponse,
    ScoreRequest,
    ScoreResponse,
)
from overblik.serving._settings import ServingSettings, default_profile_store, default_store_url

__all__ = [
    "CPR_IN_TEXT",
    "MAX_ALLOCATE",
    "MAX_BATCH",
    "NOTICE",
    "ROLES",
    "ROUTES",
    "AllocateRequest",
    "AllocateResponse",
    "ApiError",
    "ApiKey",
    "AuditEntry",
    "AuditLog",
    "BatchRequest",
    "BatchResponse",
    "Database",
    "DecisionCheck",
    "EffectsScorer",
    "ExplainRequest",
    "ExplainResponse",
    "Explainer",
    "ExportFilter",
    "ExportFormat",
    "ExportResult",
    "FeedbackRequest",
    "FeedbackResponse",
    "KeyStore",
    "Language",
    "MetadataResponse",
    "ProfileStore",
    "ProfileStoreMeta",
    "RecommendRequest",
    "RecommendResponse",
    "RequestRecord",
    "Role",
    "RouteRule",
    "ScoreRequest",
    "ScoreResponse",
    "ScoringEngine",
    "ScoringService",
    "ServedModel",
    "ServingSettings",
    "StartupError",
    "StoreFormat",
    "StoredEntry",
    "Verification",
    "build_profile_store",
    "check_cpr",
    "contains_cpr",
    "cpr_birth_date",
    "default_profile_store",
    "default_store_url",
    "export_audit_log",
    "format_value",
    "load_served_model",
    "match_route",
    "open_database",
    "pick_language",
]


def __getattr__(name: str) -> Any:
    if name == "ScoringService":
        from overblik.serving._service import ScoringService

        return ScoringService
    raise AttributeError(f"module 'overblik.serving' has no attribute {name!r}")
