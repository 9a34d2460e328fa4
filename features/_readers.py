"""Find the source extracts in a raw folder and read them as text, refusing malformed files.

Every value is read as text so that no row is lost to parsing: typing happens per column in
:mod:`overblik.features._validation`, where a bad value quarantines its row instead of
failing the file. What *does* fail the file (one :class:`InputError` naming it) is a file
that cannot be read as a table of the contract's columns at all.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import difflib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from overblik.features._contracts import SOURCE_BY_NAME, SOURCES, Source
from overblik.features._cpr_text import hide_cprs
from overblik.features._errors import InputError

Format = Literal["csv", "parquet"]
SUFFIXES: dict[str, Format] = {".csv": "csv", ".parquet": "parquet"}
PARQUET_MAGIC = b"PAR1"
SNIFF_BYTES = 64 * 1024


def accepted_names() -> str:
    """The file names a raw folder may hold, for error messages."""
    return ", ".join(f"{s.name}.csv|.parquet" for s in SOURCES)


def sniff_format(path: Path) -> Literal["csv", "parquet", "binary"]:
    """What a table file holds, from its bytes: Parquet, CSV text or other binary data.

    Parquet starts *and* ends with ``PAR1``. A file that only starts with it is CSV text
    when its head is text (a CSV whose first column is named ``PAR1``), and otherwise a
    broken (e.g. truncated) Parquet file, as is a ``*.parquet`` file that starts with it.
    """
    return _sniff(path)[0]


def _sniff(path: Path) -> tuple[Literal["csv", "parquet", "binary"], bytes]:
    """:func:`sniff_format`, and the head it read (the CSV header check reads it too)."""
    with path.open("rb") as fh:
        head = fh.read(SNIFF_BYTES)
        tail = b""
        # Below two magics the start and end would overlap: no Parquet file is that short.
        if path.stat().st_size >= 2 * len(PARQUET_MAGIC):
            fh.seek(-len(PARQUET_MAGIC), 2)
            tail = fh.read()
    text = _looks_like_text(head)
    if head.startswith(PARQUET_MAGIC) and (
            tail == PARQUET_MAGIC or not text or path.suffix.lower() == ".parquet"):
        return "parquet", head
    return ("csv" if text else "binary"), head


def _looks_like_text(head: bytes) -> bool:
    """No NUL byte: text in any 8-bit encoding (UTF-8 or not, which the CSV reader tells)
    has none, while Parquet pages (length prefixes, small integers) always hold some."""
    return b"\x00" not in head


@dataclass(frozen=True)
class Extract:
    """One source extract found in the raw folder."""

    source: Source
    path: Path
    fmt: Format


def discover(raw: Path) -> tuple[list[Extract], list[str]]:
    """The extracts in ``raw`` (in contract order) and the names of absent event sources.

    Hidden files (a leading dot, e.g. ``.DS_Store``) are skipped; any other file that is
    not ``<source>.csv`` or ``<source>.parquet`` is refused, so a misspelt extract cannot
    be silently left out.

    Raises
    ------
    InputError
        When ``raw`` is not a folder, holds an unknown entry, holds two files for one
        source, or lacks the population register.
    """
    if not raw.is_dir():
        raise InputError(f"raw folder {raw} does not exist or is not a folder: pass the folder "
                         f"holding the extracts ({accepted_names()})")
    found: dict[str, Extract] = {}
    for path in sorted(raw.iterdir()):
        if path.name.startswith("."):
            continue
        fmt = SUFFIXES.get(path.suffix)
        source = SOURCE_BY_NAME.get(path.stem)
        if path.is_dir() or fmt is None or source is None:
            guess = difflib.get_close_matches(
                path.name, [f"{s.name}{x}" for s in SOURCES for x in SUFFIXES], n=1
            )
            hint = f" (did you mean {guess[0]}?)" if guess else ""
            what = "folder" if path.is_dir() else "file"
            raise InputError(f"unexpected {what} {path} in the raw folder{hint}: the raw folder "
                             f"may only hold {accepted_names()}; rename or move it")
        if source.name in found:
            raise InputError(f"two files for source {source.name!r} in {raw}: "
                             f"{found[source.name].path.name} and {path.name}; keep one")
        found[source.name] = Extract(source, path, fmt)
    if "population" not in found:
        raise InputError(f"{raw} has no population register: add population.csv or "
                         f"population.parquet (accepted names: {accepted_names()})")
    extracts = [found[s.name] for s in SOURCES if s.name in found]
    absent = [s.name for s in SOURCES if s.name not in found]
    return extracts, absent


def check_header(extract: Extract) -> None:
    """Check an extract's header (CSV) or schema (Parquet) against its contract, cheaply.

    Raises
    ------
    InputError
        As :func:`read_text` does for problems visible without reading the rows.
    """
    path = extract.path
    if path.stat().st_size == 0:
        raise _empty(extract)
    if extract.fmt == "csv":
        check_columns(path, _read_header(path, extract.source), extract.source)
    else:
        _check_parquet_schema(path, extract.source)


def read_text(extract: Extract) -> pa.Table:
    """Read an extract with every contract column as text, in contract column order.

    CSV values are exactly as written (``""`` for an empty field, never null); Parquet
    values are cast to text and keep their nulls.

    Raises
    ------
    InputError
        When the file is empty, not CSV/Parquet, not UTF-8, has ragged rows, or its columns
        differ from the contract.
    """
    path = extract.path
    if path.stat().st_size == 0:
        raise _empty(extract)
    if extract.fmt == "csv":
        return _read_csv(path, extract.source)
    return _read_parquet(path, extract.source)


def _empty(extract: Extract) -> InputError:
    return InputError(f"{extract.path} is empty (zero bytes): expected a header line with the "
                      f"columns {', '.join(extract.source.columns)}")


def check_columns(path: Path, found: list[str], source: Source) -> None:
    """Refuse a header whose column set differs from the contract (any order is fine)."""
    expected = source.columns
    if any(_LOOKS_LIKE_DATA.search(name) for name in found if name not in expected):
        # A file without a header line: its first row is a person's data (a CPR number, a
        # name, an address), which a message must not repeat.
        raise InputError(f"{path}: the first line holds dates or numbers, so it looks like "
                         f"data, not a header: add the header line; the {source.name} "
                         f"contract expects: {', '.join(expected)}")
    dupes = sorted({c for c in found if found.count(c) > 1})
    if dupes:
        raise InputError(f"{path}: column(s) {', '.join(dupes)} appear more than once in the "
                         "header; each column must appear exactly once")
    missing = [c for c in expected if c not in found]
    extra = [c for c in found if c not in expected]
    if not missing and not extra:
        return
    parts = []
    if missing:
        parts.append(f"missing column(s) {', '.join(missing)}")
    if extra:
        parts.append(f"unexpected column(s) {hide_cprs(', '.join(extra))}")
    hint = ""
    separator = _other_separator(found)
    if separator:
        hint = (f" (the header looks {separator}-separated: write the CSV with ',' as the "
                "delimiter)")
    raise InputError(f"{path}: {' and '.join(parts)}{hint}; the {source.name} contract "
                     f"expects exactly: {', '.join(expected)}")


# What no column name holds and a row of data does: a year, a date, a CPR number.
_LOOKS_LIKE_DATA = re.compile(r"[0-9]{4}|[0-9]{2}[-./][0-9]{2}")
# Delimiters other CSV exports use, as an error message names them.
_OTHER_SEPARATORS = {";": "';'", "\t": "tab", "|": "'|'"}


def _other_separator(found: list[str]) -> str | None:
    """How a one-column header is separated, when it splits on another common delimiter."""
    if len(found) != 1:
        return None
    counts = {name: found[0].count(sep) for sep, name in _OTHER_SEPARATORS.items()}
    best = max(counts, key=lambda name: counts[name])
    return best if counts[best] else None


def _read_header(path: Path, source: Source) -> list[str]:
    """The CSV header, read on its own so a wrong header fails before the file is parsed."""
    kind, head = _sniff(path)
    if kind == "parquet":
        raise InputError(f"{path} is a Parquet file, not CSV: rename it to {path.stem}.parquet")
    if kind == "binary":
        raise InputError(f"{path} is not a CSV text file (it holds binary data): export the "
                         f"{source.name} extract as UTF-8 CSV or Parquet")
    line = head.split(b"\n", 1)[0].rstrip(b"\r")
    if line.startswith(codecs.BOM_UTF8):
        line = line[len(codecs.BOM_UTF8):]
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        raise _not_utf8(path, 1) from None
    names = next(csv.reader([text]), [])
    names = [n.strip() for n in names]
    if not any(names):
        raise InputError(f"{path} has no header line: the first line must name the columns "
                         f"{', '.join(source.columns)}")
    return names


def _read_csv(path: Path, source: Source) -> pa.Table:
    names = _read_header(path, source)
    check_columns(path, names, source)
    read = pacsv.ReadOptions(column_names=names, skip_rows=1, use_threads=True)
    convert = pacsv.ConvertOptions(
        column_types={n: pa.string() for n in names},
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    try:
        table = pacsv.read_csv(path, read_options=read, convert_options=convert)
    except pa.ArrowInvalid as exc:
        message = str(exc)
        if "invalid UTF8" in message:
            raise _not_utf8(path, _first_non_utf8_line(path)) from None
        if "Expected" in message and "columns" in message:
            raise _ragged(path, names) from None
        raise InputError(f"{path} cannot be read as CSV: {hide_cprs(message)}") from None
    return table.select(source.columns)


def _not_utf8(path: Path, line: int | None) -> InputError:
    where = f" (first at line {line})" if line else ""
    return InputError(f"{path} is not UTF-8 encoded{where}; it looks like latin-1/Windows-1252: "
                      f"re-export it as UTF-8, e.g. `iconv -f latin1 -t utf-8 {path.name}`")


def _first_non_utf8_line(path: Path) -> int | None:
    # Only on the error path: stream the file once to point at the line to fix.
    with path.open("rb") as fh:
        for number, raw_line in enumerate(fh, start=1):
            try:
                raw_line.decode("utf-8")
            except UnicodeDecodeError:
                return number
    return None


def _ragged(path: Path, names: list[str]) -> InputError:
    """Re-read single-threaded (slower, but only on this error path) to find the bad row."""
    found: list[tuple[int, int | None]] = []

    def handler(row: pacsv.InvalidRow) -> str:
        found.append((row.actual_columns, row.number))
        return "error"

    read = pacsv.ReadOptions(column_names=names, skip_rows=1, use_threads=False)
    convert = pacsv.ConvertOptions(column_types={n: pa.string() for n in names})
    with contextlib.suppress(pa.ArrowInvalid):  # the handler has what we need
        pacsv.read_csv(path, read_options=read, convert_options=convert,
                       parse_options=pacsv.ParseOptions(invalid_row_handler=handler))
    if found:
        got, line = found[0]
        where = f"line {line}" if line is not None else "a row"
        return InputError(f"{path}: {where} has {got} field(s) where the header has {len(names)} "
                          "(ragged rows): fix the row, or quote values that contain commas or "
                          "line breaks")
    return InputError(f"{path} has rows with a different number of fields than the header "
                      f"({len(names)}): fix them, or quote values that contain commas")


def _check_parquet_schema(path: Path, source: Source) -> None:
    """Refuse a Parquet schema with other columns than the contract, or a numeric CPR."""
    schema = _parquet_schema(path)
    check_columns(path, list(schema.names), source)
    cpr = schema.field("cpr").type
    if pa.types.is_integer(cpr) or pa.types.is_floating(cpr) or pa.types.is_decimal(cpr):
        # A CPR number of a person born on the 1st-9th comes back with nine digits, and
        # which rows lost a zero cannot be told for sure: refuse the file.
        raise InputError(f"{path}: cpr is stored as a number ({cpr}), so leading zeros are "
                         "lost: store it as text (DDMMYY-SSSS)")


def _read_parquet(path: Path, source: Source) -> pa.Table:
    _check_parquet_schema(path, source)
    try:
        table = pq.read_table(path, columns=source.columns)
    except (pa.ArrowException, OSError) as exc:
        raise InputError(f"{path} cannot be read as Parquet: {hide_cprs(str(exc))}") from None
    columns = [_as_text(path, name, table.column(name)) for name in source.columns]
    return pa.table(columns, names=source.columns)


def _parquet_schema(path: Path) -> pa.Schema:
    try:
        return pq.read_schema(path)
    except (pa.ArrowException, OSError) as exc:
        with path.open("rb") as fh:
            head = fh.read(SNIFF_BYTES)
        looks_csv = _looks_like_text(head) and b"," in head.split(b"\n", 1)[0]
        hint = (f" (it looks like CSV text: rename it to {path.stem}.csv)" if looks_csv
                else " (it may be truncated or another format)")
        raise InputError(f"{path} is not a readable Parquet file{hint}: "
                         f"{hide_cprs(str(exc))}") from None


def _as_text(path: Path, name: str, column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Cast one Parquet column to text; a column that has no text form fails the file."""
    kind = column.type
    if pa.types.is_dictionary(kind):
        column = column.cast(kind.value_type)
        kind = column.type
    if pa.types.is_timestamp(kind) and kind.tz is not None:
        # Wall-clock time where the timestamp was recorded, as a CSV export would show it.
        column = pc.local_timestamp(column)
    if pa.types.is_floating(kind):
        # NaN is how pandas and numpy write "no value" in a float column: treat it as null.
        column = pc.if_else(pc.is_nan(column), pa.scalar(None, kind), column)
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return column  # already text; casting large_string down would only copy it
    try:
        return column.cast(pa.string())
    except pa.ArrowInvalid:
        raise InputError(f"{path}: column {name} holds bytes that are not UTF-8 text: "
                         "write it as UTF-8 text") from None
    except pa.ArrowNotImplementedError:
        raise InputError(f"{path}: column {name} has type {kind}, which has no text form; "
                         "write it as text, a number, a boolean or a date") from None
