"""Every bad item of a request, named in one answer: a caller fixes them all in one go.

A caseworker system that sends 50 citizens with three bad ones learns all three (index,
its own ``ref`` where the item has one, the field and the problem) rather than one per
round trip. The list is capped: a broken export of 1,000 items needs the pattern, not
1,000 lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from overblik.serving._schemas import FieldError

__all__ = ["MAX_LISTED", "ApiError", "describe", "item_index", "problem_answer"]

MAX_LISTED = 20


class ApiError(Exception):
    """An answer other than 200: status, message, and the field at fault (if any).

    ``fields``: every bad field when there are several (the items of a batch); ``message``
    then names them all and ``field`` is the first.
    """

    def __init__(self, status: int, message: str, field: str | None = None,
                 fields: list[FieldError] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.fields = fields or []


def problem_answer(exc: ApiError) -> tuple[str, list[FieldError], dict[str, Any]]:
    """The error text, the fields at fault and the audit log's summary of ``exc``."""
    summary: dict[str, Any] = {"error": exc.status, "field": exc.field}
    if exc.fields:  # several bad items: the message already names them
        summary["fields"] = [f.field for f in exc.fields[:MAX_LISTED]]
        return exc.message, exc.fields, summary
    fields = [FieldError(field=exc.field, message=exc.message)] if exc.field else []
    return (f"{exc.field}: {exc.message}" if exc.field else exc.message), fields, summary


def item_index(loc: Sequence[object]) -> int | None:
    """The batch item a location points into (``items[3].cpr`` -> 3), or None."""
    return next((p for p in loc if isinstance(p, int) and not isinstance(p, bool)), None)


def _where(f: FieldError) -> str:
    return f"{f.field} (ref {f.ref})" if f.ref else f.field


def describe(fields: Sequence[FieldError]) -> str:
    """The first :data:`MAX_LISTED` problems as one sentence, with "and N more"."""
    shown = "; ".join(f"{_where(f)}: {f.message}" for f in fields[:MAX_LISTED])
    more = len(fields) - MAX_LISTED
    return shown + (f"; and {more} more" if more > 0 else "")
