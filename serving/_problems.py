"""Every bad item of a request, named in one answer: a caller fixes them all in one go.

A caseworker system that sends 50 citizens with three bad ones learns all three (index,
its own ``ref`` where the item has one, the field and the problem) rather than one per
round trip. The list is capped: a broken export of 1,000 items needs the pattern, not
1,000 lines.
"""

from __future__ import annotations

from collections.abc import Sequence

from overblik.serving._schemas import FieldError

__all__ = ["MAX_LISTED", "describe", "item_index"]

MAX_LISTED = 20


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
