"""Feature specs: the typed ``features:`` section of an experiment file, and its expansion.

The section is a list of *blocks*. What a block is follows from its keys:

- ``source: <silo>`` (children_families, employment, health, schools, economy, digital):
  an **event block**: per event type x window x aggregation, events in
  ``[as_of - window, as_of)``. With ``household: true`` the same features are summed
  (count, sum), maxed (max) or taken as the most recent (days_since_last) over the *other*
  members of the person's household living in the municipality at ``as_of``.
- ``source: <silo>`` with a ``spell:`` key: a **spell block** (e.g. benefit spells,
  placements, programmes): active at ``as_of``, days in the current spell, days on a
  spell in each window.
- ``source: cross_silo``: in how many siloes the person (and their household) has at least
  one event in each window.
- ``source: population``: register facts at ``as_of`` (household size, number of children in
  the household, years resident; age, sex, origin and disability only with
  ``sensitive: true`` -- protected attributes never enter X otherwise).

An experiment file's section looks like::

    features:
      - {source: children_families, event_types: [notification, investigation],
         windows_days: [90, 365, 1095], aggregations: [count, days_since_last]}
      - {source: economy, event_types: [rent_arrears], value: amount_dkk,
         windows_days: [365], aggregations: [count, sum, max], purpose: need}
      - {source: employment, spell: {start: benefit_start, end: [benefit_end, job_start]},
         windows_days: [365], aggregations: [spell_active, days_in_current_spell, days_on_spell]}
      - {source: cross_silo, windows_days: [365, 1095], household: true}
      - {source: children_families, household: true, event_types: [notification],
         windows_days: [365], aggregations: [count]}
      - {source: population, attributes: [household_size, household_children]}

``parse_feature_spec`` validates a loaded YAML value and raises :class:`InputError` naming
``features[<i>].<key>`` and the fix; ``expand`` turns a spec into the ordered list of
:class:`FeatureDef` (the column order of ``X``).

Conventions (also in the feature descriptions):

- ``days_since_last_<w>d`` is the time in days (fractional) since the most recent event in
  the window; when there is none it is ``w + 3650`` (:func:`no_event_days`) -- beyond any
  real value of that window, so trees split it off and the value never looks recent.
- ``mean``/``max``/``last`` of a value are 0 when the window has no event with a value (X
  never holds NaN); pair them with ``count`` to tell "none" from "zero".
- ``last`` is the value of the most recent event in the window (ties in time: the later row
  of the extract): a caseworker's latest assessment says more about now than a year's mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictInt,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from overblik.features._contracts import EVENT_SOURCES, SOURCE_BY_NAME, value_range
from overblik.features._errors import InputError

__all__ = [
    "CrossSiloBlock",
    "EventBlock",
    "FeatureDef",
    "FeatureSpec",
    "PopulationBlock",
    "SpellBlock",
    "SpellDef",
    "expand",
    "no_event_days",
    "parse_feature_spec",
    "required_columns",
]

SILO_NAMES: tuple[str, ...] = tuple(s.name for s in EVENT_SOURCES)
NO_EVENT_OFFSET_DAYS = 3650

EventAggregation = Literal["count", "sum", "mean", "max", "last", "days_since_last",
                           "distinct_event_types"]
SpellAggregation = Literal["spell_active", "days_in_current_spell", "days_on_spell"]
PopulationAttribute = Literal["household_size", "household_children", "years_resident",
                              "age_years", "sex_male", "disability", "origin_immigrant",
                              "origin_descendant"]
SENSITIVE_ATTRIBUTES: frozenset[str] = frozenset(
    {"age_years", "sex_male", "disability", "origin_immigrant", "origin_descendant"})
VALUE_AGGREGATIONS: frozenset[str] = frozenset({"sum", "mean", "max", "last"})
HOUSEHOLD_AGGREGATIONS: tuple[str, ...] = ("count", "sum", "max", "days_since_last")
# How a value aggregation reads in a feature's description (Danish, English).
_VALUE_WORDS: dict[str, tuple[str, str]] = {
    "sum": ("Samlet", "Total"), "mean": ("Gennemsnitligt", "Mean"),
    "max": ("Største", "Largest"), "last": ("Seneste", "Latest")}
_NAME = r"^[a-z][a-z0-9_]*$"

# Danish and English plural labels of every event code in the contracts (a test checks that
# none is missing): they make the feature descriptions read as sentences.
EVENT_LABELS: dict[str, dict[str, tuple[str, str]]] = {
    "children_families": {
        "notification": ("underretninger", "notifications of concern"),
        "investigation": ("børnefaglige undersøgelser", "child-welfare investigations"),
        "preventive_measure": ("forebyggende foranstaltninger", "preventive measures"),
        "placement_start": ("anbringelser uden for hjemmet", "out-of-home placements"),
        "placement_end": ("afsluttede anbringelser", "ended out-of-home placements"),
        "family_support_start": ("påbegyndte forløb med intensiv familiestøtte",
                                 "intensive family support starts"),
        "family_support_end": ("afsluttede forløb med intensiv familiestøtte",
                               "intensive family support ends"),
    },
    "employment": {
        "benefit_start": ("påbegyndte ydelsesforløb", "benefit spells started"),
        "benefit_end": ("afsluttede ydelsesforløb", "benefit spells ended"),
        "job_start": ("overgange til ordinært job", "starts in ordinary work"),
        "activation_start": ("aktiveringstilbud", "activation offers"),
        "mentor_start": ("påbegyndte mentorforløb", "mentor programme starts"),
        "mentor_end": ("afsluttede mentorforløb", "mentor programme ends"),
        "job_course_start": ("påbegyndte jobkurser", "job-training course starts"),
        "job_course_end": ("afsluttede jobkurser", "job-training course ends"),
    },
    "health": {
        "gp_contact": ("kontakter til egen læge", "contacts with the general practitioner"),
        "emergency_contact": ("skadestuekontakter", "emergency room contacts"),
        "hospital_admission": ("somatiske indlæggelser", "somatic hospital admissions"),
        "psychiatric_contact": ("ambulante psykiatriske kontakter",
                                "outpatient psychiatric contacts"),
        "psychiatric_admission": ("psykiatriske indlæggelser", "psychiatric admissions"),
        "substance_treatment": ("påbegyndte misbrugsbehandlinger",
                                "substance-abuse treatment starts"),
        "home_care": ("bevillinger af hjemmehjælp", "home care grants"),
    },
    "schools": {
        "absence": ("måneder med skolefravær", "months with school absence"),
        "grade": ("karakterer", "grades"),
        "school_change": ("skoleskift", "school changes"),
        "dropout": ("frafald fra ungdomsuddannelse", "dropouts from upper-secondary education"),
    },
    "economy": {
        "benefit_payment": ("ydelsesudbetalinger", "benefit payments"),
        "rent_arrears": ("huslejerestancer", "rent arrears notices"),
        "debt_collection": ("sager sendt til offentlig inddrivelse",
                            "debts sent to public debt collection"),
        "emergency_grant": ("akutte enkeltydelser", "emergency one-off grants"),
        "debt_counselling_start": ("påbegyndte gældsrådgivninger", "debt counselling starts"),
        "debt_counselling_end": ("afsluttede gældsrådgivninger", "debt counselling ends"),
    },
    "digital": {
        "app_signup": ("tilmeldinger til borgerapps", "sign-ups to citizen apps"),
        "app_engagement": ("måneder med aktiv brug af borgerapps",
                           "months of active use of citizen apps"),
        "self_report": ("selvrapporterede trivselsmålinger", "self-reported wellbeing scores"),
    },
}
SILO_LABELS: dict[str, tuple[str, str]] = {
    "children_families": ("børne- og familieområdet", "children & families"),
    "employment": ("jobcentret", "the job centre"),
    "health": ("sundhed og omsorg", "health and care"),
    "schools": ("skole og uddannelse", "schools and education"),
    "economy": ("økonomi", "economy"),
    "digital": ("digitale velfærdsløsninger", "digital welfare services"),
}
VALUE_LABELS: dict[str, tuple[str, str]] = {
    "amount_dkk": ("beløb i kr.", "amount in DKK"),
    "duration_days": ("varighed i dage", "duration in days"),
    "job_readiness": ("jobparathedskategori", "job-readiness category"),
    "hours": ("timer", "hours"),
    "days": ("fraværsdage", "absence days"),
    "grade": ("karakter", "grade"),
    "score": ("score (0-10)", "score (0-10)"),
}
VALUE_UNITS: dict[str, str] = {"amount_dkk": "dkk", "duration_days": "days", "hours": "hours",
                               "days": "days", "grade": "grade", "score": "score",
                               "job_readiness": "category"}
SPELL_LABELS: dict[str, tuple[str, str]] = {
    "benefit": ("ydelsesforløb", "benefit spell"),
    "placement": ("anbringelse uden for hjemmet", "out-of-home placement"),
    "family_support": ("forløb med intensiv familiestøtte", "intensive family support"),
    "mentor": ("mentorforløb", "mentor programme"),
    "job_course": ("jobkursus", "job-training course"),
    "debt_counselling": ("gældsrådgivning", "debt counselling"),
}
POPULATION_LABELS: dict[str, tuple[str, str, str]] = {
    "household_size": ("Antal personer i husstanden (inkl. borgeren), bosat i kommunen",
                       "Number of persons in the household (the citizen included) living in "
                       "the municipality", "count"),
    "household_children": ("Antal børn under 18 år i husstanden (inkl. borgeren), bosat i "
                           "kommunen", "Number of children under 18 in the household (the "
                           "citizen included) living in the municipality", "count"),
    "years_resident": ("År siden tilflytning til kommunen", "Years since moving into the "
                       "municipality", "years"),
    "age_years": ("Alder i hele år (følsom oplysning)", "Age in completed years (sensitive "
                  "attribute)", "years"),
    "sex_male": ("Mand (1) eller kvinde (0) (følsom oplysning)", "Male (1) or female (0) "
                 "(sensitive attribute)", "flag"),
    "disability": ("Registreret handicap (følsom oplysning)", "Registered disability "
                   "(sensitive attribute)", "flag"),
    "origin_immigrant": ("Indvandrer (følsom oplysning)", "Immigrant (sensitive attribute)",
                         "flag"),
    "origin_descendant": ("Efterkommer (følsom oplysning)", "Descendant of immigrants "
                          "(sensitive attribute)", "flag"),
}


def no_event_days(window_days: int) -> float:
    """The ``days_since_last`` value of a window without events: ``window + 3650``."""
    return float(window_days + NO_EVENT_OFFSET_DAYS)


def numeric_columns(source: str) -> tuple[str, ...]:
    """The numeric attribute columns of a silo's contract (values for sum/mean/max/last)."""
    schema = SOURCE_BY_NAME[source].model.to_schema()
    return tuple(name for name, col in schema.columns.items() if str(col.dtype) == "float64")


def _choices(values: Sequence[str]) -> str:
    return ", ".join(values)


def _unique(values: Sequence[Any], what: str) -> None:
    seen = [v for i, v in enumerate(values) if v in values[:i]]
    if seen:
        raise ValueError(f"{what} {seen[0]!r} is listed twice: list it once")


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EventBlock(_Block):
    """Per event type, window and aggregation over one silo's events.

    Attributes
    ----------
    source
        The silo.
    event_types
        Event codes of the silo (default: all of them).
    windows_days
        Look-back windows in days; events in ``[as_of - w, as_of)``.
    aggregations
        ``count``, ``sum``/``mean``/``max``/``last`` (of ``value``; ``last``: the most
        recent event's), ``days_since_last``,
        ``distinct_event_types`` (how many of the block's event types occurred).
    value
        A numeric column of the silo's contract (needed by sum/mean/max/last only).
    household
        Aggregate over the *other* household members (count, sum, max, days_since_last).
    purpose
        Purpose tag (default ``history``; ``household`` for household blocks).
    """

    # Field order matters: a validator sees the fields declared before it (info.data).
    source: str
    event_types: tuple[str, ...] | None = None
    household: bool = False
    windows_days: tuple[StrictInt, ...] = Field(min_length=1)
    aggregations: tuple[EventAggregation, ...] = Field(min_length=1)
    value: str | None = Field(default=None, validate_default=True)
    purpose: str | None = Field(default=None, pattern=_NAME)

    @field_validator("source")
    @classmethod
    def _silo(cls, v: str) -> str:
        if v not in SILO_NAMES:
            raise ValueError(f"{v!r} is not a source; choose from {_choices(SILO_NAMES)}, "
                             "cross_silo or population")
        return v

    @field_validator("event_types")
    @classmethod
    def _codes(cls, v: tuple[str, ...] | None, info: ValidationInfo) -> tuple[str, ...] | None:
        source = info.data.get("source")  # absent when the source itself failed
        if v is None or source is None:
            return v
        if not v:
            raise ValueError("is empty: list event types or leave the key out for all")
        codes = list(SOURCE_BY_NAME[source].event_codes)
        for code in v:
            if code not in codes:
                raise ValueError(f"{code!r} is not an event of {source}; choose from "
                                 f"{_choices(codes)}")
        _unique(v, "event type")
        return v

    @field_validator("windows_days")
    @classmethod
    def _windows(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        return _check_windows(v)

    @field_validator("aggregations")
    @classmethod
    def _aggs(cls, v: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        _unique(v, "aggregation")
        if info.data.get("household"):
            bad = [a for a in v if a not in HOUSEHOLD_AGGREGATIONS]
            if bad:
                raise ValueError(f"household blocks aggregate {_choices(HOUSEHOLD_AGGREGATIONS)}"
                                 f" over the other members; remove {_choices(bad)}")
        return v

    @field_validator("value")
    @classmethod
    def _value(cls, v: str | None, info: ValidationInfo) -> str | None:
        source, aggs = info.data.get("source"), info.data.get("aggregations")
        if source is None or aggs is None:
            return v
        numeric = numeric_columns(source)
        wants_value = sorted(VALUE_AGGREGATIONS.intersection(aggs))
        if v is None:
            if wants_value:
                raise ValueError(f"is missing: {_choices(wants_value)} need(s) a value; add "
                                 f"value: <one of {_choices(numeric)}>")
            return v
        if v not in numeric:
            raise ValueError(f"{v!r} is not a numeric column of {source}; choose from "
                             f"{_choices(numeric)}")
        if not wants_value:
            raise ValueError(f"{v!r} is only used by sum, mean, max or last: add one of them to "
                             "aggregations or remove value")
        return v

    @property
    def types(self) -> tuple[str, ...]:
        """The event types of the block (all of the silo's when none are listed)."""
        return self.event_types or tuple(SOURCE_BY_NAME[self.source].event_codes)

    @property
    def purpose_tag(self) -> str:
        return self.purpose or ("household" if self.household else "history")


class SpellDef(_Block):
    """A spell: opened by ``start`` events, closed by any of the ``end`` events.

    A start while a spell is open continues that spell; an end with no open spell is
    ignored. ``name`` defaults to the start code without ``_start``.
    """

    start: str
    end: tuple[str, ...] = Field(min_length=1)
    name: str | None = Field(default=None, pattern=_NAME)

    @field_validator("end", mode="before")
    @classmethod
    def _one_or_many(cls, v: object) -> object:
        return [v] if isinstance(v, str) else v

    @property
    def spell_name(self) -> str:
        return self.name or self.start.removesuffix("_start")


class SpellBlock(_Block):
    """Spell state at ``as_of`` and time on the spell per window.

    Aggregations: ``spell_active`` (1/0), ``days_in_current_spell`` (0 when none),
    ``days_on_spell`` (days in ``[as_of - w, as_of)`` covered by a spell; needs windows).
    """

    source: str
    spell: SpellDef
    aggregations: tuple[SpellAggregation, ...] = Field(min_length=1)
    windows_days: tuple[StrictInt, ...] = Field(default=(), validate_default=True)
    purpose: str = Field(default="history", pattern=_NAME)

    @field_validator("source")
    @classmethod
    def _silo(cls, v: str) -> str:
        return EventBlock._silo(v)

    @field_validator("spell")
    @classmethod
    def _codes(cls, v: SpellDef, info: ValidationInfo) -> SpellDef:
        source = info.data.get("source")
        if source is None:
            return v
        codes = list(SOURCE_BY_NAME[source].event_codes)
        for code in (v.start, *v.end):
            if code not in codes:
                raise ValueError(f"{code!r} is not an event of {source}; choose from "
                                 f"{_choices(codes)}")
        if v.start in v.end:
            raise ValueError(f"{v.start!r} cannot both start and end the spell")
        return v

    @field_validator("aggregations")
    @classmethod
    def _aggs(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        _unique(v, "aggregation")
        return v

    @field_validator("windows_days")
    @classmethod
    def _windows(cls, v: tuple[int, ...], info: ValidationInfo) -> tuple[int, ...]:
        aggs = info.data.get("aggregations")
        if aggs is None:
            return v
        if "days_on_spell" in aggs and not v:
            raise ValueError("is missing: days_on_spell needs windows, e.g. windows_days: [365]")
        if v and "days_on_spell" not in aggs:
            raise ValueError("is only used by days_on_spell: add it to aggregations or remove "
                             "windows_days")
        return _check_windows(v) if v else v


class CrossSiloBlock(_Block):
    """In how many siloes the person (and with ``household``, anyone in their household
    living in the municipality, the person included) has an event in each window."""

    source: Literal["cross_silo"]
    windows_days: tuple[StrictInt, ...] = Field(min_length=1)
    household: bool = True
    sources: tuple[str, ...] = SILO_NAMES
    purpose: str = Field(default="need", pattern=_NAME)

    @field_validator("windows_days")
    @classmethod
    def _windows(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        return _check_windows(v)

    @field_validator("sources")
    @classmethod
    def _sources(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        for s in v:
            if s not in SILO_NAMES:
                raise ValueError(f"{s!r} is not a silo; choose from {_choices(SILO_NAMES)}")
        if not v:
            raise ValueError("is empty: list siloes or leave the key out for all")
        _unique(v, "source")
        return v


class PopulationBlock(_Block):
    """Register facts at ``as_of``. Protected attributes need ``sensitive: true``."""

    source: Literal["population"]
    sensitive: bool = False
    attributes: tuple[PopulationAttribute, ...] = Field(min_length=1)
    purpose: str = Field(default="demographic", pattern=_NAME)

    @field_validator("attributes")
    @classmethod
    def _attrs(cls, v: tuple[str, ...], info: ValidationInfo) -> tuple[str, ...]:
        _unique(v, "attribute")
        protected = [a for a in v if a in SENSITIVE_ATTRIBUTES]
        if protected and not info.data.get("sensitive", False):
            raise ValueError(
                f"{_choices(protected)}: protected attributes are kept apart from model "
                "inputs; remove them, or set sensitive: true on this block to use them as "
                "inputs (the report then shows it)")
        return v


def _check_windows(v: tuple[int, ...]) -> tuple[int, ...]:
    for w in v:
        if w <= 0:
            raise ValueError(f"window {w} must be a positive number of days, e.g. 365")
    _unique(v, "window")
    return v


def _block_kind(raw: Any) -> str | None:
    """Which block model a raw mapping (or a model) is, from its ``source`` and keys."""
    if isinstance(raw, _Block):
        return {EventBlock: "event", SpellBlock: "spell", CrossSiloBlock: "cross_silo",
                PopulationBlock: "population"}.get(type(raw))
    if not isinstance(raw, dict):
        return None
    source = raw.get("source")
    if source in ("cross_silo", "population"):
        return str(source)
    return "spell" if "spell" in raw else "event"


Block = Annotated[
    Annotated[EventBlock, Tag("event")]
    | Annotated[SpellBlock, Tag("spell")]
    | Annotated[CrossSiloBlock, Tag("cross_silo")]
    | Annotated[PopulationBlock, Tag("population")],
    Discriminator(_block_kind, custom_error_type="block",
                  custom_error_message="a block is a mapping with a source key"),
]


class FeatureSpec(BaseModel):
    """The ``features:`` section of an experiment file: an ordered list of blocks."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    blocks: tuple[Block, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> FeatureSpec:
        first: dict[str, int] = {}
        for i, block in enumerate(self.blocks):
            for f in _expand_block(block):
                if f.name in first and first[f.name] != i:
                    raise ValueError(f"[{i}] makes feature {f.name!r}, as [{first[f.name]}] "
                                     "does already: remove it from one of the two blocks")
                first.setdefault(f.name, i)
        return self


@dataclass(frozen=True)
class FeatureDef:
    """One column of ``X``: its name, descriptions, source, purpose and unit.

    ``low``/``high`` bound the values a profile can hold where the source contract bounds
    them (e.g. a mean grade from -3 to 12); None: only the unit's own rule (a count is a whole
    number from 0). Versions trained before they existed have None.
    """

    name: str
    description_da: str
    description_en: str
    source: str
    purpose: str
    unit: str
    low: float | None = None
    high: float | None = None


def _value_bounds(source: str, value: str, aggregation: str
                  ) -> tuple[float | None, float | None]:
    """What an aggregation of a contract-bounded value can be: a mean, maximum or latest
    value lies within the value's range or is 0 (no event); a sum is only as bounded as the
    sign of the values."""
    bounds = value_range(source, value)
    if bounds is None:
        return None, None
    low, high = bounds
    if aggregation == "sum":
        return (0.0 if low >= 0 else None), None
    return min(low, 0.0), max(high, 0.0)


_KIND_TAGS = frozenset({"event", "spell", "cross_silo", "population"})


def _location(section: str, loc: Sequence[int | str]) -> str:
    """``features[2].event_types`` from a pydantic location (dropping the union tag)."""
    parts = list(loc)
    if parts and parts[0] == "blocks":
        parts = parts[1:]
    out = section
    for i, item in enumerate(parts):
        if i == 1 and isinstance(item, str) and item in _KIND_TAGS:
            continue
        out += f"[{item}]" if isinstance(item, int) else f".{item}"
    return out


def parse_feature_spec(raw: object, section: str = "features") -> FeatureSpec:
    """Validate the ``features:`` section of an experiment file.

    Parameters
    ----------
    raw
        The loaded YAML value: a list of blocks (or ``{"blocks": [...]}``, or a spec).
    section
        The section's name, used in error messages.

    Raises
    ------
    InputError
        One line per problem, each naming ``<section>[<i>].<key>`` and the fix.
    """
    if isinstance(raw, FeatureSpec):
        return raw
    if isinstance(raw, dict) and set(raw) == {"blocks"}:
        raw = raw["blocks"]
    if not isinstance(raw, list | tuple) or not raw:
        raise InputError(f"{section}: give a non-empty list of feature blocks, e.g. "
                         "- {source: children_families, event_types: [notification], "
                         "windows_days: [365], aggregations: [count]}")
    try:
        return FeatureSpec.model_validate({"blocks": list(raw)})
    except ValidationError as exc:
        errors = exc.errors()
        lines = []
        for err in errors:
            loc = tuple(err["loc"])
            # pydantic also calls a list "too short" when its only items failed: say it once.
            if err["type"] == "too_short" and any(
                    tuple(e["loc"])[: len(loc)] == loc and len(e["loc"]) > len(loc)
                    for e in errors):
                continue
            where = _location(section, loc)
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "missing":
                msg = "is missing: add it"
            elif err["type"] == "extra_forbidden":
                msg = "is not a known key of this block: remove it or check its spelling"
            elif err["type"] == "literal_error":
                expected = str(err.get("ctx", {}).get("expected", "")).replace("'", "")
                msg = f"{err['input']!r} is not known; choose from {expected}"
            lines.append(f"{where}{msg}" if msg.startswith("[") else f"{where}: {msg}")
        raise InputError("; ".join(lines)) from None


# --- expansion ---------------------------------------------------------------------------
def _event_features(b: EventBlock) -> list[FeatureDef]:
    silo_da, silo_en = SILO_LABELS[b.source]
    prefix, on_da, on_en = "", "", ""
    if b.household:
        prefix = "household__"
        on_da, on_en = " hos andre i husstanden", " on other household members"
    out: list[FeatureDef] = []
    purpose = b.purpose_tag
    for code in b.types:
        da, en = EVENT_LABELS[b.source][code]
        for w in b.windows_days:
            when_da, when_en = f"de seneste {w} dage", f"in the last {w} days"
            for agg in b.aggregations:
                base = f"{prefix}{b.source}__{code}__"
                if agg == "count":
                    out.append(FeatureDef(f"{base}count_{w}d", f"Antal {da}{on_da} {when_da}",
                                          f"Number of {en}{on_en} {when_en}", b.source,
                                          purpose, "count"))
                elif agg == "days_since_last":
                    s = int(no_event_days(w))
                    out.append(FeatureDef(
                        f"{base}days_since_last_{w}d",
                        f"Dage siden seneste hændelse blandt {da}{on_da} {when_da} "
                        f"({s} hvis ingen)",
                        f"Days since the most recent of the {en}{on_en} {when_en} "
                        f"({s} if none)", b.source, purpose, "days"))
                elif agg in VALUE_AGGREGATIONS:
                    assert b.value is not None  # checked by the model
                    vda, ven = VALUE_LABELS.get(b.value, (b.value, b.value))
                    word_da, word_en = _VALUE_WORDS[agg]
                    none = " (0 hvis ingen)" if agg != "sum" else ""
                    none_en = " (0 if none)" if agg != "sum" else ""
                    out.append(FeatureDef(
                        f"{base}{b.value}_{agg}_{w}d",
                        f"{word_da} {vda} for {da}{on_da} {when_da}{none}",
                        f"{word_en} {ven} of {en}{on_en} {when_en}{none_en}", b.source,
                        purpose, VALUE_UNITS.get(b.value, "value"),
                        *_value_bounds(b.source, b.value, agg)))
    if "distinct_event_types" in b.aggregations:
        for w in b.windows_days:
            out.append(FeatureDef(
                f"{b.source}__distinct_event_types_{w}d",
                f"Antal forskellige hændelsestyper i {silo_da} de seneste {w} dage",
                f"Number of distinct event types in {silo_en} in the last {w} days",
                b.source, purpose, "count"))
    return out


def _spell_features(b: SpellBlock) -> list[FeatureDef]:
    name = b.spell.spell_name
    da, en = SPELL_LABELS.get(name, (f"forløb ({name})", f"{name} spell"))
    how = f"{b.spell.start} -> {'/'.join(b.spell.end)}"
    base = f"{b.source}__{name}_spell__"
    out: list[FeatureDef] = []
    for agg in b.aggregations:
        if agg == "spell_active":
            out.append(FeatureDef(f"{base}active", f"I igangværende {da} på opgørelsesdagen "
                                  f"(1/0; {how})", f"On an ongoing {en} at the as-of date "
                                  f"(1/0; {how})", b.source, b.purpose, "flag"))
        elif agg == "days_in_current_spell":
            out.append(FeatureDef(f"{base}days_in_current", f"Dage i det igangværende {da} "
                                  "(0 hvis intet)", f"Days in the ongoing {en} (0 if none)",
                                  b.source, b.purpose, "days"))
        else:
            out.extend(FeatureDef(f"{base}days_on_{w}d", f"Dage i {da} de seneste {w} dage",
                                  f"Days on a {en} in the last {w} days", b.source, b.purpose,
                                  "days") for w in b.windows_days)
    return out


def _cross_silo_features(b: CrossSiloBlock) -> list[FeatureDef]:
    n = len(b.sources)
    scope = "" if n == len(SILO_NAMES) else f" (af {', '.join(b.sources)})"
    scope_en = "" if n == len(SILO_NAMES) else f" (of {', '.join(b.sources)})"
    suffix = "" if n == len(SILO_NAMES) else "_of_" + "_".join(b.sources)
    out: list[FeatureDef] = []
    for w in b.windows_days:
        out.append(FeatureDef(
            f"cross_silo__silos_known{suffix}_{w}d",
            f"Antal forvaltninger{scope} med mindst én hændelse for borgeren de seneste {w} "
            "dage", f"Number of siloes{scope_en} with at least one event on the citizen in "
            f"the last {w} days", "cross_silo", b.purpose, "count"))
        if b.household:
            out.append(FeatureDef(
                f"cross_silo__household_silos_known{suffix}_{w}d",
                f"Antal forvaltninger{scope} med mindst én hændelse for borgeren eller en anden "
                f"i husstanden de seneste {w} dage", f"Number of siloes{scope_en} with at least "
                f"one event on the citizen or another household member in the last {w} days",
                "cross_silo", b.purpose, "count"))
    return out


def _population_features(b: PopulationBlock) -> list[FeatureDef]:
    out = []
    for a in b.attributes:
        da, en, unit = POPULATION_LABELS[a]
        out.append(FeatureDef(f"population__{a}", da, en, "population", b.purpose, unit))
    return out


def _expand_block(block: EventBlock | SpellBlock | CrossSiloBlock | PopulationBlock,
                  ) -> list[FeatureDef]:
    if isinstance(block, EventBlock):
        return _event_features(block)
    if isinstance(block, SpellBlock):
        return _spell_features(block)
    if isinstance(block, CrossSiloBlock):
        return _cross_silo_features(block)
    return _population_features(block)


def expand(spec: FeatureSpec) -> list[FeatureDef]:
    """The features of a spec, in the column order of ``X`` (blocks in order; within an
    event block: event type, window, aggregation; distinct_event_types last)."""
    return [f for block in spec.blocks for f in _expand_block(block)]


def required_columns(spec: FeatureSpec) -> dict[str, list[str]]:
    """Per silo, the columns the spec reads (to load only those)."""
    need: dict[str, set[str]] = {}
    for block in spec.blocks:
        if isinstance(block, EventBlock | SpellBlock):
            cols = need.setdefault(block.source, set())
            if isinstance(block, EventBlock) and block.value:
                cols.add(block.value)
        elif isinstance(block, CrossSiloBlock):
            for s in block.sources:
                need.setdefault(s, set())
    base = ["person_id", "event_time", "event_type"]
    return {s: base + sorted(c) for s, c in need.items()}
