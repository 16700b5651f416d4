"""Join the rows of two tables by ``detectid``, never by position.

Survey files keep pixels and catalogue values in separate tables (HDF5 ``/FiberImages``,
``/Spec1D`` and ``/Detections``; FITS image HDUs and ``CATALOG``). Nothing guarantees those
tables are in the same order: HETDEX's ML file is in shot order, its catalogue in another.
:func:`align` finds, for each reference row, the row of the other table with the same id,
and names every row that has no partner instead of pairing it with a neighbour.
"""

from __future__ import annotations

import numpy as np

from mlcore.problems import MAX_ROWS_LISTED, Problem

INT64_MAX = np.iinfo(np.int64).max


def id_problems(ids: np.ndarray, where: str) -> list[Problem]:
    """Ids that cannot be joined on: not integers, >= 2**63, negative, or repeated."""
    ids = np.asarray(ids)
    if ids.ndim != 1:
        return [Problem(where, f"has shape {ids.shape}; expected one detectid per row")]
    if ids.dtype.kind not in "iu":
        return [Problem(where, f"has dtype {ids.dtype}; expected integer detectids")]
    problems = []
    if ids.dtype.kind == "u":
        big = np.flatnonzero(ids > INT64_MAX)
        if big.size:
            problems.append(
                Problem(
                    f"{where} {_rows(big, ids)}",
                    "detectid is 2**63 or more: it does not fit a signed 64-bit id",
                )
            )
            return problems  # the int64 view below would wrap these
    ids = ids.astype(np.int64)
    neg = np.flatnonzero(ids < 0)
    if neg.size:
        problems.append(Problem(f"{where} {_rows(neg, ids)}", "detectid is negative"))
    s = np.sort(ids)
    repeated = np.unique(s[1:][s[1:] == s[:-1]])
    if repeated.size:
        rows = np.flatnonzero(np.isin(ids, repeated))
        problems.append(
            Problem(
                f"{where} {_rows(rows, ids)}",
                f"{repeated.size} detectid value(s) appear more than once",
            )
        )
    return problems


def ids_unusable(ids: np.ndarray) -> bool:
    """Whether ids cannot even be compared as int64 (not integers, or >= 2**63)."""
    ids = np.asarray(ids)
    if ids.ndim != 1 or ids.dtype.kind not in "iu":
        return True
    return ids.dtype.kind == "u" and bool(ids.size) and int(ids.max()) > INT64_MAX


def align(
    ref_ids: np.ndarray, other_ids: np.ndarray, *, ref_where: str, other_where: str
) -> tuple[np.ndarray | None, list[Problem]]:
    """Row of ``other`` for each row of ``ref``; None when the two are already in one order.

    Both id arrays must be unique (see :func:`id_problems`). A row of either table whose id
    is missing from the other is a problem naming that row and id: such files are refused,
    because a partner cannot be guessed.
    """
    ref = np.asarray(ref_ids, np.int64)
    other = np.asarray(other_ids, np.int64)
    if len(ref) == len(other) and np.array_equal(ref, other):
        return None, []
    order = np.argsort(other, kind="stable")
    sorted_other = other[order]
    pos = np.searchsorted(sorted_other, ref)
    pos_c = np.minimum(pos, max(len(other) - 1, 0))
    found = (pos < len(other)) & (sorted_other[pos_c] == ref) if len(other) else pos < 0
    problems = []
    lost = np.flatnonzero(~found)
    if lost.size:
        problems.append(
            Problem(f"{ref_where} {_rows(lost, ref)}", f"detectid has no row in {other_where}")
        )
    extra = np.flatnonzero(~np.isin(other, ref))
    if extra.size:
        problems.append(
            Problem(f"{other_where} {_rows(extra, other)}", f"detectid has no row in {ref_where}")
        )
    if problems:
        return None, problems
    return order[pos], []


def read_rows(read_slice, read_sorted, index: np.ndarray | None, start: int, stop: int):
    """Rows [start, stop) of a table in the reference order.

    ``read_slice(a, b)`` reads a contiguous span, ``read_sorted(idx)`` strictly increasing
    rows; ``index`` comes from :func:`align`. In the common case (same order) this is one
    contiguous read; otherwise the wanted rows are read in increasing order and put back.
    """
    if index is None:
        return read_slice(start, stop)
    want = index[start:stop]
    if want.size == 0:
        return read_slice(0, 0)
    if np.all(np.diff(want) == 1):
        return read_slice(int(want[0]), int(want[-1]) + 1)
    order = np.argsort(want)
    rows = read_sorted(want[order])
    out = np.empty_like(rows)
    out[order] = rows
    return out


def _rows(idx: np.ndarray, ids: np.ndarray) -> str:
    shown = ", ".join(f"{int(i)} (detectid {int(ids[i])})" for i in idx[:MAX_ROWS_LISTED])
    more = f" and {len(idx) - MAX_ROWS_LISTED} more" if len(idx) > MAX_ROWS_LISTED else ""
    return f"{'row' if len(idx) == 1 else 'rows'} {shown}{more}"
