"""Source contracts, ingestion (validation, pseudonymisation, quarantine) and the synthetic
municipality."""

from overblik.features._contracts import (
    EVENT_SOURCES,
    POPULATION,
    SOURCE_BY_NAME,
    SOURCES,
    Source,
    contracts_markdown,
)
from overblik.features._errors import InputError
from overblik.features._ingest import IngestReport, SourceReport, ingest
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

__all__ = [
    "EVENT_SOURCES",
    "POPULATION",
    "PROGRAMMES",
    "SOURCES",
    "SOURCE_BY_NAME",
    "CleanSummary",
    "IngestReport",
    "InputError",
    "Manifest",
    "MissingKeyError",
    "Programme",
    "PseudonymKey",
    "Source",
    "SourceReport",
    "SyntheticConfig",
    "contracts_markdown",
    "demo_key",
    "generate_municipality",
    "ingest",
    "load_key",
    "pseudonymise",
    "summarise_clean",
]
