"""CPR numbers at the edge: shape, birth date and century rule; messages never echo them."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from overblik.serving import CPR_IN_TEXT, check_cpr, contains_cpr, cpr_birth_date


@pytest.mark.parametrize(("cpr", "born"), [
    ("010190-1234", date(1990, 1, 1)),   # 7th digit 1: 1900s
    ("0101901234", date(1990, 1, 1)),
    ("290200-4001", date(2000, 2, 29)),  # 4 and year <= 36: 2000s (a leap year)
    ("150337-4001", date(1937, 3, 15)),  # 4 and year > 36: 1900s
    ("311299-5001", date(1899, 12, 31)),  # 5-8 and year > 57: 1800s
    ("010120-9001", date(2020, 1, 1)),   # 9 and year <= 36: 2000s
])
def test_birth_date_follows_the_century_rule(cpr: str, born: date) -> None:
    assert cpr_birth_date(cpr) == born
    assert check_cpr(cpr) == cpr.replace("-", "")


@pytest.mark.parametrize("bad", ["320190-1234", "011390-1234", "290201-4001", "12345",
                                 "0101901234567", "01019O1234", "010190--1234", "",
                                 "010150-5001"])  # the last: born in 2050
def test_invalid_cpr_is_refused_without_echo(bad: str) -> None:
    with pytest.raises(ValueError) as err:
        check_cpr(bad)
    digits = bad.replace("-", "")
    assert not digits or digits not in str(err.value)
    assert "CPR" in str(err.value)


@given(st.text(max_size=14))
def test_any_text_is_either_a_cpr_or_refused(text: str) -> None:
    try:
        out = check_cpr(text)
    except ValueError as exc:
        assert "CPR" in str(exc)
    else:
        assert len(out) == 10 and out.isdigit()


@pytest.mark.parametrize("text", [
    "note about 010190-1234 today", "0101901234", "barnet cpr0101901234 flyttet",
    "cpr_010190-1234", "borger 01.01.90-1234", "borger 010190 - 1234", "010190:1234",
    "01/01/90 1234", "610190-1234",  # a replacement number: day + 60
    "\uff10\uff11\uff10\uff11\uff19\uff10\uff11\uff12\uff13\uff14",  # full-width digits
    # What a word processor or a phone keyboard makes of the dash (these passed /feedback
    # into the audit log): en dash, minus sign, non-breaking hyphen, figure dash.
    "borger 010190\u20131234 har flyttet", "010190\u22121234", "010190\u20111234",
    "01.01.90\u20121234", "010190\u00a01234",
    "cpr 0 1 0 1 9 0 1 2 3 4 oplyst",  # every digit on its own
])
def test_scan_finds_cpr_numbers_as_caseworkers_write_them(text: str) -> None:
    assert contains_cpr(text), text


@pytest.mark.parametrize("text", [
    "abcdefghijklmnopabcdefghijklmnop",  # a pseudonym
    "mødet 12.03.2024 10:30", "2026-11-28 05:13:23", "2026-11-28T05:13:23.123456",
    "sag 20241201123456",  # part of a longer number
    "2024000123",  # no birth date: month 24
    "tlf 12 34 56 78", "family_support",
    "1 2 3 4 5 6 7 8 9 0 1",  # eleven digits on their own: not a CPR number
    "0 1 3 2 9 0 1 2 3 4",  # on their own, but month 32
])
def test_scan_leaves_dates_times_and_other_numbers(text: str) -> None:
    assert not contains_cpr(text), text
    assert not CPR_IN_TEXT.search(text), text
