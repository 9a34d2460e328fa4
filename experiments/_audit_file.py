"""Read a user's scored table (CSV or Parquet) for ``overblik audit``.

Any table with one row per person (or decision) will do: a 0/1 label column, a numeric
score column and one or more sensitive-attribute columns; other columns are ignored and
never read into memory. Every problem is one :class:`InputError` naming the file, the
column and, for bad values, the first row (1-based data row; in a CSV also its line).
"""

from __future__ import annotations

import csv
import difflib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from overblik.features._errors import InputError
from overblik.features._readers import hide_cprs, sniff_format

__all__ = ["AuditTable", "non_scalar_problem", "parse_reference", "parse_sensitive",
           "read_audit_table", "read_columns", "read_header", "sniff_table_file"]

_TRUE = frozenset({"1", "1.0", "true"})
_FALSE = frozenset({"0", "0.0", "false"})


@dataclass(frozen=True)
class AuditTable:
    """The columns an audit needs, checked: labels 0/1, finite scores, sensitive as text."""

    path: Path
    y_true: np.ndarray  # int8, 0/1
    scores: np.ndarray  # float64, finite
    sensitive: pd.DataFrame  # one text column per attribute; missing values as NA
    is_csv: bool

    @property
    def rows(self) -> int:
        return len(self.y_true)


def parse_sensitive(items: Sequence[str]) -> list[str]:
    """``--sensitive`` values (repeated and/or comma-separated) as a list of column names."""
    names = [part.strip() for item in items for part in item.split(",")]
    if not items or not any(names):
        raise InputError("--sensitive names no column: give the attribute column(s) to audit, "
                         "e.g. --sensitive sex,origin")
    if "" in names:
        raise InputError(f"--sensitive {','.join(items)!r} has an empty column name: separate "
                         "the names by single commas, e.g. --sensitive sex,origin")
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise InputError(f"--sensitive names {', '.join(duplicated)} twice: give each once")
    return names


def parse_reference(items: Sequence[str], table: AuditTable) -> dict[str, str]:
    """``--reference COL=VALUE`` options as a mapping, checked against the table."""
    out: dict[str, str] = {}
    for item in items:
        column, sep, value = item.partition("=")
        column, value = column.strip(), value.strip()
        if not sep or not column or not value or "=" in value:
            raise InputError(f"--reference {item!r} is not COLUMN=VALUE: write e.g. "
                             "--reference origin=danish (repeat the option for more columns)")
        if column not in table.sensitive.columns:
            raise InputError(f"--reference {item!r}: {column!r} is not one of the --sensitive "
                             f"columns ({', '.join(table.sensitive.columns)})")
        if column in out:
            raise InputError(f"--reference gives {column!r} twice: give one reference group "
                             "per column")
        present = table.sensitive[column].dropna()
        if not (present == value).any():
            values = sorted(present.unique().tolist())
            shown = hide_cprs_in_text(", ".join(map(str, values[:20]))) + (
                " …" if len(values) > 20 else "")
            raise InputError(f"--reference {item!r}: no row of {table.path} has {column} = "
                             f"{value!r} (an empty group); its values: {shown}")
        out[column] = value
    return out


def read_audit_table(path: Path, *, label: str, score: str,
                     sensitive: Sequence[str]) -> AuditTable:
    """Read and check the label, score and sensitive columns of a CSV or Parquet file.

    The format is recognised from the content (Parquet's magic bytes at both ends), not
    the suffix, see :func:`~overblik.features._readers.sniff_format`.

    Raises
    ------
    InputError
        Unreadable or empty file, missing columns (with the available ones), labels that
        are not 0/1, scores that are not finite numbers (naming the row), or a sensitive
        column without any value.
    """
    path = Path(path)
    names = [label, score, *sensitive]
    roles = {label: "--label", score: "--score", **{s: "--sensitive" for s in sensitive}}
    clash = [n for n in dict.fromkeys(names) if names.count(n) > 1]
    if clash:
        raise InputError(f"column {clash[0]!r} is given for more than one of --label, --score "
                         "and --sensitive: each column has one role")
    is_csv = sniff_table_file(path, verb="audit", columns=", ".join(names))
    table = read_columns(path, is_csv, read_header(path, is_csv), names, roles)
    if table.num_rows == 0:
        raise InputError(f"{path} has a header but no rows: there is nothing to audit")
    for name in names:
        problem = non_scalar_problem(path, name, roles[name], table.column(name))
        if problem is not None:
            raise InputError(problem)
    y = _labels(path, label, table.column(label), is_csv)
    s = _scores(path, score, table.column(score), is_csv)
    frame = pd.DataFrame({c: _text(path, c, table.column(c)) for c in sensitive})
    return AuditTable(path=path, y_true=y, scores=s, sensitive=frame, is_csv=is_csv)


def sniff_table_file(path: Path, *, verb: str, columns: str) -> bool:
    """Check that ``path`` is a non-empty CSV or Parquet file; whether it is a CSV.

    ``verb`` says what the command does with the file ("audit"), ``columns`` which columns
    it expects; both go into the error messages.
    """
    if not path.exists():
        raise InputError(f"{path} does not exist: pass the CSV or Parquet file to {verb}")
    if not path.is_file():
        raise InputError(f"{path} is not a file: pass the CSV or Parquet file to {verb}")
    if path.stat().st_size == 0:
        raise InputError(f"{path} is empty (zero bytes): expected a table with the columns "
                         f"{columns}")
    kind = sniff_format(path)
    if kind == "binary":
        raise InputError(f"{path} is neither CSV text nor Parquet (it holds binary data): "
                         "export the table as UTF-8 CSV or Parquet")
    return kind == "csv"


def read_header(path: Path, is_csv: bool) -> list[str]:
    """The column names: a CSV's whole first line (any line ending) or the Parquet schema's.

    Raises
    ------
    InputError
        Not UTF-8, no header line, or an unreadable Parquet file.
    """
    if not is_csv:
        try:
            return list(pq.read_schema(path).names)
        except (pa.ArrowException, OSError) as exc:
            raise InputError(f"{path} is not a readable Parquet file (it may be truncated): "
                             f"{hide_cprs_in_text(str(exc))}") from None
    try:
        # newline="" lets the csv module end the line at \n, \r\n or a lone \r, and read
        # as much as the line needs (a header of thousands of columns included).
        with path.open(encoding="utf-8-sig", newline="") as fh:
            header = [n.strip() for n in next(csv.reader(fh), [])]
    except UnicodeDecodeError:
        raise _not_utf8(path) from None
    except csv.Error as exc:
        raise InputError(f"{path}: the header line cannot be read as CSV ({exc}): the first "
                         "line must name the columns, separated by commas") from None
    if not any(header):
        raise InputError(f"{path} has no header line: the first line must name the columns")
    return header


def read_columns(path: Path, is_csv: bool, header: list[str], names: list[str],
                 roles: dict[str, str]) -> pa.Table:
    """Read the columns ``names`` (each once; other columns are never read into memory).

    ``roles`` maps each name to its option (``--label``) for the error messages.

    Raises
    ------
    InputError
        A column is missing or named twice in ``header``, or the file cannot be parsed.
    """
    _check_columns(path, header, names, roles)
    _check_unique(path, header, names, is_csv)
    return _read_csv(path, header, names) if is_csv else _read_parquet(path, names)


def _check_unique(path: Path, header: list[str], names: list[str], is_csv: bool) -> None:
    """Refuse a wanted column that the header names twice (which one would be meant?)."""
    for name in dict.fromkeys(names):
        places = [str(i + 1) for i, found in enumerate(header) if found == name]
        if len(places) > 1:
            times = "twice" if len(places) == 2 else f"{len(places)} times"
            where = "header" if is_csv else "file's columns"
            raise InputError(f"{path}: column {name!r} appears {times} in the {where} "
                             f"(columns {', '.join(places[:-1])} and {places[-1]}): rename "
                             f"{'one' if len(places) == 2 else 'all but one'}")


def _check_columns(path: Path, found: list[str], names: list[str],
                   roles: dict[str, str]) -> None:
    missing = [n for n in dict.fromkeys(names) if n not in found]
    if not missing:
        return
    parts = []
    for name in missing:
        guess = difflib.get_close_matches(name, found, n=1)
        hint = f" (did you mean {guess[0]!r}?)" if guess else ""
        parts.append(f"{roles[name]} column {name!r}{hint}")
    shown = ", ".join(found[:60]) + (f" … ({len(found)} in all)" if len(found) > 60 else "")
    sep = ""
    if len(found) == 1 and ";" in found[0]:
        sep = " (the header looks ';'-separated: write the CSV with ',' as the delimiter)"
    raise InputError(f"{path} has no {' and no '.join(parts)}; its columns are: {shown}{sep}")


def _read_csv(path: Path, header: list[str], names: list[str]) -> pa.Table:
    wanted = list(dict.fromkeys(names))
    read = pacsv.ReadOptions(column_names=header, skip_rows=1)
    convert = pacsv.ConvertOptions(include_columns=wanted,
                                   column_types={n: pa.string() for n in wanted},
                                   null_values=[""], strings_can_be_null=True)
    try:
        return pacsv.read_csv(path, read_options=read, convert_options=convert)
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "invalid UTF8" in message:
            raise _not_utf8(path) from None
        raise InputError(f"{path} cannot be read as CSV: {hide_cprs_in_text(message)}; check "
                         "that "
                         "every row has as many fields as the header (quote values that "
                         "contain commas)") from None


def _not_utf8(path: Path) -> InputError:
    return InputError(f"{path} is not UTF-8 text: re-export it as UTF-8 (e.g. `iconv -f "
                      f"latin1 -t utf-8 {path.name}`) or as Parquet")


def _read_parquet(path: Path, names: list[str]) -> pa.Table:
    try:
        return pq.read_table(path, columns=list(dict.fromkeys(names)))
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path} cannot be read as Parquet: {hide_cprs_in_text(str(exc))}"
                         ) from None


def non_scalar_problem(path: Path, column: str, role: str,
                       values: pa.ChunkedArray) -> str | None:
    """Why a Parquet column of lists, structs or maps cannot be used (``None``: it can)."""
    if not pa.types.is_nested(values.type):
        return None
    return (f"{path}: {role} column {column!r} holds nested values (Parquet type "
            f"{values.type}), not one value per row: store a single number or text per row")


# A decimal point followed by digits: a number's fraction, never part of a CPR number.
_FRACTION = re.compile(r"(?<=\d)(\.\d+)")


def hide_cprs_in_text(text: str) -> str:
    """:func:`hide_cprs`, except in a number's fraction (``0.1234567890`` stays readable)."""
    parts = _FRACTION.split(text)
    # re.split with a group: the fractions are at the odd positions.
    return "".join(part if i % 2 else hide_cprs(part) for i, part in enumerate(parts))


def _where(row: int, is_csv: bool) -> str:
    """1-based data row; a CSV's line counts the header too."""
    return f"row {row + 1} (line {row + 2})" if is_csv else f"row {row + 1}"


def _shown(value: object) -> str:
    """A value for a message: plain Python (``inf``, not ``np.float64(inf)``), CPRs hidden."""
    if isinstance(value, np.generic | np.ndarray):
        value = value.tolist()
    return hide_cprs_in_text(repr(value))[:60]


def _labels(path: Path, column: str, values: pa.ChunkedArray, is_csv: bool) -> np.ndarray:
    if pa.types.is_boolean(values.type):
        raw = values.to_pandas()
        missing = raw.isna().to_numpy()
        out = raw.fillna(False).to_numpy(dtype=bool).astype(np.int8)
    else:
        raw = values.to_pandas()
        text = raw.astype("string").str.strip().str.lower()
        missing = text.isna().to_numpy()
        is_one = text.isin(_TRUE).to_numpy(dtype=bool)
        is_zero = text.isin(_FALSE).to_numpy(dtype=bool)
        bad = ~(is_one | is_zero | missing)
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            others = pd.unique(raw[bad])[:5]
            raise InputError(
                f"{path}: --label column {column!r} must hold 0/1 (or true/false), but "
                f"{_where(first, is_csv)} has {_shown(raw.iloc[first])} (values that are not "
                f"0/1: {', '.join(_shown(v) for v in others)}); recode the outcome as 1 = "
                "happened, 0 = did not")
        out = is_one.astype(np.int8)
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        raise InputError(f"{path}: --label column {column!r} is empty in {_where(first, is_csv)}"
                         f" ({int(missing.sum())} rows without a label): drop the rows whose "
                         "outcome is unknown, or record it as 0/1")
    return out


def _scores(path: Path, column: str, values: pa.ChunkedArray, is_csv: bool) -> np.ndarray:
    raw = values.to_pandas()
    if pa.types.is_integer(values.type) or pa.types.is_floating(values.type):
        numbers = raw.to_numpy(dtype=np.float64, na_value=np.nan)
    elif pa.types.is_boolean(values.type):
        raise InputError(f"{path}: --score column {column!r} holds true/false, not scores: "
                         "pass the column with the model's numeric score or probability")
    else:
        numbers = pd.to_numeric(raw.astype("string").str.strip(), errors="coerce"
                                ).to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(numbers)
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        value = raw.iloc[first]
        what = "no value" if pd.isna(value) else f"{_shown(value)}, which is not a finite number"
        raise InputError(f"{path}: --score column {column!r} must be numeric, but "
                         f"{_where(first, is_csv)} has {what} ({int(bad.sum())} such rows): "
                         "every row needs the model's score")
    return numbers


def _text(path: Path, column: str, values: pa.ChunkedArray) -> pd.Series:
    if values.null_count == len(values):
        raise InputError(f"{path}: --sensitive column {column!r} has no value in any row (every "
                         "group would be empty): fill it in or leave the attribute out")
    series = values.to_pandas()
    if not pd.api.types.is_string_dtype(series):
        series = series.astype("string")
    return series.astype("string").str.strip().replace("", pd.NA).reset_index(drop=True)
