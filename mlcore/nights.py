"""Observing nights from HETDEX shot ids, and the night groups a shift report is made for.

A HETDEX ``shotid`` is ``YYYYMMDD * 1000 + NNN``: the night (its date) and the number of
the observation that night. Everything observed in one night shares the instrument state
and the sky of that night, so a night is the natural small unit for "is this data like the
training data" (issue 25). A shift report needs at least ``min_size`` candidates
(``mlcore.shift.MIN_SAMPLE``), so :func:`night_groups` turns nights into groups:

1. Nights closer than ``max_gap_days`` (default 5) to the one before belong to the same
   *run*: a dark-time run loses nights to weather and engineering, while the bright time
   between runs is a week or more. Groups never cross a run.
2. Within a run, in date order, nights are added to the open group until it holds at least
   ``min_size`` candidates; then it is closed. A night with enough candidates on its own,
   right after a closed group, is its own group.
3. What is left at the end of a run (fewer than ``min_size``) joins the run's last closed
   group; a run with fewer than ``min_size`` candidates in all stays one small group, which
   callers report as too small rather than judge.

Groups cover consecutive nights of the data, so a group is the shot id range
``first * 1000 .. last * 1000 + 999``. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlcore.errors import DataError

MAX_GAP_DAYS = 5  # nights further apart than this are in different observing runs
_YEARS = (1990, 2100)  # a shot id outside these years is not a HETDEX night


@dataclass(frozen=True)
class NightGroup:
    first: int  # YYYYMMDD of the group's first night
    last: int  # YYYYMMDD of its last night
    n: int  # candidates
    n_nights: int  # nights with candidates in it

    @property
    def label(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"

    @property
    def shotid_range(self) -> tuple[int, int]:
        """Smallest and largest shot id of the group's nights (inclusive)."""
        return self.first * 1000, self.last * 1000 + 999


def _dates(nights: np.ndarray) -> np.ndarray:
    """YYYYMMDD ints -> datetime64[D]; NaT where the ints are no calendar date."""
    y, m, d = nights // 10000, nights // 100 % 100, nights % 100
    ok = (y >= _YEARS[0]) & (y <= _YEARS[1]) & (m >= 1) & (m <= 12) & (d >= 1) & (d <= 31)
    month = np.where(ok, (y - 1970) * 12 + m - 1, 0).astype("datetime64[M]")
    day = month.astype("datetime64[D]") + np.where(ok, d - 1, 0).astype("timedelta64[D]")
    ok &= day.astype("datetime64[M]") == month  # 31 April rolls over into May: refused
    return np.where(ok, day, np.datetime64("NaT"))


def nights_of(shotids) -> np.ndarray:
    """(N,) shot ids -> (N,) nights as YYYYMMDD ints. Refuses (DataError, naming examples)
    ids that are not integers or do not encode a calendar date."""
    a = np.asarray(shotids)
    if a.ndim != 1:
        raise DataError(f"nights_of: expected a 1-D array of shot ids, got shape {a.shape}")
    if len(a) and not np.issubdtype(a.dtype, np.integer):
        raise DataError(f"nights_of: shot ids must be integers (YYYYMMDDNNN), got {a.dtype}")
    a = a.astype(np.int64)
    nights = a // 1000
    uniq = np.unique(nights)
    bad_nights = uniq[np.isnat(_dates(uniq))]
    bad = (a <= 0) | np.isin(nights, bad_nights)
    if bad.any():
        ex = ", ".join(str(x) for x in np.unique(a[bad])[:3])
        raise DataError(
            f"{int(bad.sum())} shot ids do not encode an observing night "
            f"(YYYYMMDD * 1000 + observation number), e.g. {ex}"
        )
    return nights


def night_groups(
    shotids, *, min_size: int = 100, max_gap_days: int = MAX_GAP_DAYS
) -> list[NightGroup]:
    """Night groups (in date order) of the candidates with these shot ids, by the rule in
    the module docstring. A group with ``n < min_size`` is a whole run that is too small."""
    if min_size < 1:
        raise DataError(f"night_groups: min_size must be at least 1, not {min_size}")
    if max_gap_days < 0:
        raise DataError(f"night_groups: max_gap_days must be >= 0, not {max_gap_days}")
    nights, counts = np.unique(nights_of(shotids), return_counts=True)
    if len(nights) == 0:
        return []
    new_run = np.r_[True, np.diff(_dates(nights)).astype(np.int64) > max_gap_days]
    groups: list[NightGroup] = []
    run_start = 0  # index in ``groups`` of the current run's first group
    open_: list[int] = []  # indices of the nights in the open group
    for i in range(len(nights)):
        if new_run[i]:
            _close_run(groups, run_start, open_, nights, counts)
            run_start, open_ = len(groups), []
        open_.append(i)
        if counts[open_].sum() >= min_size:
            groups.append(_group(nights, counts, open_))
            open_ = []
    _close_run(groups, run_start, open_, nights, counts)
    return groups


def _group(nights: np.ndarray, counts: np.ndarray, idx: list[int]) -> NightGroup:
    return NightGroup(
        first=int(nights[idx[0]]),
        last=int(nights[idx[-1]]),
        n=int(counts[idx].sum()),
        n_nights=len(idx),
    )


def _close_run(groups, run_start, open_, nights, counts) -> None:
    """The nights left open at the end of a run join the run's last group, else stand alone."""
    if not open_:
        return
    if len(groups) > run_start:
        prev = groups[-1]
        rest = _group(nights, counts, open_)
        groups[-1] = NightGroup(prev.first, rest.last, prev.n + rest.n, prev.n_nights + len(open_))
    else:
        groups.append(_group(nights, counts, open_))


def in_nights(shotids, first: int, last: int) -> np.ndarray:
    """(N,) True where the shot was observed in the nights ``first``..``last`` (YYYYMMDD)."""
    a = np.asarray(shotids, dtype=np.int64)
    return (a >= first * 1000) & (a <= last * 1000 + 999)
