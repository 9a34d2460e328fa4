"""Source contracts: one pandera model per source extract, with documented code lists.

Every extract a municipality delivers (or the synthetic municipality writes) is described
here once. Ingest validates against these models; the generator writes to them; the README
documents them from the same objects (``contract_table``).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

# CPR: DDMMYY-SSSS. The date part is checked for validity separately (a regex cannot).
CPR_PATTERN = r"^[0-3]\d[01]\d\d{2}-\d{4}$"

# Column metadata keys. PSEUDONYMISED: a text identifier other than the CPR number (which may
# hold anything, a name or an address by mistake): ingest replaces every value by its keyed
# pseudonym, so only equality survives. NOT_BEFORE: the column a date must not precede.
PSEUDONYMISED = "pseudonymised"
NOT_BEFORE = "not_before"

SEX_CODES: tuple[str, ...] = ("F", "M")
ORIGIN_CODES: tuple[str, ...] = ("danish", "immigrant", "descendant")
# The clean folder's format, in its ingest_report.json. /2: household ids are written as
# their keyed pseudonym (/1 wrote the municipality's raw household ids), so a /1 folder must
# be ingested again before anything reads it.
INGEST_FORMAT = "overblik-ingest-report/2"
INGEST_FORMAT_FAMILY = "overblik-ingest-report/"

DISTRICT_CODES: tuple[str, ...] = tuple(f"D{i:02d}" for i in range(1, 13))

CHILDREN_FAMILIES_EVENTS: dict[str, str] = {
    "notification": "underretning: a notification of concern about a child",
    "investigation": "børnefaglig undersøgelse: a child-welfare investigation opened",
    "preventive_measure": "forebyggende foranstaltning: a preventive measure started",
    "placement_start": "anbringelse: out-of-home placement of a child starts",
    "placement_end": "out-of-home placement ends",
    "family_support_start": "programme: intensive family support starts",
    "family_support_end": "programme: intensive family support ends",
}
REPORTER_CODES: tuple[str, ...] = ("school", "health", "police", "daycare", "family", "other")

EMPLOYMENT_EVENTS: dict[str, str] = {
    "benefit_start": "a public benefit spell starts (benefit_type says which)",
    "benefit_end": "a public benefit spell ends",
    "job_start": "the citizen starts ordinary work (often ends a spell)",
    "activation_start": "an ordinary activation offer starts",
    "mentor_start": "programme: mentor programme starts",
    "mentor_end": "programme: mentor programme ends",
    "job_course_start": "programme: job-training course starts",
    "job_course_end": "programme: job-training course ends",
}
BENEFIT_TYPES: tuple[str, ...] = (
    "unemployment_insurance",
    "cash_benefit",
    "education_benefit",
    "sickness_benefit",
)
JOB_READINESS: tuple[int, ...] = (1, 2, 3)  # 1 job-ready, 2 activity-ready, 3 resource course

HEALTH_EVENTS: dict[str, str] = {
    "gp_contact": "contact with the general practitioner",
    "emergency_contact": "emergency room contact",
    "hospital_admission": "somatic hospital admission",
    "psychiatric_contact": "outpatient psychiatric contact",
    "psychiatric_admission": "psychiatric admission",
    "substance_treatment": "substance-abuse treatment starts",
    "home_care": "home care hours granted",
}

SCHOOL_EVENTS: dict[str, str] = {
    "absence": "school absence in a month (days)",
    "grade": "a grade on the Danish 7-point scale",
    "school_change": "the pupil changes school",
    "dropout": "dropout from upper-secondary education",
}
GRADES: tuple[int, ...] = (-3, 0, 2, 4, 7, 10, 12)

ECONOMY_EVENTS: dict[str, str] = {
    "benefit_payment": "a monthly benefit payment (amount_dkk)",
    "rent_arrears": "rent arrears notice (amount_dkk owed)",
    "debt_collection": "debt sent to public debt collection (amount_dkk)",
    "emergency_grant": "emergency one-off grant (amount_dkk)",
    "debt_counselling_start": "programme: debt counselling starts",
    "debt_counselling_end": "programme: debt counselling ends",
}

DIGITAL_EVENTS: dict[str, str] = {
    "app_signup": "signs up to a citizen-facing app",
    "app_engagement": "active use of a citizen-facing app in a month",
    "self_report": "a self-reported wellbeing score (0-10)",
}
APP_CODES: tuple[str, ...] = ("mitoverblik", "sundhed", "jobnet")


class Population(pa.DataFrameModel):
    """Population register (CPR register extract): one row per person."""

    cpr: Series[str] = pa.Field(str_matches=CPR_PATTERN, description="CPR number DDMMYY-SSSS")
    birth_date: Series[pd.Timestamp] = pa.Field(description="date of birth")
    sex: Series[str] = pa.Field(isin=SEX_CODES, description="F or M")
    district: Series[str] = pa.Field(isin=DISTRICT_CODES, description="district code D01-D12")
    # An identifier of free form: ingest writes only its keyed pseudonym (see PSEUDONYMISED).
    household_id: Series[str] = pa.Field(str_length={"min_value": 1}, description="household",
                                         metadata={PSEUDONYMISED: True})
    origin: Series[str] = pa.Field(isin=ORIGIN_CODES, description="Danish origin/immigrant/desc.")
    disability: Series[bool] = pa.Field(description="registered disability")
    move_in_date: Series[pd.Timestamp] = pa.Field(description="moved into the municipality")
    move_out_date: Series[pd.Timestamp] = pa.Field(nullable=True, description="moved out",
                                                   metadata={NOT_BEFORE: "move_in_date"})
    death_date: Series[pd.Timestamp] = pa.Field(nullable=True, description="date of death",
                                                metadata={NOT_BEFORE: "move_in_date"})

    class Config:
        strict = True
        coerce = True


class _Event(pa.DataFrameModel):
    """Columns shared by every silo's events table."""

    cpr: Series[str] = pa.Field(str_matches=CPR_PATTERN, description="CPR number DDMMYY-SSSS")
    event_time: Series[pd.Timestamp] = pa.Field(description="when the event happened")

    class Config:
        strict = True
        coerce = True


class ChildrenFamiliesEvents(_Event):
    """Children & families (social services)."""

    event_type: Series[str] = pa.Field(isin=list(CHILDREN_FAMILIES_EVENTS))
    reporter: Series[str] = pa.Field(isin=REPORTER_CODES, nullable=True)
    duration_days: Series[float] = pa.Field(ge=0, le=7000, nullable=True)


class EmploymentEvents(_Event):
    """Employment (job centre)."""

    event_type: Series[str] = pa.Field(isin=list(EMPLOYMENT_EVENTS))
    benefit_type: Series[str] = pa.Field(isin=BENEFIT_TYPES, nullable=True)
    job_readiness: Series[float] = pa.Field(isin=[float(x) for x in JOB_READINESS], nullable=True)
    duration_days: Series[float] = pa.Field(ge=0, le=7000, nullable=True)


class HealthEvents(_Event):
    """Health and care."""

    event_type: Series[str] = pa.Field(isin=list(HEALTH_EVENTS))
    duration_days: Series[float] = pa.Field(ge=0, le=3650, nullable=True)
    hours: Series[float] = pa.Field(ge=0, le=744, nullable=True)


class SchoolEvents(_Event):
    """Schools and education."""

    event_type: Series[str] = pa.Field(isin=list(SCHOOL_EVENTS))
    days: Series[float] = pa.Field(ge=0, le=31, nullable=True)
    grade: Series[float] = pa.Field(isin=[float(g) for g in GRADES], nullable=True)


class EconomyEvents(_Event):
    """Economy (payments, arrears, debt)."""

    event_type: Series[str] = pa.Field(isin=list(ECONOMY_EVENTS))
    amount_dkk: Series[float] = pa.Field(ge=0, le=10_000_000, nullable=True)


class DigitalEvents(_Event):
    """Digital welfare services."""

    event_type: Series[str] = pa.Field(isin=list(DIGITAL_EVENTS))
    app: Series[str] = pa.Field(isin=APP_CODES, nullable=True)
    score: Series[float] = pa.Field(ge=0, le=10, nullable=True)


@dataclass(frozen=True)
class Source:
    """One source extract: its file stem, contract and event code list."""

    name: str
    model: type[pa.DataFrameModel]
    event_codes: dict[str, str]
    description: str

    @property
    def is_register(self) -> bool:
        return self.name == "population"

    @property
    def columns(self) -> list[str]:
        return list(self.model.to_schema().columns)

    @property
    def identifiers(self) -> list[str]:
        """Columns written only as keyed pseudonyms (besides ``cpr``)."""
        return [name for name, col in self.model.to_schema().columns.items()
                if (col.metadata or {}).get(PSEUDONYMISED)]


POPULATION = Source("population", Population, {}, "population register")
SOURCES: tuple[Source, ...] = (
    POPULATION,
    Source("children_families", ChildrenFamiliesEvents, CHILDREN_FAMILIES_EVENTS,
           "children & families (social services)"),
    Source("employment", EmploymentEvents, EMPLOYMENT_EVENTS, "employment (job centre)"),
    Source("health", HealthEvents, HEALTH_EVENTS, "health and care"),
    Source("schools", SchoolEvents, SCHOOL_EVENTS, "schools and education"),
    Source("economy", EconomyEvents, ECONOMY_EVENTS, "economy"),
    Source("digital", DigitalEvents, DIGITAL_EVENTS, "digital welfare services"),
)
SOURCE_BY_NAME: dict[str, Source] = {s.name: s for s in SOURCES}
EVENT_SOURCES: tuple[Source, ...] = tuple(s for s in SOURCES if not s.is_register)


def value_range(source: str, column: str) -> tuple[float, float] | None:
    """The smallest and largest value the contract allows in a numeric column of a source
    (its bounds or code list), None when it sets no bound on both sides."""
    col = SOURCE_BY_NAME[source].model.to_schema().columns[column]
    low: float | None = None
    high: float | None = None
    for check in col.checks:
        stats = check.statistics or {}
        if "allowed_values" in stats:
            values = [float(v) for v in stats["allowed_values"]]
            low, high = min(values), max(values)
        low = float(stats["min_value"]) if "min_value" in stats else low
        high = float(stats["max_value"]) if "max_value" in stats else high
    return None if low is None or high is None else (low, high)


def contract_table(source: Source) -> pd.DataFrame:
    """One row per column of a source: name, type, nullable, checks (for the README)."""
    schema = source.model.to_schema()
    rows = []
    for name, col in schema.columns.items():
        checks = "; ".join(str(c) for c in col.checks)
        rows.append({"column": name, "dtype": str(col.dtype), "nullable": col.nullable,
                     "checks": checks})
    return pd.DataFrame(rows)


_READABLE_DTYPES = {"string[pyarrow]": "text", "str": "text", "datetime64[ns]": "date/time",
                    "float64": "number", "bool": "true/false"}


def contracts_markdown() -> str:
    """The source contracts as Markdown (the README embeds this; a test keeps them in step)."""
    parts: list[str] = []
    for source in SOURCES:
        parts.append(f"#### `{source.name}` — {source.description}\n")
        parts.append("| column | type | nullable | rule |\n| --- | --- | --- | --- |")
        schema = source.model.to_schema()
        for name, col in schema.columns.items():
            rules = []
            for check in col.checks:
                stats = check.statistics or {}
                if "allowed_values" in stats:
                    rules.append("one of the event codes below" if name == "event_type" else
                                 "one of " + ", ".join(f"`{v}`" for v in stats["allowed_values"]))
                elif "pattern" in stats:
                    rules.append(f"matches `{stats['pattern']}`")
                elif check.name == "greater_than_or_equal_to":
                    rules.append(f"≥ {stats['min_value']}")
                elif check.name == "less_than_or_equal_to":
                    rules.append(f"≤ {stats['max_value']}")
                elif check.name == "str_length":
                    rules.append("not empty")
                else:
                    rules.append(str(check.name))
            meta = col.metadata or {}
            if meta.get(NOT_BEFORE):
                rules.append(f"not before `{meta[NOT_BEFORE]}`")
            if meta.get(PSEUDONYMISED):
                rules.append("written as a keyed pseudonym")
            rule = ", ".join(rules) or "—"
            dtype = _READABLE_DTYPES.get(str(col.dtype), str(col.dtype))
            parts.append(f"| `{name}` | {dtype} | {'yes' if col.nullable else 'no'} | {rule} |")
        if source.event_codes:
            parts.append("\n| event_type | meaning |\n| --- | --- |")
            parts.extend(f"| `{code}` | {text} |" for code, text in source.event_codes.items())
        parts.append("")
    return "\n".join(parts)
