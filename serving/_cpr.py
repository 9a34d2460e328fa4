"""CPR numbers at the service's edge: check the shape and the birth date, never echo them.

A CPR number arrives only in ``/score``, ``/score/batch``, ``/explain`` and ``/recommend``; it
is checked here, pseudonymised with the ingest key
(:func:`overblik.features._pseudonym.pseudonymise_one`) and dropped. Error messages never
contain the number itself.
"""

from __future__ import annotations

import re
from datetime import date

from overblik.features._cpr_text import CPR_IN_TEXT, contains_cpr

__all__ = ["CPR_IN_TEXT", "check_cpr", "contains_cpr", "cpr_birth_date", "shown_key"]

# ASCII digits only: a full-width or Arabic-Indic "CPR number" would pass a \d check, be
# pseudonymised as another string and come back as "not in the profile store".
_SHAPE = re.compile(r"^([0-9]{2})([0-9]{2})([0-9]{2})-?([0-9])([0-9]{3})$")
# A client's dict key an error may name: the shape of a feature or programme name.
_NAME_KEY = re.compile(r"^[a-z][a-z0-9_]{0,199}$")


def shown_key(name: str) -> str:
    """A client's own dict key as an error may show it: the key when it has the shape of a
    feature or programme name and holds no CPR number, else ``<key>`` (a client may put
    anything in a key, and errors go into the append-only audit log)."""
    return name if _NAME_KEY.match(name) and not contains_cpr(name) else "<key>"


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
        raise ValueError("is not a CPR number: write ten digits 0-9, DDMMYY-SSSS or "
                         "DDMMYYSSSS")
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
