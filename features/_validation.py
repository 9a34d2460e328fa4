"""Row validation of one source extract, vectorised over distinct values.

Extracts repeat values massively (tens of millions of rows, a few thousand dates, a few
codes, one CPR per person), so each column is dictionary-encoded once and every parse and
check runs on its *distinct* values; the per-row work is a handful of numpy ``take``\\ s.
The rules come from the pandera contract (:mod:`overblik.features._contracts`): column
types, nullability and each column's checks. Ingest adds the rules a per-column schema cannot
express: CPR calendar dates, dates in the future, events before birth, CPR numbers unknown
to the register and duplicates.

Each failed rule sets one bit in a per-row ``uint64`` (bit order = :func:`reason_codes`), so
a row can fail several rules and its first reason is its lowest bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandera.api.pandas.components import Column

from overblik.features._contracts import NOT_BEFORE, SOURCES, Source
from overblik.features._cpr_text import CPR_SHAPE, matches, may_hold_cpr
from overblik.features._pseudonym import (
    PseudonymKey,
    pseudonymise,
    pseudonymise_identifier,
    pseudonymise_one,
)

# The kinds of reason, in the fixed order that decides a row's first reason. The code of a
# column-level reason is ``<kind>:<column>``; the others are the kind alone.
REASON_KINDS: dict[str, str] = {
    "missing": "a required value is empty",
    "bad_type": "the value does not parse as the column's type (dates YYYY-MM-DD[ HH:MM[:SS]], "
    "numbers with a '.' decimal point, booleans true/false/1/0)",
    "invalid_cpr": "the CPR number is not DDMMYY-SSSS (or DDMMYYSSSS) with a real calendar date "
    "(century from the 7th digit)",
    "bad_code": "the value is not in the column's code list or allowed range",
    "future_date": "the date is after the ingest's reference date (today)",
    "unknown_cpr": "the event's CPR number is not in the accepted population register",
    "before_birth": "the date is before the person's birth date",
    "before_move_in": "the date is before the person's move-in date (a register move-out or "
    "death)",
    "duplicate": "an exact copy of an earlier row in the same file (in the register: a later "
    "row for a CPR number that already has one)",
}

ValueKind = Literal["text", "datetime", "float", "bool"]
_TRUE = frozenset({"true", "1"})
_FALSE = frozenset({"false", "0"})
_DATE_RE = r"^\d{4}-\d{2}-\d{2}(?:[ T]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?)?$"
_NUMBER_RE = r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$"
# Years a nanosecond timestamp can hold (1677-09-21 .. 2262-04-11), with a margin.
_MIN_YEAR, _MAX_YEAR = 1678, 2261


def value_kind(column: Column) -> ValueKind:
    """How ingest parses a contract column, from its pandera dtype."""
    dtype = str(column.dtype)
    if dtype in ("str", "string", "string[pyarrow]", "string[python]"):
        return "text"
    if dtype.startswith("datetime64"):
        return "datetime"
    if dtype.startswith("float"):
        return "float"
    if dtype == "bool":
        return "bool"
    raise TypeError(f"contract column {column.name} has dtype {dtype}, which ingest cannot "
                    "parse yet: add it to overblik.features._validation.value_kind")


def reason_codes(source: Source) -> list[str]:
    """Every reason code a row of ``source`` can get, in the fixed order."""
    columns = source.model.to_schema().columns
    codes: list[str] = []
    for kind in REASON_KINDS:
        if kind == "invalid_cpr":
            codes.append(kind)
        elif kind == "unknown_cpr":
            if not source.is_register:
                codes.append(kind)
        elif kind == "duplicate":
            codes.append(kind)
        else:
            codes.extend(f"{kind}:{name}" for name, col in columns.items()
                         if _applies(kind, name, col))
    if len(codes) > 64:
        raise TypeError(f"{source.name}: {len(codes)} reason codes do not fit a uint64 mask")
    return codes


def _applies(kind: str, name: str, col: Column) -> bool:
    vkind = value_kind(col)
    if kind == "missing":
        return not col.nullable
    if kind == "bad_type":
        return vkind != "text"
    if kind == "bad_code":
        return name != "cpr" and bool(col.checks)
    if kind == "future_date":
        return vkind == "datetime"
    if kind == "before_birth":
        return vkind == "datetime" and name != "birth_date"
    if kind == "before_move_in":
        return (col.metadata or {}).get(NOT_BEFORE) == "move_in_date"
    raise AssertionError(kind)


def _explain(code: str) -> str:
    kind, _, column = code.partition(":")
    return f"{column}: {REASON_KINDS[kind]}" if column else REASON_KINDS[kind]


REASONS: dict[str, str] = {
    code: _explain(code) for source in SOURCES for code in reason_codes(source)
}


@dataclass
class Encoded:
    """One column dictionary-encoded: row ``i`` holds ``uniques[codes[i]]``.

    ``codes == len(uniques)`` marks a null (a Parquet null), so per-distinct arrays get one
    extra last slot for it and every lookup is a plain ``take``.
    """

    codes: np.ndarray
    uniques: pa.Array

    @property
    def null_slot(self) -> int:
        return len(self.uniques)


def encode(column: pa.ChunkedArray) -> Encoded:
    """Dictionary-encode a text column (once; every later step uses the codes)."""
    encoded = pc.dictionary_encode(column)
    # Arrow encodes a chunked column with one memo table, so every chunk carries the same,
    # final dictionary; unify_dictionaries would still re-hash it once per chunk, which is
    # quadratic (8.5 s for 1M distinct CPR numbers in 100 chunks, 40 % of an ingest).
    # Unify only if the dictionaries ever differ (each is a prefix of the last one).
    if encoded.num_chunks and len({len(c.dictionary) for c in encoded.chunks}) > 1:
        encoded = pa.table({"c": encoded}).unify_dictionaries().column("c")
    if encoded.num_chunks == 0:
        return Encoded(np.zeros(0, dtype=np.int32), pa.array([], pa.string()))
    uniques = encoded.chunk(0).dictionary
    indices = pa.chunked_array([chunk.indices for chunk in encoded.chunks], pa.int32())
    codes = indices.fill_null(len(uniques)).to_numpy()
    return Encoded(np.ascontiguousarray(codes, dtype=np.int32), uniques.cast(pa.string()))


def _with_null_slot(values: np.ndarray, null: object) -> np.ndarray:
    return np.concatenate([values, np.array([null], dtype=values.dtype)])


@dataclass
class Parsed:
    """One column's distinct values parsed and checked (each array has the null slot)."""

    kind: ValueKind
    empty: np.ndarray  # bool: null or blank
    bad_type: np.ndarray  # bool
    bad_code: np.ndarray  # bool: fails a contract check
    text: pa.Array | None = None  # trimmed text (text columns), null where empty
    datetimes: np.ndarray | None = None  # datetime64[ns], NaT where empty or bad
    numbers: np.ndarray | None = None  # float64, NaN where empty or bad
    flags: np.ndarray | None = None  # bool (bool columns)


def _trimmed(uniques: pa.Array) -> pa.Array:
    """Surrounding whitespace is layout, not data; blank becomes null."""
    trimmed = pc.utf8_trim_whitespace(uniques)
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def parse_column(enc: Encoded, column: Column) -> Parsed:
    """Parse the distinct values of a non-CPR column to its contract type and check them."""
    kind = value_kind(column)
    text = _trimmed(enc.uniques)
    empty = _with_null_slot(pc.is_null(text).to_numpy(zero_copy_only=False), True)
    strings = pd.Series(pd.arrays.ArrowStringArray(text))
    present = ~empty[:-1]
    parsed = Parsed(kind, empty, np.zeros(len(empty), bool), np.zeros(len(empty), bool))
    if kind == "text":
        parsed.text = pa.concat_arrays([text, pa.nulls(1, pa.string())])
        typed = strings
    elif kind == "datetime":
        ok = present & strings.str.match(_DATE_RE).fillna(False).to_numpy(bool)
        years = pd.to_numeric(strings.str.slice(0, 4), errors="coerce").to_numpy(float)
        ok &= (years >= _MIN_YEAR) & (years <= _MAX_YEAR)
        values = np.full(len(strings), np.datetime64("NaT"), dtype="datetime64[ns]")
        if ok.any():
            stamps = pd.to_datetime(strings[ok], format="ISO8601", errors="coerce")
            values[ok] = stamps.to_numpy(dtype="datetime64[ns]")
        ok &= ~np.isnat(values)
        values[~ok] = np.datetime64("NaT")
        parsed.bad_type[:-1] = present & ~ok
        parsed.datetimes = _with_null_slot(values, np.datetime64("NaT"))
        typed = pd.Series(values)
    elif kind == "float":
        ok = present & strings.str.match(_NUMBER_RE).fillna(False).to_numpy(bool)
        numbers = np.full(len(strings), np.nan)
        if ok.any():
            numbers[ok] = pd.to_numeric(strings[ok], errors="coerce").to_numpy(float)
        ok &= np.isfinite(numbers)
        numbers[~ok] = np.nan
        parsed.bad_type[:-1] = present & ~ok
        parsed.numbers = _with_null_slot(numbers, np.nan)
        typed = pd.Series(numbers)
    else:
        lowered = strings.str.lower()
        is_true = lowered.isin(_TRUE).to_numpy(bool)
        ok = present & (is_true | lowered.isin(_FALSE).to_numpy(bool))
        parsed.bad_type[:-1] = present & ~ok
        parsed.flags = _with_null_slot(is_true & ok, False)
        typed = pd.Series(is_true)
    checkable = present & ~parsed.bad_type[:-1]
    passed = np.ones(len(checkable), dtype=bool)
    passed[checkable] = passes_checks(column, typed[checkable])
    parsed.bad_code[:-1] = ~passed
    return parsed


def passes_checks(column: Column, values: pd.Series) -> np.ndarray:
    """Run the contract column's pandera checks on (non-null) values; ``True`` = passes."""
    result = np.ones(len(values), dtype=bool)
    if len(values) == 0:
        return result
    series = values.reset_index(drop=True).rename(column.name)
    for check in column.checks:
        output = check(series).check_output
        result &= output.to_numpy(dtype=bool, na_value=False)
    return result


@dataclass
class CprParsed:
    """The distinct values of a CPR column (each array has the null slot)."""

    empty: np.ndarray  # bool
    invalid: np.ndarray  # bool: present but not a valid CPR number
    normalised: pd.Series  # DDMMYY-SSSS where well-formed, else trimmed text; for matching
    person_id: pa.Array  # pseudonym where well-formed (digits in the CPR shape), else null
    register_position: np.ndarray  # int: row in the accepted register, -1 when not in it


def parse_cprs(enc: Encoded, column: Column, key: PseudonymKey,
               register: Register | None = None) -> CprParsed:
    """Normalise, validate and pseudonymise the distinct CPR numbers of a column.

    ``DDMMYYSSSS`` is accepted and normalised to ``DDMMYY-SSSS``. The contract's pattern is
    checked, then the date with the century the 7th digit gives (0-3: 1900s; 4 and 9: 2000s
    if YY <= 36 else 1900s; 5-8: 2000s if YY <= 57 else 1800s). Every well-formed value,
    valid or not, gets a pseudonym (so quarantined rows stay traceable to a person); persons
    already in ``register`` reuse its pseudonym instead of hashing again.
    """
    text = _trimmed(enc.uniques)
    empty = _with_null_slot(pc.is_null(text).to_numpy(zero_copy_only=False), True)
    raw = pd.Series(pd.arrays.ArrowStringArray(text))
    ten = raw.str.fullmatch(r"\d{10}").fillna(False)
    normalised = raw.where(~ten, raw.str.slice(0, 6) + "-" + raw.str.slice(6))
    shaped = normalised.str.fullmatch(CPR_SHAPE).fillna(False).to_numpy(bool)
    valid = shaped & passes_checks(column, normalised.fillna(""))
    valid &= ~np.isnat(cpr_birth_dates(normalised.where(shaped, "000000-0000")))
    position = np.full(len(raw), -1, dtype=np.int64)
    ids = np.full(len(raw), None, dtype=object)
    if register is not None and len(register.cprs):
        position = register.cprs.get_indexer(pd.Index(normalised.where(valid, "")))
        found = position >= 0
        ids[found] = register.person_ids[position[found]]
    todo = shaped & (position < 0)
    if todo.any():
        ids[todo] = pseudonymise(normalised[todo], key).to_numpy(dtype=object, na_value=None)
    return CprParsed(
        empty=empty,
        invalid=_with_null_slot(~empty[:-1] & ~valid, False),
        normalised=normalised,
        person_id=pa.array(_with_null_slot(ids, None), pa.string()),
        register_position=_with_null_slot(position, -1),
    )


def cpr_birth_dates(cprs: pd.Series) -> np.ndarray:
    """Birth dates of well-formed ``DDMMYY-SSSS`` values (NaT where no such date exists)."""
    day, month, yy, seventh = (pd.to_numeric(cprs.str.slice(a, b)).to_numpy(np.int64)
                               for a, b in ((0, 2), (2, 4), (4, 6), (7, 8)))
    century = np.select(
        [seventh <= 3, np.isin(seventh, (4, 9)), True],
        [1900, np.where(yy <= 36, 2000, 1900), np.where(yy <= 57, 2000, 1800)],
    )
    if len(cprs) == 0:
        return np.zeros(0, dtype="datetime64[ns]")
    return pd.to_datetime(
        pd.DataFrame({"year": century + yy, "month": month, "day": day}), errors="coerce"
    ).to_numpy(dtype="datetime64[ns]")


# A word of letters beside a space: how a name ("Jens Hansen") or an address ("Nørregade 12")
# reads, and no code, number or date does (dates with a time have no letters).
_FREE_TEXT = r"\p{L}{2,}\s+\S|\S\s+\p{L}{2,}"
FREE_TEXT_MARK = "<free text removed>"


# A value that breaks its column's rule may be anything typed into the wrong field: a one-word
# name ("Hansen"), a street ("Ærøvej"), an e-mail address, a phone number. What a silo sends
# wrongly for many persons is a code (a mapping to fix, readable in the quarantine); what
# fewer than RARE_HOLDERS persons hold is removed, unless it has no word, address or long
# number in it ("2020-01-01 25:00", "12,5") or is a known word: one of the column's codes in
# other letters ("Danish") or a common yes/no/missing word.
RARE_HOLDERS = 5
_MAY_IDENTIFY = r"\p{L}{2}|@|\p{Nd}{8}"
_COMMON_WORDS = ("yes", "no", "ja", "nej", "true", "false", "nan", "null", "none", "na", "n/a",
                 "unknown", "ukendt", "missing", "mangler")
RARE_MARK = f"<value removed: fewer than {RARE_HOLDERS} persons hold it>"


def _known_words(column: Column) -> pa.Array:
    words = [*_COMMON_WORDS]
    for check in column.checks:
        words += [str(v).lower() for v in (check.statistics or {}).get("allowed_values", ())]
    return pa.array(words, pa.string())


def rare_bad_values(enc: Encoded, parsed: Parsed, column: Column, cpr: Encoded) -> np.ndarray:
    """Per distinct value of a column (with the null slot): breaks the column's rule, reads
    as a word, address or long number that is not a known word, and fewer than
    :data:`RARE_HOLDERS` persons hold it."""
    bad = (parsed.bad_type | parsed.bad_code)[:-1]
    risky = np.zeros(enc.null_slot + 1, dtype=bool)
    if not bad.any():
        return risky
    lowered = pc.utf8_lower(pc.utf8_trim_whitespace(enc.uniques))
    known = np.asarray(pc.is_in(lowered, value_set=_known_words(column)), dtype=bool)
    risky[:-1] = bad & matches(enc.uniques, _MAY_IDENTIFY) & ~known
    rows = np.flatnonzero(risky[enc.codes])
    if len(rows):
        pairs = np.unique(np.stack([enc.codes[rows], cpr.codes[rows]]), axis=1)
        holders = np.bincount(pairs[0], minlength=enc.null_slot + 1)
        risky &= holders < RARE_HOLDERS
    return risky


def scrub_text(uniques: pa.Array, key: PseudonymKey, *,
               identifier: bool = False) -> tuple[pa.Array, np.ndarray]:
    """The text ingest may write for the distinct values of a column.

    An identifier column (:attr:`Source.identifiers`) is written as keyed pseudonyms only
    (blanks stay blank). In any other column a value holding a CPR-shaped run of digits
    becomes its keyed pseudonym, and a value that reads as free text (a name or an address
    in the wrong field; code lists never hold one, so only quarantined values can) becomes
    :data:`FREE_TEXT_MARK`. Returns the values and a mask of those holding a CPR-shaped run;
    a value that *is* a CPR number (e.g. a household id taken from a member's CPR) becomes
    that member's ``person_id``, so the link survives while the number does not.
    """
    hits = may_hold_cpr(uniques)
    if identifier:
        hashed = matches(uniques, r"\S")  # every value but blanks
        free = np.zeros(len(hits), dtype=bool)
    else:
        hashed = hits
        free = matches(uniques, _FREE_TEXT) & ~hits
    if not (hashed.any() or free.any()):
        return uniques, hits
    values = uniques.to_numpy(zero_copy_only=False).copy()
    values[free] = FREE_TEXT_MARK
    hash_one = pseudonymise_identifier if identifier else pseudonymise_one
    for i in np.flatnonzero(hashed):  # per distinct value, not per row
        values[i] = hash_one(str(values[i]), key)
    return pa.array(values, pa.string()), hits


@dataclass(frozen=True)
class Register:
    """The accepted population register, as ingest needs it to check events.

    Held in memory only: the normalised CPR numbers are how events find their person, and
    the pseudonyms save hashing each person again for every source.
    """

    cprs: pd.Index  # normalised DDMMYY-SSSS
    person_ids: np.ndarray  # object array of pseudonyms, aligned with cprs
    birth_days: np.ndarray  # datetime64[ns] at midnight, aligned with cprs


@dataclass
class Validated:
    """One source after validation: encoded columns, parsed values and reason bits."""

    source: Source
    rows: int
    codes: list[str]  # reason codes; bit i of ``bits`` is codes[i]
    bits: np.ndarray  # uint64 per row, 0 = accepted
    columns: dict[str, Encoded]
    parsed: dict[str, Parsed]
    cpr: CprParsed

    @property
    def accepted(self) -> np.ndarray:
        return np.flatnonzero(self.bits == 0)

    @property
    def quarantined(self) -> np.ndarray:
        return np.flatnonzero(self.bits != 0)


def encode_table(table: pa.Table, source: Source) -> dict[str, Encoded]:
    """Encode every contract column (the caller drops the text table afterwards)."""
    return {name: encode(table.column(name)) for name in source.columns}


def validate(columns: dict[str, Encoded], source: Source, key: PseudonymKey, today: date,
             register: Register | None) -> Validated:
    """Validate every row of an encoded extract (see the module docstring).

    ``register`` is the accepted population (``None`` while validating the population).
    """
    schema = source.model.to_schema()
    codes = reason_codes(source)
    bit = {code: np.uint64(1) << np.uint64(i) for i, code in enumerate(codes)}
    rows = len(columns["cpr"].codes)
    bits = np.zeros(rows, dtype=np.uint64)
    first_day_after = np.datetime64(today + timedelta(days=1), "ns")

    cpr = parse_cprs(columns["cpr"], schema.columns["cpr"], key, register)
    per_value = np.zeros(len(cpr.empty), dtype=np.uint64)
    per_value[cpr.empty] |= bit["missing:cpr"]
    per_value[cpr.invalid] |= bit["invalid_cpr"]
    bits |= per_value[columns["cpr"].codes]

    parsed: dict[str, Parsed] = {}
    for name, col in schema.columns.items():
        if name == "cpr":
            continue
        p = parse_column(columns[name], col)
        parsed[name] = p
        per_value = np.zeros(len(p.empty), dtype=np.uint64)
        if not col.nullable:
            per_value[p.empty] |= bit[f"missing:{name}"]
        if p.kind != "text":
            per_value[p.bad_type] |= bit[f"bad_type:{name}"]
        if f"bad_code:{name}" in bit:
            per_value[p.bad_code] |= bit[f"bad_code:{name}"]
        if p.datetimes is not None:
            per_value[p.datetimes >= first_day_after] |= bit[f"future_date:{name}"]
        bits |= per_value[columns[name].codes]

    if source.is_register:
        birth_rows = _days(parsed["birth_date"], columns["birth_date"])
        key_codes, _ = pd.factorize(cpr.normalised, use_na_sentinel=True)
        person_key = _with_null_slot(key_codes.astype(np.int64), -1)[columns["cpr"].codes]
        later = pd.Series(person_key).duplicated().to_numpy() & (person_key >= 0)
        bits[later] |= bit["duplicate"]
    else:
        position = cpr.register_position
        known = position >= 0
        unknown = ~known & ~cpr.invalid & ~cpr.empty
        bits |= np.where(unknown, bit["unknown_cpr"], np.uint64(0)).astype(np.uint64)[
            columns["cpr"].codes]
        birth_by_value = np.full(len(position), np.datetime64("NaT"), dtype="datetime64[ns]")
        if register is not None:
            birth_by_value[known] = register.birth_days[position[known]]
        birth_rows = birth_by_value[columns["cpr"].codes]
        bits[duplicated_rows(list(columns.values()))] |= bit["duplicate"]

    for name, p in parsed.items():
        if p.datetimes is None or name == "birth_date":
            continue
        before = p.datetimes[columns[name].codes] < birth_rows  # NaT compares False
        bits[before] |= bit[f"before_birth:{name}"]
    for name, col in schema.columns.items():
        if f"before_move_in:{name}" in bit:
            ref = col.metadata[NOT_BEFORE]
            # Whole days: moving out (or dying) on the day one moved in is possible.
            earlier = _days(parsed[name], columns[name]) < _days(parsed[ref], columns[ref])
            bits[earlier] |= bit[f"before_move_in:{name}"]
    return Validated(source, rows, codes, bits, columns, parsed, cpr)


def duplicated_rows(columns: list[Encoded]) -> np.ndarray:
    """Rows equal in every column to an earlier row (exact text, compared by codes).

    The codes are folded into one int64 per row (re-numbered whenever the product of the
    column sizes would overflow) and hashed once: a third of the memory and half the time
    of ``DataFrame.duplicated`` on the code columns.
    """
    rows = len(columns[0].codes) if columns else 0
    key = np.zeros(rows, dtype=np.int64)
    span = 1
    for enc in columns:
        size = enc.null_slot + 1
        if span * size >= 2**62:
            key, uniques = pd.factorize(key)
            span = len(uniques)
        key = key * size + enc.codes
        span *= size
    return pd.Series(key).duplicated().to_numpy()


def _days(p: Parsed, enc: Encoded) -> np.ndarray:
    """Per-row dates at midnight (a birth date with a time still allows events that day)."""
    assert p.datetimes is not None
    return p.datetimes.astype("datetime64[D]").astype("datetime64[ns]")[enc.codes]


def register_of(v: Validated) -> Register:
    """The accepted rows of a validated population as a :class:`Register`."""
    rows = v.accepted
    codes = v.columns["cpr"].codes[rows]
    normalised = _with_null_slot(v.cpr.normalised.to_numpy(dtype=object), None)
    ids = v.cpr.person_id.to_numpy(zero_copy_only=False)
    return Register(pd.Index(normalised[codes], dtype="string[pyarrow]"), ids[codes],
                    _days(v.parsed["birth_date"], v.columns["birth_date"])[rows])


def fix_hint(v: Validated, code: str, today: date) -> str:
    """What to change in the extract so that its rows stop getting reason ``code``."""
    kind, _, column = code.partition(":")
    if kind == "bad_type":
        return _type_hint(v, column)
    return {
        "missing": f"fill in {column}, which the contract requires",
        "invalid_cpr": "write cpr as DDMMYY-SSSS with a real birth date, as text (a number "
                       "loses leading zeros)",
        "bad_code": f"use the values the {v.source.name} contract allows for {column} "
                    "(`overblik contracts` lists them)",
        "future_date": f"{column} is after the reference date {today.isoformat()}: check the "
                       "reference date (--today) and the dates",
        "unknown_cpr": "the persons are not in the accepted population register: fix the "
                       "register's quarantined rows, or check that the extract is from the "
                       "same municipality",
        "before_birth": f"check {column} against the person's birth_date",
        "before_move_in": f"check {column} against move_in_date",
        "duplicate": "remove the repeated rows",
    }[kind]


def _type_hint(v: Validated, column: str) -> str:
    p = v.parsed[column]
    if p.kind == "datetime":
        bad = _trimmed(v.columns[column].uniques).filter(pa.array(p.bad_type[:-1]))
        numbers = matches(bad, _NUMBER_RE)
        if 2 * np.count_nonzero(numbers) > len(numbers):  # e.g. epoch seconds or 19900101
            return f"store {column} as a date (YYYY-MM-DD), not a number"
        return f"write {column} as a date YYYY-MM-DD, optionally with a time HH:MM[:SS]"
    if p.kind == "float":
        return f"write {column} as a number with '.' as the decimal point (e.g. 12.5)"
    return f"write {column} as true/false or 1/0"


def lost_leading_zero_rows(v: Validated) -> int:
    """Rows whose CPR is a 9-digit number: a CPR number that lost its leading zero.

    A CPR number starting with a day 01-09 that went through a number (a spreadsheet, an
    integer column) comes back with nine digits; no valid CPR number has nine.
    """
    shaped = _with_null_slot(matches(_trimmed(v.columns["cpr"].uniques), r"^\d{9}(?:\.0)?$"),
                             False)
    return int(np.count_nonzero(shaped[v.columns["cpr"].codes]))


def reason_texts(v: Validated, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """First reason and all reasons (``;``-joined, fixed order) of the given rows."""
    combos, inverse = np.unique(v.bits[rows], return_inverse=True)
    first = np.empty(len(combos), dtype=object)
    joined = np.empty(len(combos), dtype=object)
    for j, combo in enumerate(combos):  # per distinct combination of reasons
        names = _names(v.codes, int(combo))
        first[j], joined[j] = names[0], ";".join(names)
    return first[inverse], joined[inverse]


def reason_counts(v: Validated) -> tuple[dict[str, int], dict[str, int]]:
    """Rows per first reason (sums to the quarantined count) and per any reason."""
    combos, counts = np.unique(v.bits[v.bits != 0], return_counts=True)
    first: dict[str, int] = {}
    every: dict[str, int] = {}
    for combo, count in zip(combos, counts, strict=True):
        names = _names(v.codes, int(combo))
        first[names[0]] = first.get(names[0], 0) + int(count)
        for name in names:
            every[name] = every.get(name, 0) + int(count)
    order = {code: i for i, code in enumerate(v.codes)}
    return (dict(sorted(first.items(), key=lambda kv: order[kv[0]])),
            dict(sorted(every.items(), key=lambda kv: order[kv[0]])))


def _names(codes: list[str], combo: int) -> list[str]:
    return [code for i, code in enumerate(codes) if combo >> i & 1]
