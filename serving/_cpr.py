"""CPR numbers at the service's edge: check the shape and the birth date, never echo them.

A CPR number arrives only in ``/score``, ``/score/batch``, ``/explain`` and ``/recommend``; it
is checked here, pseudonymised with the ingest key
(:func:`overblik.features._pseudonym.pseudonymise_one`) and dropped. Error messages never
contain the number itself.
"""

from __future__ import annotations

import re
from datetime import date

__all__ = ["CPR_IN_TEXT", "check_cpr", "cpr_birth_date"]

_SHAPE = re.compile(r"^(\d{2})(\d{2})(\d{2})-?(\d)(\d{3})$")
# What a privacy scan looks for in free text: DDMMYY-SSSS or ten digits (also with a space).
CPR_IN_TEXT = re.compile(r"\b\d{6}[-\s]?\d{4}\b")


def _century(year2: int, seventh: int) -> int:
    """The birth century from the 7th digit, as in the CPR scheme (CPR-kontoret)."""
    if seventh <= 3:
        return 1900
    if seventh in (4, 9):
        return 2000 if year2 <= 36 else 1900
    return 2000 if year2 <= 57 else 1800


def cpr_birth_date(cpr: str) -> date:
    """The birth date encoded in a CPR number (``DDMMYY-SSSS`` or ``DDMMYYSSSS``).

    Raises
    ------
    ValueError
        With a message that does not contain the number.
    """
    m = _SHAPE.match(cpr.strip())
    if m is None:
        raise ValueError("is not a CPR number: write ten digits, DDMMYY-SSSS or DDMMYYSSSS")
    day, month, year2, seventh = int(m[1]), int(m[2]), int(m[3]), int(m[4])
    try:
        born = date(_century(year2, seventh) + year2, month, day)
    except ValueError:
        raise ValueError("is not a valid CPR number: the first six digits must be a birth "
                         "date DDMMYY") from None
    if born > date.today():
        raise ValueError("is not a valid CPR number: its birth date is in the future")
    return born


def check_cpr(cpr: str) -> str:
    """The CPR number as ten digits, after checking its shape and birth date.

    Raises
    ------
    ValueError
        With a message that does not contain the number.
    """
    cpr_birth_date(cpr)
    return cpr.strip().replace("-", "")
