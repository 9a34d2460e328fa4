"""Groups of citizens to audit: one grouping per sensitive attribute and per pair of them.

Every row gets a code per attribute (missing values form the group ``"(missing)"``), and the
full combination of its codes (its *cell*). A grouping (an attribute, or an intersection
``"origin&sex"``) is a function of the cell, which is what lets the bootstrap work on cells
instead of rows: see :mod:`overblik.fairness._bootstrap`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from itertools import combinations

import numpy as np
import numpy.typing as npt
import pandas as pd
import scipy.sparse as sp

from overblik.features._cpr_text import hide_cprs
from overblik.features._errors import InputError

__all__ = ["MAX_GROUPS", "MISSING", "SEP", "GroupIndex", "Grouping", "build_groups",
           "check_aligned", "encode_attribute", "resolve_references"]

MISSING = "(missing)"
SEP = "&"
# An audit compares groups, each large enough to estimate a rate; a column with more
# distinct values than this is a measurement (age in years, income) or an identifier, and
# would be split into cells too small to report, silently.
MAX_GROUPS = 50
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Grouping:
    """One way of splitting the rows: an attribute or an intersection of two.

    Attributes
    ----------
    attribute : str
        Column name, or ``"col1&col2"`` for an intersection.
    names : tuple of str
        Group names by code (an intersection joins the values: ``"immigrant&F"``).
    codes : ndarray of shape (n,)
        Group code of every row.
    counts : ndarray of shape (len(names),)
        Rows per group.
    offset : int
        Position of this grouping's first group among all groups of the index.
    """

    attribute: str
    names: tuple[str, ...]
    codes: IntArray
    counts: IntArray
    offset: int

    @property
    def largest(self) -> int:
        """Code of the largest group (the first one on a tie)."""
        return int(np.argmax(self.counts))


@dataclass(frozen=True)
class GroupIndex:
    """All groupings of an audit, and how rows map to cells and cells to groups.

    Attributes
    ----------
    groupings : tuple of Grouping
        The whole population first (attribute ``""``, one group), then each attribute, then
        each pair of attributes in column order.
    cell : ndarray of shape (n,)
        Cell (full combination of attribute values) of every row, ``0..n_cells-1``.
    membership : scipy.sparse.csr_matrix of shape (n_groups, n_cells)
        1 where a cell belongs to a group (each cell to one group per grouping).
    """

    groupings: tuple[Grouping, ...]
    cell: IntArray
    membership: sp.csr_matrix

    @property
    def n_groups(self) -> int:
        return int(self.membership.shape[0])

    @property
    def n_cells(self) -> int:
        return int(self.membership.shape[1])


def check_aligned(frame: pd.DataFrame, **inputs: object) -> None:
    """Refuse pandas inputs whose index differs from ``frame``'s.

    Rows are paired by position; a Series or DataFrame indexed differently (e.g. shuffled,
    or filtered without ``reset_index``) would pair one person's label with another's
    attributes and give wrong rates without a word.

    Raises
    ------
    InputError
        Naming the input and the fix.
    """
    for name, value in inputs.items():
        if isinstance(value, pd.Series | pd.DataFrame) and not value.index.equals(frame.index):
            raise InputError(f"{name} and the sensitive attributes have different indexes; rows "
                             "are paired by position: align them (e.g. .reset_index(drop=True) "
                             "on both) or pass numpy arrays")


def encode_attribute(column: pd.Series) -> tuple[IntArray, tuple[str, ...]]:
    """Codes and group names of one sensitive column.

    Groups come in the column's category order when it is categorical, else sorted by
    value; ``"(missing)"`` is last. Only values that occur form groups.

    Raises
    ------
    InputError
        When every value of the column is missing, when it has more than
        :data:`MAX_GROUPS` distinct values, or when two distinct values read the same
        (``1`` and ``"1"``): they would be two groups with one name.
    """
    name = str(column.name)
    if isinstance(column.dtype, pd.CategoricalDtype):
        raw = column.cat.codes.to_numpy().astype(np.int64)
        values = list(column.cat.categories)
    else:
        raw, uniques = pd.factorize(column, use_na_sentinel=True)
        raw = raw.astype(np.int64)
        values = list(uniques)
    missing = raw < 0
    if missing.all():
        raise InputError(f"sensitive column {name!r} is missing for every row: fill it in or "
                         "leave the column out of the audit")
    used = np.bincount(raw[~missing], minlength=len(values)) > 0
    present = [i for i in range(len(values)) if used[i]]
    if not isinstance(column.dtype, pd.CategoricalDtype):
        try:
            present.sort(key=lambda i: values[i])
        except TypeError:  # mixed types: order by their text
            present.sort(key=lambda i: str(values[i]))
    recode = np.full(len(values) + 1, len(present), dtype=np.int64)  # last: missing
    recode[present] = np.arange(len(present))
    codes = recode[raw]  # raw == -1 picks the last entry
    if len(present) > MAX_GROUPS:
        # Many distinct values may be identifiers (a CPR number column given as sensitive).
        examples = hide_cprs(", ".join(_name(values[i]) for i in present[:3]))
        raise InputError(f"sensitive column {name!r} has {len(present):,} distinct values "
                         f"({examples}, ...): an audit compares groups, at most {MAX_GROUPS}; "
                         "band a measurement first (e.g. age in years as age bands) and leave "
                         "identifiers out")
    names = [_name(values[i]) for i in present]
    clash = _same_name(names, [values[i] for i in present])
    if clash:
        raise InputError(f"sensitive column {name!r} holds {clash}, which read the same: "
                         "give the column one type (e.g. all text) so each group has one name")
    if missing.any():
        names.append(MISSING)
    return codes, tuple(names)


def _name(value: object) -> str:
    # A whole number in a float column (an int column with gaps) reads as "3", not "3.0".
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value)


def _same_name(names: list[str], values: list[object]) -> str:
    """The first two distinct values with the same name, described; '' when none."""
    seen: dict[str, object] = {}
    for label, value in zip(names, values, strict=True):
        if label in seen:
            first = seen[label]
            return (f"{first!r} ({type(first).__name__}) and {value!r} "
                    f"({type(value).__name__})")
        seen[label] = value
    return ""


def _compress(keys: IntArray) -> tuple[IntArray, IntArray]:
    """Dense codes ``0..k-1`` (in key order) and the distinct keys."""
    distinct, inverse = np.unique(keys, return_inverse=True)
    return inverse.astype(np.int64), distinct


def build_groups(sensitive: pd.DataFrame, *, intersections: bool = True) -> GroupIndex:
    """Encode the sensitive attributes into groupings and cells.

    Parameters
    ----------
    sensitive : DataFrame
        One column per attribute, rows matched to the scores by position.
    intersections : bool, default True
        Add every pair of attributes (pairs only: triples would be mostly small cells).

    Returns
    -------
    GroupIndex
    """
    columns = [str(c) for c in sensitive.columns]
    for c in columns:
        if SEP in c:
            raise InputError(f"sensitive column {c!r}: the name contains {SEP!r}, which names "
                             "intersections; rename the column")
    encoded = [encode_attribute(sensitive.iloc[:, j].rename(c)) for j, c in enumerate(columns)]
    n = len(sensitive)
    # The cell of a row: its codes in mixed radix (np.unique on the stacked codes when the
    # radix would overflow int64).
    sizes = [len(names) for _, names in encoded]
    if float(np.prod([float(s) for s in sizes])) < 2.0**62:
        key = np.zeros(n, dtype=np.int64)
        for (codes, _), size in zip(encoded, sizes, strict=True):
            key = key * size + codes
        cell, distinct = _compress(key)
        cell_codes = np.empty((len(distinct), len(encoded)), dtype=np.int64)
        rest = distinct.copy()
        for j in range(len(encoded) - 1, -1, -1):
            cell_codes[:, j] = rest % sizes[j]
            rest //= sizes[j]
    else:
        stacked = np.stack([codes for codes, _ in encoded], axis=1)
        cell_codes, inverse = np.unique(stacked, axis=0, return_inverse=True)
        cell = inverse.reshape(-1).astype(np.int64)
    n_cells = len(cell_codes)

    specs: list[tuple[str, IntArray, list[str]]] = [("", np.zeros(n_cells, np.int64), [""])]
    for j, (_, names) in enumerate(encoded):
        specs.append((columns[j], cell_codes[:, j], list(names)))
    if intersections:
        for a, b in combinations(range(len(columns)), 2):
            key = cell_codes[:, a] * sizes[b] + cell_codes[:, b]
            of_cell, distinct = _compress(key)
            names_a, names_b = encoded[a][1], encoded[b][1]
            pair_names = [f"{names_a[k // sizes[b]]}{SEP}{names_b[k % sizes[b]]}"
                          for k in distinct.tolist()]
            specs.append((f"{columns[a]}{SEP}{columns[b]}", of_cell, pair_names))

    groupings: list[Grouping] = []
    rows: list[IntArray] = []
    offset = 0
    for attribute, of_cell, group_names in specs:
        codes = of_cell[cell]
        groupings.append(Grouping(attribute=attribute, names=tuple(group_names), codes=codes,
                                  counts=np.bincount(codes, minlength=len(group_names)),
                                  offset=offset))
        rows.append(of_cell + offset)
        offset += len(group_names)
    member_rows = np.concatenate(rows)
    member_cols = np.tile(np.arange(n_cells), len(specs))
    membership = sp.csr_matrix((np.ones(len(member_rows)), (member_rows, member_cols)),
                               shape=(offset, n_cells))
    return GroupIndex(groupings=tuple(groupings), cell=cell, membership=membership)


def resolve_references(index: GroupIndex, reference: Mapping[str, str] | None,
                       min_count: int = 1) -> dict[str, int]:
    """Reference group code per grouping: the given value, else for an intersection the
    cell of its attributes' references (when it has ``min_count`` persons), else the
    largest group.

    ``reference`` maps an attribute (or an intersection ``"a&b"``) to a group name. An
    intersection's largest cell may sit in another district than the district reference
    (Danish in D02, the lowest selection rate): every gap against it was mostly the
    district's, so the attributes' own references are the default.

    Raises
    ------
    InputError
        For an attribute or a value the audit does not have.
    """
    given = dict(reference or {})
    by_name = {g.attribute: g for g in index.groupings if g.attribute}
    out: dict[str, int] = {}
    for attribute, value in given.items():
        if attribute not in by_name:
            raise InputError(f"reference names attribute {attribute!r}, which the audit does "
                             f"not have; use one of {sorted(by_name)}")
        grouping = by_name[attribute]
        if str(value) not in grouping.names:
            raise InputError(f"reference {attribute}={value!r}: no row has this value; use "
                             f"one of {list(grouping.names)}")
        out[attribute] = grouping.names.index(str(value))
    for attribute, grouping in by_name.items():
        if SEP not in attribute:
            out.setdefault(attribute, grouping.largest)
    for attribute, grouping in by_name.items():
        if attribute in out:
            continue
        parts = attribute.split(SEP)
        if all(p in out for p in parts):
            cell = SEP.join(by_name[p].names[out[p]] for p in parts)
            if cell in grouping.names:
                code = grouping.names.index(cell)
                if grouping.counts[code] >= min_count:
                    out[attribute] = code
                    continue
        out[attribute] = grouping.largest
    return out
