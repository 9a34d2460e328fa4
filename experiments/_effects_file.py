"""Bring-your-own-data effects (``overblik effects``): read a table, fit the DR learner,
write ``effects.json``, ``cate.csv`` and ``effects.html``.

Any CSV or Parquet table will do: a binary treatment column (0/1 or true/false), a
numeric or 0/1 outcome column, and covariates measured *before* treatment (numbers,
true/false, dates, which become days since the column's earliest date, or text with few
values, which is one-hot encoded; missing values are allowed; numbers or dates with a few
other values, such as 'n/a', are a mistake to fix, never categories). Every problem is
one :class:`InputError` naming the file, the column and, for bad values, the first row
(1-based data row; in a CSV also its line).
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from overblik.experiments._audit_file import (
    _shown,
    _where,
    non_scalar_problem,
    read_columns,
    read_header,
    sniff_table_file,
)
from overblik.features._errors import InputError

__all__ = ["EFFECTS_FILES", "EffectsResult", "EffectsTable", "content_order",
           "estimate_effects", "parse_covariates", "parse_trim", "read_effects_table",
           "write_effects"]

EFFECTS_FILES = ("effects.json", "cate.csv", "effects.html")
_TRUE = frozenset({"1", "1.0", "true"})
_FALSE = frozenset({"0", "0.0", "false"})
MAX_LEVELS = 30  # a text covariate with more distinct values looks like an identifier
# Column names of protected attributes (the README's sex, age, origin, disability, district,
# and their kin; English and Danish), as a whole word of the name.
_PROTECTED = re.compile(r"(?i)(?:^|[_\W])(?:sex|gender|køn|koen|age|alder|origin|herkomst|"
                        r"ethnicity|etnicitet|race|nationality|nationalitet|religion|"
                        r"disability|handicap|district|distrikt)(?:$|[_\W])")
MIN_ARM_ROWS = 10
# Beyond this the LightGBM nuisance models overflow (squared errors of 1e300 are inf), and
# no count, amount or score in a municipality's records is that large.
MAX_ABS_OUTCOME = 1e15
# A text covariate whose values are all numbers but for at most this share holds typos or
# missing-value codes ('n/a', '?'), not categories.
MAX_NON_NUMBER_SHARE = 0.05
# Beyond that share, a column of numbers but for a few distinct codes (10 % 'n/a') is still
# numbers with missing-value codes: refused naming the codes (as text it was an "identifier"
# and left out, dropping a confounder: ATE 1.22 where the truth was 0.30).
MAX_MISSING_CODES = 5
# Rows that the averages keep (not trimmed) but whose propensity lies outside these bounds
# are (almost) certain to get, or not get, the treatment: comparing them is extrapolation.
EXTREME_PROPENSITY = (0.01, 0.99)
MAX_EXTREME_SHARE = 0.10
# Dates as CSV exports (and the ingest contracts) write them: YYYY-MM-DD[ HH:MM[:SS]].
_ISO_DATE = r"\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?)?"
# 31-01-2024, 01/31/2024, 31.01.24: whether the day or the month comes first is a guess.
_OTHER_DATE = r"\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}"
_PER_DAY = {"s": 86_400, "ms": 86_400_000, "us": 86_400_000_000, "ns": 86_400_000_000_000}

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class EffectsTable:
    """The checked columns of an effects analysis."""

    path: Path
    X: pd.DataFrame  # float columns (text covariates one-hot encoded)
    T: np.ndarray  # int, 0/1
    y: np.ndarray  # float64, finite
    treatment: str
    outcome: str
    covariates: list[str]  # the input columns used (before encoding)
    notes: list[str] = field(default_factory=list)  # columns left out or converted, and why

    @property
    def rows(self) -> int:
        return len(self.y)


def parse_trim(text: str) -> tuple[float, float]:
    """``--trim LOW,HIGH`` as two numbers with ``0 <= LOW < HIGH <= 1``."""
    parts = [p.strip() for p in text.split(",")]
    try:
        if len(parts) != 2:
            raise ValueError
        low, high = float(parts[0]), float(parts[1])
    except ValueError:
        raise InputError(f"--trim {text!r} is not LOW,HIGH: give two numbers between 0 and 1, "
                         "e.g. --trim 0.01,0.99") from None
    if not (0.0 <= low < high <= 1.0) or math.isnan(low) or math.isnan(high):
        raise InputError(f"--trim {text!r}: need 0 <= LOW < HIGH <= 1, e.g. --trim 0.01,0.99 "
                         "(--trim 0,1 trims nothing)")
    return low, high


def parse_covariates(text: str | None) -> list[str] | None:
    """``--covariates A,B,C`` as a list (``None``: every other column)."""
    if text is None:
        return None
    names = [p.strip() for p in text.split(",")]
    if not any(names) or "" in names:
        raise InputError(f"--covariates {text!r} has an empty column name: separate the names "
                         "by single commas, e.g. --covariates age,income")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InputError(f"--covariates names {', '.join(duplicated)} twice: give each once")
    return names


def read_effects_table(path: Path, *, treatment: str, outcome: str,
                       covariates: Sequence[str] | None = None) -> EffectsTable:
    """Read and check the treatment, outcome and covariate columns of a CSV/Parquet file.

    Raises
    ------
    InputError
        Unreadable or empty file, missing columns (with the available ones), a treatment
        that is not 0/1, an outcome that is not a finite number (naming the row), a text
        covariate with too many values, or no covariate at all.
    """
    path = Path(path)
    if treatment == outcome:
        raise InputError(f"--treatment and --outcome are both {treatment!r}: give two columns")
    is_csv = sniff_table_file(path, verb="analyse", columns=f"{treatment} and {outcome}")
    header = read_header(path, is_csv)
    explicit = covariates is not None
    if covariates is not None:
        clash = sorted({treatment, outcome} & set(covariates))
        if clash:
            raise InputError(f"--covariates includes {clash[0]!r}, the treatment or outcome "
                             "column: covariates are what was known before treatment")
        chosen = list(covariates)
    else:
        chosen = [c for c in dict.fromkeys(header) if c not in (treatment, outcome) and c]
    names = [treatment, outcome, *chosen]
    roles = {treatment: "--treatment", outcome: "--outcome",
             **{c: "--covariates" for c in chosen}}
    table = read_columns(path, is_csv, header, names, roles)
    if table.num_rows == 0:
        raise InputError(f"{path} has a header but no rows: there is nothing to analyse")
    for name in (treatment, outcome):
        problem = non_scalar_problem(path, name, roles[name], table.column(name))
        if problem is not None:
            raise InputError(problem)
    t = _treatment(path, treatment, table.column(treatment), is_csv)
    y = _outcome(path, outcome, table.column(outcome), is_csv)
    columns: dict[str, np.ndarray] = {}
    used: list[str] = []
    notes: list[str] = []
    for name in chosen:
        encoded = _covariate(path, name, table.column(name), is_csv)
        if encoded.problem is not None:
            if explicit or encoded.typo:
                raise InputError(encoded.problem)
            notes.append(encoded.problem.replace(f"{path}: ", "", 1) + " — left out")
            continue
        columns.update(encoded.columns)
        used.append(name)
        if encoded.note is not None:
            notes.append(encoded.note)
    protected = [c for c in used if _PROTECTED.search(c)]
    if protected and not explicit:
        notes.append(f"covariates include protected attributes ({', '.join(protected)}), "
                     "taken because --covariates was not given: adjusting for them guards "
                     "against confounding, and the individual effects then differ by them; "
                     "name the covariates with --covariates to choose")
    if not used:
        raise InputError(f"{path}: no usable covariate (columns other than {treatment} and "
                         f"{outcome} that are numbers, true/false, dates or text with at most "
                         f"{MAX_LEVELS} values): effects need what was known before treatment")
    X = pd.DataFrame(columns)
    return EffectsTable(path=path, X=X, T=t, y=y, treatment=treatment, outcome=outcome,
                        covariates=used, notes=notes)


def _as_text(values: pa.ChunkedArray) -> pd.Series:
    return values.to_pandas().astype("string").str.strip()


def _treatment(path: Path, column: str, values: pa.ChunkedArray, is_csv: bool) -> np.ndarray:
    raw = values.to_pandas()
    text = _as_text(values).str.lower()
    missing = text.isna().to_numpy()
    one = text.isin(_TRUE).to_numpy(dtype=bool)
    zero = text.isin(_FALSE).to_numpy(dtype=bool)
    bad = ~(one | zero | missing)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        distinct = pd.unique(raw.dropna())[:6]
        raise InputError(
            f"{path}: --treatment column {column!r} must be binary, 0/1 (or true/false), but "
            f"{_where(first, is_csv)} has {_shown(raw.iloc[first])} (values: "
            f"{', '.join(_shown(v) for v in distinct)}); recode it as 1 = treated, "
            "0 = not treated (for several programmes, analyse one programme against no "
            "programme at a time)")
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        raise InputError(f"{path}: --treatment column {column!r} is empty in "
                         f"{_where(first, is_csv)} ({int(missing.sum())} rows): drop the rows "
                         "whose treatment is unknown")
    t = one.astype(np.int_)
    for arm, name in ((1, "treated (1)"), (0, "untreated (0)")):
        count = int(np.count_nonzero(t == arm))
        if count < MIN_ARM_ROWS:
            raise InputError(f"{path}: --treatment column {column!r} has {count} {name} rows; "
                             f"at least {MIN_ARM_ROWS} of each arm are needed to compare them")
    return t


def _numbers(values: pa.ChunkedArray) -> tuple[np.ndarray, pd.Series]:
    raw = values.to_pandas()
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        return raw.to_numpy(dtype=np.float64, na_value=np.nan), raw
    text = _as_text(values)
    lower = text.str.lower()
    numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    numbers[lower.isin(("true",)).to_numpy(dtype=bool)] = 1.0
    numbers[lower.isin(("false",)).to_numpy(dtype=bool)] = 0.0
    return numbers, raw


def _outcome(path: Path, column: str, values: pa.ChunkedArray, is_csv: bool) -> np.ndarray:
    numbers, raw = _numbers(values)
    bad = ~np.isfinite(numbers)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        value = raw.iloc[first]
        what = "no value" if pd.isna(value) else f"{_shown(value)}, which is not a number"
        raise InputError(f"{path}: --outcome column {column!r} must be numeric (or 0/1), but "
                         f"{_where(first, is_csv)} has {what} ({int(bad.sum())} such rows): "
                         "drop rows whose outcome is unknown, or recode it as a number")
    huge = np.abs(numbers) > MAX_ABS_OUTCOME
    if huge.any():
        first = int(np.flatnonzero(huge)[0])
        raise InputError(f"{path}: --outcome column {column!r} has {_shown(raw.iloc[first])} in "
                         f"{_where(first, is_csv)} ({int(huge.sum())} rows beyond "
                         f"±{MAX_ABS_OUTCOME:g}), more than the models can fit: rescale the "
                         "outcome (e.g. to thousands or millions)")
    if np.unique(numbers).size < 2:
        raise InputError(f"{path}: --outcome column {column!r} has the same value in every "
                         "row: there is no effect to estimate")
    return numbers


class _Encoded(NamedTuple):
    """One covariate's float column(s), or why it cannot be used; ``note``: a conversion.
    ``typo``: the problem is a few bad values in a column of numbers or dates, a mistake to
    fix even when the covariates were not named (leaving the column out would drop a
    confounder and move the estimate)."""

    columns: dict[str, np.ndarray]
    problem: str | None = None
    note: str | None = None
    typo: bool = False


def _covariate(path: Path, column: str, values: pa.ChunkedArray, is_csv: bool) -> _Encoded:
    """Float column(s) of one covariate, or a problem (nested values, a few values that are
    not numbers (dates) among numbers (dates), text with too many values)."""
    nested = non_scalar_problem(path, column, "--covariates", values)
    if nested is not None:
        return _Encoded({}, nested)
    if values.null_count == len(values):
        return _Encoded({}, f"{path}: --covariates column {column!r} has no value in any row")
    kind = values.type
    if pa.types.is_date(kind) or pa.types.is_timestamp(kind):
        return _date_covariate(path, column, _stored_days(values), values.to_pandas(), is_csv)
    numbers, raw = _numbers(values)
    present = raw.notna().to_numpy()
    bad = present & ~np.isfinite(numbers)
    if not bad.any():
        return _Encoded({column: numbers})
    numeric_type = pa.types.is_integer(kind) or pa.types.is_floating(kind)
    text = _as_text(values)
    if not numeric_type:
        iso = text.str.fullmatch(_ISO_DATE).fillna(False).to_numpy(dtype=bool)
        if _mostly(iso, present):
            return _date_covariate(path, column, _text_days(text, iso), raw, is_csv)
    if numeric_type or bad.sum() <= MAX_NON_NUMBER_SHARE * present.sum():
        first = int(np.flatnonzero(bad)[0])
        what = "a finite number" if np.isinf(numbers[first]) else "a number"
        return _Encoded({}, _bad_value(path, column, raw, bad, present, is_csv, what),
                        typo=True)
    codes = text[bad].str.strip().unique().tolist()
    if (present & ~bad).sum() >= 0.5 * present.sum() and len(codes) <= MAX_MISSING_CODES:
        first = int(np.flatnonzero(bad)[0])
        shown = ", ".join(_shown(c) for c in sorted(codes))
        return _Encoded({}, (
            f"{path}: --covariates column {column!r} holds numbers, and {shown} in "
            f"{int(bad.sum()):,} of the {int(present.sum()):,} rows with a value (first "
            f"{_where(first, is_csv)}): if {'these mean' if len(codes) > 1 else 'it means'} "
            "missing, blank them (blank = missing); else fix them"), typo=True)
    if text.dropna().str.fullmatch(_OTHER_DATE).all():
        return _Encoded({}, (f"{path}: --covariates column {column!r} holds dates written as "
                             f"{_shown(text.dropna().iloc[0])} (is the day or the month "
                             "first?): write them as YYYY-MM-DD (they are then used as days "
                             "since the earliest) or leave the column out"))
    levels = sorted(text.dropna().unique().tolist())
    if len(levels) > MAX_LEVELS:
        return _Encoded({}, (f"{path}: --covariates column {column!r} is text with "
                             f"{len(levels):,} distinct values (more than {MAX_LEVELS}; an "
                             "identifier?): leave it out or recode it as a number"))
    # One-hot, every level (trees need no reference level); missing = all zeros.
    return _Encoded({f"{column}={lvl}": (text == lvl).fillna(False).to_numpy(dtype=np.float64)
                     for lvl in levels})


def _bad_value(path: Path, column: str, raw: pd.Series, bad: np.ndarray, present: np.ndarray,
               is_csv: bool, what: str) -> str:
    """The problem of a column whose values are of one kind but for a few (typos, codes)."""
    first = int(np.flatnonzero(bad)[0])
    return (f"{path}: --covariates column {column!r}: {_where(first, is_csv)} holds "
            f"{_shown(raw.iloc[first])}, not {what} ({int(bad.sum()):,} of the "
            f"{int(present.sum()):,} rows with a value): fix or blank it (blank = missing)")


def _mostly(matches: np.ndarray, present: np.ndarray) -> bool:
    """Whether all values but a few typos (:data:`MAX_NON_NUMBER_SHARE`) match."""
    misses = int(np.count_nonzero(present & ~matches))
    return bool(matches.any()) and misses <= MAX_NON_NUMBER_SHARE * present.sum()


def _stored_days(values: pa.ChunkedArray) -> np.ndarray:
    """Days since 1970-01-01 of a Parquet date or timestamp column, NaN where missing;
    computed in Arrow, as pandas' nanoseconds end in the year 2262."""
    kind = values.type
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        # Wall-clock time where it was recorded, as a CSV export (and ingest) would show it.
        values = pc.local_timestamp(values)
        kind = values.type
    if pa.types.is_date32(kind):
        counts, per_day = pc.cast(values, pa.int32()), 1
    else:
        unit = "ms" if pa.types.is_date64(kind) else kind.unit
        counts, per_day = pc.cast(values, pa.int64()), _PER_DAY[unit]
    # Unsafe: a float64 may round nanoseconds, never a day.
    days = pc.divide(pc.cast(counts, pa.float64(), safe=False), float(per_day))
    return np.asarray(days.to_numpy(zero_copy_only=False), dtype=np.float64)


def _text_days(text: pd.Series, ok: np.ndarray) -> np.ndarray:
    """Days since 1970-01-01 of the ISO dates (and times) written as text, where ``ok``
    (the rows that match :data:`_ISO_DATE`); NaN for the rest, including impossible dates
    such as 2024-02-30."""
    days = np.full(len(text), np.nan)
    # Each distinct value once; microseconds reach far beyond 9999-12-31 (an open end).
    uniques, inverse = np.unique(text[ok].str.replace(" ", "T").to_numpy(dtype=str),
                                 return_inverse=True)
    try:
        stamps = uniques.astype("datetime64[us]")
        parsed = stamps.astype(np.int64) / _PER_DAY["us"]
    except ValueError:  # an impossible date among them: parse one by one to find it
        parsed = np.array([_one_day(value) for value in uniques], dtype=np.float64)
    days[ok] = parsed[inverse]
    return days


def _one_day(value: str) -> float:
    try:
        return float(np.datetime64(value, "us").astype(np.int64) / _PER_DAY["us"])
    except ValueError:
        return math.nan


def _date_covariate(path: Path, column: str, days: np.ndarray, raw: pd.Series,
                    is_csv: bool) -> _Encoded:
    """A date column as the number of days since its earliest date, with a note saying so.

    Each date as a category would make every day unrelated to the next and most of them
    too rare to learn from; the number of days keeps their order and distance.
    """
    present = raw.notna().to_numpy()
    bad = present & ~np.isfinite(days)
    if bad.any():
        return _Encoded({}, _bad_value(path, column, raw, bad, present, is_csv,
                                       "a date (YYYY-MM-DD)"),
                        typo=True)
    start, end = float(np.nanmin(days)), float(np.nanmax(days))
    name = f"{column} (days since {_day_text(start)})"
    note = (f"--covariates column {column!r} holds dates ({_day_text(start)} to "
            f"{_day_text(end)}): used as the number of days since {_day_text(start)}; check "
            "that it was known before treatment (a date of treatment is no confounder)")
    return _Encoded({name: days - start}, note=note)


def _day_text(days: float) -> str:
    """A date (with the time of day unless midnight) from days since 1970-01-01."""
    stamp = np.datetime64(round(days * _PER_DAY["ms"]), "ms")
    day = stamp.astype("datetime64[D]")
    return str(day) if stamp == day else str(stamp.astype("datetime64[s]")).replace("T", " ")


@dataclass(frozen=True)
class EffectsResult:
    """What ``overblik effects`` writes: the summary and one row per input row."""

    summary: dict[str, Any]
    cate: pd.DataFrame
    propensity: np.ndarray
    T: np.ndarray
    trim: tuple[float, float]


def estimate_effects(table: EffectsTable, *, trim: tuple[float, float] = (0.01, 0.99),
                     n_folds: int = 5, n_bootstrap: int = 30, alpha: float = 0.05,
                     random_state: int = 0, progress: Progress | None = None
                     ) -> EffectsResult:
    """Fit the cross-fitted DR learner on the table; average and individual effects.

    Raises
    ------
    InputError
        When trimming or the folds leave an arm too small.
    """
    from overblik.models._dr_learner import DRLearner
    from overblik.models._propensity import overlap_report

    if progress:
        progress("fit", 0, 1)
    learner = DRLearner(trim=trim, n_folds=n_folds, n_bootstrap=n_bootstrap, alpha=alpha,
                        random_state=random_state)
    order = content_order(table)
    try:
        learner.fit(table.X.iloc[order], table.T[order], table.y[order])
    except ValueError as exc:  # arm too small for the folds or after trimming
        raise InputError(f"{table.path}: {exc}") from None
    back = np.empty_like(order)
    back[order] = np.arange(len(order))
    trimmed, propensity = learner.trimmed_[back], learner.propensity_[back]
    if progress:
        progress("fit", 1, 1)
    if n_bootstrap >= 2:
        effect, low, high = learner.effect_and_interval(table.X)
    else:
        effect = learner.effect(table.X)
        low = high = np.full(table.rows, np.nan)
    cate = pd.DataFrame({"row": np.arange(1, table.rows + 1), "effect": effect,
                         "ci_low": low, "ci_high": high, "trimmed": trimmed,
                         "propensity": propensity})
    # The learner's report, recomputed to name the treatment column in the warnings.
    overlap = overlap_report(propensity, table.T, trim=trim, label=table.treatment)
    extrapolation = _extrapolation_warning(propensity, table.T, trimmed, table.treatment)
    warnings = [*overlap.warnings, *extrapolation, *table.notes]
    binary = bool(np.isin(table.y, (0.0, 1.0)).all())
    summary: dict[str, Any] = {
        "data": str(table.path),
        "treatment": table.treatment,
        "outcome": table.outcome,
        "outcome_type": "binary" if binary else "numeric",
        "covariates": table.covariates,
        "method": (f"cross-fitted doubly-robust learner ({n_folds} folds, LightGBM "
                   "nuisances); " + (f"individual bands from {n_bootstrap} bootstrap fits "
                                     "of the effect model" if n_bootstrap else
                                     "no individual intervals (--n-bootstrap 0)")),
        "alpha": alpha,
        "n": table.rows,
        "n_treated": int(table.T.sum()),
        "naive_difference": learner.naive_difference_,
        "ate": learner.ate_.as_dict(),
        "att": learner.att_.as_dict(),
        "overlap": overlap.as_dict(),
        "warnings": warnings,
    }
    return EffectsResult(summary=strict_json(summary), cate=cate, propensity=propensity,
                         T=table.T, trim=trim)


def content_order(table: EffectsTable) -> np.ndarray:
    """The rows sorted by a hash of their values (covariates, treatment, outcome).

    The cross-fitting folds and the bootstrap draw by row position, so the same table
    sorted differently would give other digits; fitted in this order it gives the same.
    Equal rows are interchangeable, so their order among themselves does not matter.
    """
    values = np.column_stack([table.X.to_numpy(dtype=np.float64), table.T, table.y])
    key = pd.util.hash_pandas_object(pd.DataFrame(values), index=False).to_numpy()
    return np.argsort(key, kind="stable")


def _extrapolation_warning(propensity: np.ndarray, T: np.ndarray, trimmed: np.ndarray,
                           label: str) -> list[str]:
    """A warning when many rows in the averages are (almost) certain to be treated or not.

    The learner's overlap report warns about what the trimming bounds remove; with wide
    bounds (``--trim 0,1``) it stays silent even when a covariate separates the arms, so
    this check uses fixed bounds and counts only the rows that are kept.
    """
    from overblik.models._propensity import trimmed_mask

    extreme = trimmed_mask(propensity, EXTREME_PROPENSITY) & ~trimmed
    treated = T.astype(bool)
    shares = {"treated": float(extreme[treated].mean()),
              "untreated": float(extreme[~treated].mean())}
    if max(shares.values()) <= MAX_EXTREME_SHARE:
        return []
    low, high = EXTREME_PROPENSITY
    return [f"little overlap for {label}: {shares['treated']:.1%} of the treated and "
            f"{shares['untreated']:.1%} of the untreated rows kept in the averages have an "
            f"estimated propensity outside [{low:g}, {high:g}] (nearly certain to get, or "
            "not to get, the treatment): the effects rest on extrapolation between arms "
            "that barely overlap; check which covariates separate them (one that decides "
            "the treatment, or is measured after it, is no confounder)"]


def strict_json(value: Any) -> Any:
    """NaN/inf as null, numpy scalars as Python ones: the JSON files must be strict JSON."""
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    if isinstance(value, float | np.floating):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_effects(out: Path, result: EffectsResult) -> list[Path]:
    """Write ``effects.json``, ``cate.csv`` and ``effects.html`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = [out / name for name in EFFECTS_FILES]
    paths[0].write_text(json.dumps(result.summary, indent=1, ensure_ascii=False,
                                   allow_nan=False), encoding="utf-8")
    result.cate.to_csv(paths[1], index=False, float_format="%.6g")
    paths[2].write_text(_html(result), encoding="utf-8")
    return paths


def _fmt(value: object) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return html.escape(str(value))


def _html(result: EffectsResult) -> str:
    from overblik.fairness._report_plots import figure_data_uri
    from overblik.models._effects_plots import plot_effect_distribution, plot_overlap

    s = result.summary
    overlap_png = figure_data_uri(plot_overlap(result.propensity, result.T, trim=result.trim))
    cate = result.cate
    effect_png = figure_data_uri(plot_effect_distribution(
        cate["effect"].to_numpy(), ate=float(s["ate"]["estimate"] or 0.0),
        trimmed=cate["trimmed"].to_numpy()))
    level = f"{1 - s['alpha']:.0%}"
    rows = [("rows", _fmt(s["n"])), ("treated rows", _fmt(s["n_treated"])),
            ("naive difference (treated − untreated)", _fmt(s["naive_difference"]))]
    for key, name in (("ate", "average effect (ATE)"), ("att", "effect on the treated (ATT)")):
        iv = s[key]
        rows.append((name, f"{_fmt(iv['estimate'])} [{_fmt(iv['ci_low'])}, "
                           f"{_fmt(iv['ci_high'])}]"))
    ov = s["overlap"]
    rows.append(("trimmed rows (propensity outside "
                 f"[{ov['trim'][0]:g}, {ov['trim'][1]:g}])",
                 f"{_fmt(ov['trimmed'])} ({ov['trimmed_share']:.1%})"))
    table = "\n".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    warnings = ("".join(f"<li>{html.escape(w)}</li>" for w in s["warnings"])
                or "<li>none</li>")
    covariates = html.escape(", ".join(s["covariates"]))
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Effects: {html.escape(s['treatment'])} on {html.escape(s['outcome'])}</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto;
       padding: 0 1rem; color: #1c2833; }}
table {{ border-collapse: collapse; }} th, td {{ text-align: left; padding: .3rem .8rem;
border-bottom: 1px solid #d5d8dc; }} img {{ max-width: 100%; }}
.warn li {{ color: #b03a2e; }}
</style></head><body>
<h1>Effect of {html.escape(s['treatment'])} on {html.escape(s['outcome'])}</h1>
<p>Data: <code>{html.escape(s['data'])}</code>. Method: {html.escape(s['method'])}.
The average effects' intervals are {level} confidence intervals. Covariates: {covariates}.</p>
<table>{table}</table>
<h2>Warnings</h2><ul class="warn">{warnings}</ul>
<h2>Overlap</h2>
<p>Estimated chance of treatment per arm. Effects can only be learnt where both arms
occur; rows outside the dashed bounds are trimmed from the averages.</p>
<img alt="Propensity histogram per arm" src="{overlap_png}">
<h2>Individual effects</h2>
<p>Estimated effect of each row (one per row in <code>cate.csv</code>). Its interval
(<code>ci_low</code>, <code>ci_high</code>) is a {level} band of the effect model's variation
over bootstrap fits: it shows how much the estimate moves with the data, not how far it may
be from the true effect (a biased effect model keeps its bias in every fit), so it holds the
true effect less often than {level} of the time. These estimates assume every confounder is
among the covariates.</p>
<img alt="Histogram of individual effects" src="{effect_png}">
</body></html>
"""
