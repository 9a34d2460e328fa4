"""Experiment files: one typed, validated, hashed config for a whole run.

An experiment file (YAML) names the cohort, the outcome and its horizon, the as-of dates,
the features, the models, the capacity k and the sensitive attributes. It is validated up
front: an error names the file, the section and the key, and says how to fix it.
"""

from __future__ import annotations

import hashlib
import json
from datetime import date
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from overblik.features._errors import InputError
from overblik.models._allocation import MAX_BUDGET, MAX_COST, MAX_PLACES

CohortName = Literal["children_in_families", "adults_on_benefit"]
OutcomeName = Literal["child_placement", "long_term_benefit"]
SensitiveName = Literal["sex", "age_band", "origin", "district", "disability"]
MitigationCriterion = Literal["demographic_parity", "equalized_odds",
                              "true_positive_rate_parity"]
MitigationMethod = Literal["threshold_optimizer", "exponentiated_gradient"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LabelConfig(_Section):
    """The outcome and the horizon after the as-of date in which it must happen."""

    outcome: OutcomeName
    horizon_days: int = Field(gt=0, le=3 * 366)


class AsOfConfig(_Section):
    """A regular grid of as-of dates (first day of a month).

    ``accept_short_history`` records the analyst's decision to train on as-of dates whose
    longest feature window reaches back before the data begins (more training dates, less
    history at them); without it ``overblik train`` warns about those dates.
    """

    start: date
    end: date
    every_months: int = Field(default=3, gt=0, le=24)
    accept_short_history: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> AsOfConfig:
        if self.end < self.start:
            raise ValueError(f"end {self.end} is before start {self.start}")
        if self.start.day != 1:
            raise ValueError(f"start {self.start} must be the first day of a month")
        return self

    def dates(self) -> list[pd.Timestamp]:
        """The as-of dates of the grid, oldest first."""
        freq = f"{self.every_months}MS"
        return list(pd.date_range(self.start, self.end, freq=freq))


class LightGBMConfig(_Section):
    """Hyper-parameters of the LightGBM risk model."""

    n_estimators: int = Field(default=400, gt=0, le=10_000)
    learning_rate: float = Field(default=0.03, gt=0, le=1)
    num_leaves: int = Field(default=31, ge=2, le=4096)
    min_child_samples: int = Field(default=50, ge=1)
    calibration: Literal["isotonic", "sigmoid", "none"] = "isotonic"


class LogisticConfig(_Section):
    """The logistic-regression baseline."""

    C: float = Field(default=1.0, gt=0)


class HeuristicConfig(_Section):
    """The one-line baseline: the score is one feature's value."""

    column: str


class ModelsConfig(_Section):
    """The models trained and compared; LightGBM is the one registered."""

    lightgbm: LightGBMConfig = LightGBMConfig()
    logistic: LogisticConfig = LogisticConfig()
    heuristic: HeuristicConfig


class ValidationConfig(_Section):
    """Temporal validation: rolling as-of dates, train earlier, test later."""

    min_train_dates: int = Field(default=2, ge=1)
    n_splits: int | None = Field(default=None, ge=1)


class DataConfig(_Section):
    """Where the ingested data lives (relative paths from the working directory)."""

    clean: Path = Path("data/demo/clean")


class DecisionRuleConfig(_Section):
    """Who counts as selected in the audit: the top k scores (default: capacity_k) or
    everyone at or above a score threshold."""

    top_k: int | None = Field(default=None, gt=0)
    threshold: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _one_rule(self) -> DecisionRuleConfig:
        if self.top_k is not None and self.threshold is not None:
            raise ValueError("give either top_k or threshold, not both")
        return self


class ThresholdsConfig(_Section):
    """The largest absolute difference between a group and its reference group that the
    audit accepts, per metric (0.10 = ten percentage points); a larger point estimate fails.
    The fields are those of :class:`overblik.fairness.FairnessThresholds`."""

    selection_rate: float = Field(default=0.10, gt=0, le=1)
    tpr: float = Field(default=0.10, gt=0, le=1)
    fpr: float = Field(default=0.10, gt=0, le=1)
    ece: float = Field(default=0.05, gt=0, le=1)


class MitigationConfig(_Section):
    """Which mitigations to compare, on which sensitive attribute (null: none).

    The default compares post-processing only (``threshold_optimizer``: seconds);
    ``exponentiated_gradient`` retrains a model dozens of times per criterion (minutes).
    """

    attribute: SensitiveName | None = "origin"
    criteria: tuple[MitigationCriterion, ...] = Field(
        default=("demographic_parity", "equalized_odds", "true_positive_rate_parity"),
        min_length=1)
    methods: tuple[MitigationMethod, ...] = Field(default=("threshold_optimizer",),
                                                  min_length=1)
    max_train_rows: int = Field(default=5_000, ge=100)


class FairnessConfig(_Section):
    """The fairness audit run after training, and the thresholds its verdict uses."""

    decision: DecisionRuleConfig = DecisionRuleConfig()
    thresholds: ThresholdsConfig = ThresholdsConfig()
    min_count: int = Field(default=20, ge=1, description="smaller groups are suppressed")
    n_boot: int = Field(default=1000, ge=10, le=100_000)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    intersections: bool = True
    reference: dict[SensitiveName, str] = Field(
        default_factory=dict, description="reference group per attribute; else the largest "
        "(an intersection: its attributes' references combined)")
    proxies: bool = True
    mitigation: MitigationConfig = MitigationConfig()


class ProgrammeConfig(_Section):
    """One programme's places per allocation round (an as-of date) and cost per place."""

    places: int = Field(ge=0, le=MAX_PLACES)
    cost: float = Field(default=1.0, gt=0, le=MAX_COST, allow_inf_nan=False,
                        description="cost of one place (any unit)")


class AccessConfig(_Section):
    """A group constraint on the allocation: the largest gap in access between the groups
    of one attribute, among the citizens expected to benefit (0.10 = ten points)."""

    attribute: SensitiveName
    max_gap: float = Field(gt=0, le=1)


class EffectsConfig(_Section):
    """Intervention effects fitted next to the risk model, and the allocation of places.

    For each programme, a doubly-robust learner estimates who it helps (against no
    programme) on the same rows and features as the risk model; the places are then
    allocated where they do the most good within ``budget``.
    """

    programmes: dict[str, ProgrammeConfig] = Field(min_length=1)
    budget: float | None = Field(default=None, gt=0, le=MAX_BUDGET, allow_inf_nan=False,
                                 description="total cost; null: none")
    access: AccessConfig | None = None
    n_bootstrap: int = Field(default=10, ge=2, le=200,
                             description="bagged effect models: the individual intervals")
    trim: tuple[float, float] = (0.01, 0.99)
    risk_stage: bool = Field(default=True, description="let effects vary with baseline risk "
                             "first (DRLearner's risk stage); false: features only")

    @model_validator(mode="after")
    def _trim_ordered(self) -> EffectsConfig:
        low, high = self.trim
        if not 0.0 <= low < high <= 1.0:
            raise ValueError(f"trim {list(self.trim)} must be two propensities 0 <= low < "
                             "high <= 1")
        return self


class ExperimentConfig(_Section):
    """A whole experiment: cohort, label, as-of dates, features, models, capacity."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    description: str
    description_da: str | None = Field(
        default=None, description="the description in Danish, for the model card's Danish "
        "side (else it shows the description, marked as English only)")
    cohort: CohortName
    label: LabelConfig
    as_of: AsOfConfig
    data: DataConfig = DataConfig()
    features: Any
    models: ModelsConfig
    validation: ValidationConfig = ValidationConfig()
    capacity_k: int = Field(gt=0, description="how many citizens the municipality can act on")
    sensitive_attributes: tuple[SensitiveName, ...] = Field(
        default=("sex", "age_band", "origin", "district"), min_length=1)
    seed: int = Field(default=0, ge=0)
    fairness: FairnessConfig = FairnessConfig()
    effects: EffectsConfig | None = None

    @model_validator(mode="after")
    def _audited_once(self) -> ExperimentConfig:
        repeated = sorted({a for a in self.sensitive_attributes
                           if self.sensitive_attributes.count(a) > 1})
        if repeated:
            raise ValueError(f"sensitive_attributes names {', '.join(repeated)} more than once: "
                             "list each attribute once")
        return self

    def config_hash(self) -> str:
        """A stable hash of the validated config (it tags every run)."""
        data = self.model_dump(mode="json")
        # Added later: a file without it keeps the hash its trained versions are tagged
        # with (the service refuses a version whose config no longer hashes to its tag).
        if data["description_da"] is None:
            del data["description_da"]
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def flat_params(self) -> dict[str, str]:
        """The config as flat ``section.key`` strings (for MLflow params)."""
        out: dict[str, str] = {}

        def walk(prefix: str, value: object) -> None:
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(f"{prefix}.{k}" if prefix else str(k), v)
            elif isinstance(value, list) and prefix == "features":
                out[prefix] = f"{len(value)} blocks"
            else:
                out[prefix] = str(value)[:500]

        walk("", self.model_dump(mode="json"))
        return out


def _location(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def parse_experiment(raw: object, source: str) -> ExperimentConfig:
    """Validate a loaded YAML document; errors name the section and key.

    Raises
    ------
    InputError
        Naming ``source``, the section and key, and the fix.
    """
    from overblik.features._feature_spec import parse_feature_spec

    if not isinstance(raw, dict):
        raise InputError(f"{source}: an experiment file is a YAML mapping with sections "
                         "name, description, cohort, label, as_of, features, models, capacity_k")
    try:
        config = ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = _location(tuple(err["loc"]))
            section = str(err["loc"][0]) if err["loc"] else "(top level)"
            msg = err["msg"]
            if err["type"] == "missing":
                msg = "is missing: add it"
            elif err["type"] == "extra_forbidden":
                msg = "is not a known key: remove it or check its spelling"
            lines.append(f"section '{section}', key '{where}': {msg}")
        raise InputError(f"{source}: " + "; ".join(lines)) from None
    try:
        spec = parse_feature_spec(config.features, section="features")
    except InputError as exc:
        # The block parser knows the section, not the file the analyst has open.
        raise InputError(f"{source}: {exc}") from None
    from overblik.features._feature_spec import expand

    names = {f.name for f in expand(spec)}
    if config.models.heuristic.column not in names:
        raise InputError(
            f"{source}: section 'models', key 'models.heuristic.column': "
            f"{config.models.heuristic.column!r} is not a feature of this experiment; "
            f"choose one of the feature names (e.g. {sorted(names)[:3]})"
        )
    _check_outcome(config, source)
    _check_splits(config, source)
    _check_fairness(config, source)
    _check_effects(config, source)
    return config


def _check_outcome(config: ExperimentConfig, source: str) -> None:
    """Each outcome is defined on one cohort (a placement of an adult on benefit is never
    recorded: every label would be 0)."""
    from overblik.features._cohorts import COHORT_OUTCOME

    expected = COHORT_OUTCOME[config.cohort]
    if config.label.outcome != expected:
        raise InputError(
            f"{source}: section 'label', key 'label.outcome': {config.label.outcome!r} is not "
            f"an outcome of the cohort {config.cohort!r}; its outcome is {expected!r} (or "
            f"choose the cohort of {config.label.outcome!r})")


def _check_splits(config: ExperimentConfig, source: str) -> None:
    """The as-of grid must allow a temporal split: training dates a horizon before a test."""
    from overblik.models._splits import TemporalSplitter

    splitter = TemporalSplitter(horizon_days=config.label.horizon_days,
                                min_train_dates=config.validation.min_train_dates,
                                n_splits=config.validation.n_splits)
    try:
        splitter.split(config.as_of.dates())
    except ValueError as exc:
        raise InputError(f"{source}: sections 'as_of' and 'validation': {exc}") from None


def _check_effects(config: ExperimentConfig, source: str) -> None:
    """Programmes must act on the experiment's outcome; access groups must be audited."""
    if config.effects is None:
        return
    from overblik.features._effects_data import programme_catalogue

    known = programme_catalogue(config.label.outcome)
    for name in config.effects.programmes:
        if name not in known:
            raise InputError(
                f"{source}: section 'effects', key 'effects.programmes.{name}': {name!r} is "
                f"not a programme acting on {config.label.outcome}; choose from "
                f"{', '.join(known)}")
    # Places 0 everywhere is allowed (effects for /recommend only; training notes it); a
    # budget below every place is a unit mistake.
    cheapest = min(c.cost for c in config.effects.programmes.values())
    if config.effects.budget is not None and config.effects.budget < cheapest:
        raise InputError(f"{source}: section 'effects', key 'effects.budget': "
                         f"{config.effects.budget:g} is below the cheapest place ({cheapest:g}), "
                         "so nothing can be allocated: raise the budget or use null for none")
    access = config.effects.access
    if access is not None and access.attribute not in config.sensitive_attributes:
        raise InputError(
            f"{source}: section 'effects', key 'effects.access.attribute': "
            f"{access.attribute!r} is not in sensitive_attributes "
            f"({', '.join(config.sensitive_attributes)}); add it there or remove access")


def _known_values(attribute: str) -> tuple[str, ...] | None:
    from overblik.features._contracts import DISTRICT_CODES, ORIGIN_CODES, SEX_CODES
    from overblik.features._profiles import AGE_BANDS

    known: dict[str, tuple[str, ...]] = {
        "sex": SEX_CODES, "origin": ORIGIN_CODES, "district": DISTRICT_CODES,
        "age_band": tuple(label for _, label in AGE_BANDS)}
    return known.get(attribute)


def _check_fairness(config: ExperimentConfig, source: str) -> None:
    """Cross-section checks: the fairness section may only name audited attributes."""
    audited = config.sensitive_attributes
    for attribute, value in config.fairness.reference.items():
        if attribute not in audited:
            raise InputError(
                f"{source}: section 'fairness', key 'fairness.reference.{attribute}': "
                f"{attribute!r} is not in sensitive_attributes ({', '.join(audited)}); add it "
                "there or remove the reference")
        values = _known_values(attribute)
        if values is not None and value not in values:
            raise InputError(
                f"{source}: section 'fairness', key 'fairness.reference.{attribute}': "
                f"{value!r} is not a value of {attribute}; choose one of {', '.join(values)}")
    mitigation = config.fairness.mitigation.attribute
    if mitigation is not None and mitigation not in audited:
        raise InputError(
            f"{source}: section 'fairness', key 'fairness.mitigation.attribute': "
            f"{mitigation!r} is not in sensitive_attributes ({', '.join(audited)}); choose "
            "one of those, or null for no mitigation comparison")


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error (the
    safe loader keeps the last silently, so a copied line overrides without a word)."""


def _unique_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode,
                    deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        line = key_node.start_mark.line + 1
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice (lines {seen[key]} and {line}): keep "
                "one", key_node.start_mark)
        seen[key] = line
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _unique_mapping)


def load_experiment(path: Path) -> ExperimentConfig:
    """Read and validate an experiment file."""
    path = Path(path)
    if not path.is_file():
        shipped = sorted(p.stem for p in experiments_dir().glob("*.yaml"))
        raise InputError(f"experiment file {path} does not exist; shipped experiments: "
                         f"{', '.join(shipped)} (in {experiments_dir()})")
    try:
        raw = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text; save the experiment file as UTF-8") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InputError(f"{path}: not valid YAML{where}: "
                         f"{getattr(exc, 'problem', exc)}") from None
    return parse_experiment(raw, str(path))


def experiments_dir() -> Path:
    """The folder of the shipped experiment files."""
    return Path(__file__).resolve().parent


def resolve_experiment(name_or_path: str) -> Path:
    """An experiment by file path, or by the name of a shipped experiment."""
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        return path
    return experiments_dir() / f"{name_or_path}.yaml"
