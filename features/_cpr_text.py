"""Finding CPR numbers in text: one detector for ingest, error messages and the service.

A CPR number in the wrong place (a free-text reason, a coded column, a CSV row quoted by an
error message) must not pass; this module says where one may be. Ingest hides anything
shaped like one, the service refuses text that holds one, and the privacy scans in the
tests use the same pattern.
"""

from __future__ import annotations

import re
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["CPR_IN_TEXT", "CPR_SHAPE", "HIDDEN", "contains_cpr", "hide_cprs", "matches",
           "may_hold_cpr"]

# A whole value shaped like a CPR number: DDMMYY-SSSS or ten digits.
CPR_SHAPE = r"\d{6}-?\d{4}"
HIDDEN = "<CPR-shaped value hidden>"

_DAY = r"(?:0[1-9]|[12][0-9]|3[01]|6[1-9]|[78][0-9]|9[01])"  # 61-91: replacement numbers
_MONTH = r"(?:0[1-9]|1[0-2])"
# Between the groups: nothing, or one mark of any kind -- a space, dot, slash, colon,
# underscore or any dash (en dash, minus sign, non-breaking hyphen: a word processor's
# "290425–1234" is still a CPR number).
_SEP = r"(?:[^\w]|_)?"
# Every digit on its own ("2 9 0 4 2 5 1 2 3 4"), as read aloud and typed.
_SPACED = (r"(?<![0-9])(?<![0-9]\s)(?:0\s[1-9]|[12]\s[0-9]|3\s[01]|6\s[1-9]|[78]\s[0-9]|9\s[01])"
           r"\s(?:0\s[1-9]|1\s[0-2])(?:\s[0-9]){6}(?![0-9])(?!\s[0-9])")
# What a privacy scan looks for in free text: a birth date DDMMYY (day 01-31, or 61-91 in a
# replacement number) and four digits, written as a caseworker might ("290425-1234",
# "29.04.25-1234", "290425 - 1234", "cpr_2904251234"), glued to letters but not part of a
# longer number. The date check keeps dates and times ("12.03.2024 10:30") out.
CPR_IN_TEXT = re.compile(
    r"(?<![0-9])" + _DAY + _SEP + _MONTH + _SEP + r"[0-9]{2}\s*" + _SEP
    + r"\s*[0-9]{4}(?![0-9])|" + _SPACED)
# Arrow's (RE2) first pass over many values: ten digits with at most three other characters
# between any two; the Python pattern then decides.
_CANDIDATE = r"\p{Nd}(?:\P{Nd}{0,3}\p{Nd}){9}"


def _readable(text: str) -> str:
    # Full-width and other compatibility digits and marks read as the ASCII they stand for.
    return unicodedata.normalize("NFKC", text)


def contains_cpr(text: str) -> bool:
    """Whether free text holds what looks like a CPR number (see :data:`CPR_IN_TEXT`)."""
    return CPR_IN_TEXT.search(_readable(text)) is not None


def hide_cprs(text: str) -> str:
    """``text`` with every CPR-shaped run of digits (any ten in a row, or a CPR number as
    :data:`CPR_IN_TEXT` finds it) replaced by :data:`HIDDEN`: for error messages, which
    quote the rows and values they refuse."""
    return CPR_IN_TEXT.sub(HIDDEN, re.sub(CPR_SHAPE, HIDDEN, _readable(text)))


def matches(values: pa.Array, pattern: str) -> np.ndarray:
    """Per value of a text array: does ``pattern`` (RE2) match somewhere in it? Nulls: False."""
    found = pc.fill_null(pc.match_substring_regex(values, pattern), False)
    return np.asarray(found.to_numpy(zero_copy_only=False), dtype=bool)


def may_hold_cpr(values: pa.Array) -> np.ndarray:
    """Per value of a text array: does it hold a CPR-shaped run (ten digits in a row) or a
    CPR number as :func:`contains_cpr` finds it? Nulls: False."""
    hits = matches(values, CPR_SHAPE)
    candidates = np.flatnonzero(matches(values, _CANDIDATE) & ~hits)
    if len(candidates):
        texts = values.take(pa.array(candidates)).to_pylist()
        hits[candidates] = [contains_cpr(t) for t in texts]
    return hits
