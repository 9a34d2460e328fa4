"""Source contracts, ingestion (validation, pseudonymisation, quarantine) and the synthetic
municipality."""

from overblik.features._cohorts import CohortName, OutcomeName, cohort, label, label_window_end
from overblik.features._contracts import (
    EVENT_SOURCES,
    POPULATION,
    SOURCE_BY_NAME,
    SOURCES,
    Source,
    contracts_markdown,
)
from overblik.features._errors import InputError
from overblik.features._feature_spec import (
    FeatureDef,
    FeatureSpec,
    expand,
    parse_feature_spec,
    required_columns,
)
from overblik.features._ingest import IngestReport, SourceReport, ingest
from overblik.features._profiles import Profiles, build_profiles
from overblik.features._pseudonym import (
    MissingKeyError,
    PseudonymKey,
    demo_key,
    load_key,
    pseudonymise,
)
from overblik.features._summary import CleanSummary, summarise_clean
from overblik.features._synthetic import PROGRAMMES, Manifest, Programme, SyntheticConfig
from overblik.features._synthetic import generate as generate_municipality
from overblik.features._tables import EventTables

__all__ = [
    "EVENT_SOURCES",
    "POPULATION",
    "PROGRAMMES",
    "SOURCES",
    "SOURCE_BY_NAME",
    "CleanSummary",
    "CohortName",
    "EventTables",
    "FeatureDef",
    "FeatureSpec",
    "IngestReport",
    "InputError",
    "Manifest",
    "MissingKeyError",
    "OutcomeName",
    "Profiles",
    "Programme",
    "PseudonymKey",
    "Source",
    "SourceReport",
    "SyntheticConfig",
    "build_profiles",
    "cohort",
    "contracts_markdown",
    "demo_key",
    "expand",
    "generate_municipality",
    "ingest",
    "label",
    "label_window_end",
    "load_key",
    "parse_feature_spec",
    "pseudonymise",
    "required_columns",
    "summarise_clean",
]
