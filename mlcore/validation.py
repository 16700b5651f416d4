"""Validate a survey file before anything is written: every problem named with where it is.

Checks are split so ingest can run them in one streaming pass: :func:`check_structure` and
:func:`check_catalog` look at the (small) catalogue and the array headers, :func:`check_chunk`
looks at one chunk of image rows. Each returns a list of :class:`Problem`; an empty list
means the part is valid.
"""

from __future__ import annotations

import numpy as np

from mlcore.join import id_problems, ids_unusable
from mlcore.problems import MAX_ROWS_LISTED, Problem
from mlcore.survey import (
    ARRAY_SHAPES,
    CATALOG_COLUMNS,
    REQUIRED_CATALOG_COLUMNS,
    TRUTH_COLUMNS,
    TRUTH_TYPES,
    WAVE_MAX,
    WAVE_MIN,
)

NAN_POLICIES = ("reject", "zero")
# Catalogue columns that may be missing (stored as NULL); every other one must have a value.
NULLABLE_COLUMNS = ("continuum", "apcor")
# Values that cannot be true of any measured quantity we keep: a negative uncertainty, width,
# chi2 or S/N, or a magnitude near the float32 limit (3.4e38, a fill value, not a measurement).
NON_NEGATIVE_COLUMNS = ("sn", "flux_err", "linewidth", "chi2")
IMPLAUSIBLE_ABS = 1e30
FIELD_MAX_CHARS = int(CATALOG_COLUMNS["field"].itemsize // 4)


def _rows(
    idx: np.ndarray,
    detectid: np.ndarray | None = None,
    offset: int = 0,
    rowmap: np.ndarray | None = None,
) -> str:
    """``rowmap``: the row in the file of each row as read (a catalogue joined to another
    file's order), so messages name the row where the value really is."""
    idx = np.asarray(idx)
    shown = []
    for i in idx[:MAX_ROWS_LISTED]:
        row = int(i) + offset
        did = f" (detectid {int(detectid[row])})" if detectid is not None else ""
        shown.append(f"{int(rowmap[row]) if rowmap is not None else row}{did}")
    more = f" and {len(idx) - MAX_ROWS_LISTED} more" if len(idx) > MAX_ROWS_LISTED else ""
    word = "row" if len(idx) == 1 else "rows"
    return f"{word} {', '.join(shown)}{more}"


def catalog_location(fmt: str, reader=None) -> str:
    where = getattr(reader, "catalog_where", None)
    if where:
        return where
    return "HDU CATALOG" if fmt == "fits" else "/Detections"


def check_structure(reader) -> list[Problem]:
    """Required columns present with usable dtypes; arrays present with the right shapes."""
    # A join across files that could not be made (mlcore.hetdex_io): nothing else is sound.
    fatal = list(getattr(reader, "fatal_problems", []))
    if fatal:
        return fatal
    cat = catalog_location(reader.fmt, reader)
    problems: list[Problem] = []
    cols = reader.columns
    if getattr(reader, "streams_catalogue", False):
        # values are read chunk by chunk: check the names and dtypes the reader found
        cols = {k: np.zeros((0, *np.dtype(d).shape), np.dtype(d).base)
                for k, d in reader.column_dtypes.items()}  # fmt: skip
    for name in REQUIRED_CATALOG_COLUMNS:
        if name not in cols:
            problems.append(Problem(f"{cat} column '{name}'", "missing (required column)"))
    for name, expected in {**CATALOG_COLUMNS, **TRUTH_COLUMNS}.items():
        if name not in cols:
            continue
        kind = cols[name].dtype.kind
        if cols[name].ndim != 1:
            problems.append(
                Problem(
                    f"{cat} column '{name}'",
                    f"has shape {cols[name].shape}; expected one value per row",
                )
            )
        elif not _kind_ok(kind, expected):
            problems.append(
                Problem(
                    f"{cat} column '{name}'",
                    f"has dtype {cols[name].dtype.name}; expected {_kind_word(expected)}",
                )
            )
    lengths = {name: len(col) for name, col in cols.items() if col.ndim >= 1}
    if getattr(reader, "streams_catalogue", False):
        lengths = {}  # one value per candidate by construction (joined by id)
    if len(set(lengths.values())) > 1:
        problems.append(Problem(cat, f"columns have different lengths: {lengths}"))
    n = reader.n
    for name, tail in ARRAY_SHAPES.items():
        where = reader.location(name) if name in reader.arrays else _expected_location(reader, name)
        if name not in reader.arrays:
            problems.append(Problem(where, f"missing (required array of shape (N, {_fmt(tail)}))"))
            continue
        shape, dtype = reader.arrays[name]
        if tuple(shape[1:]) != tail or shape[0] != n:
            problems.append(
                Problem(
                    where,
                    f"has shape {tuple(shape)}; expected ({n}, {_fmt(tail)}) "
                    f"(N = {n} catalogue rows)",
                )
            )
        if np.dtype(dtype).kind != "f":
            problems.append(Problem(where, f"has dtype {np.dtype(dtype)}; expected float32"))
    if n == 0 and not problems:
        problems.append(Problem(cat, "has no rows: nothing to ingest"))
    # Pixel tables whose ids disagree with the catalogue (found by the reader's id join).
    problems += list(getattr(reader, "join_problems", []))
    return problems


def _expected_location(reader, name: str) -> str:
    from mlcore.survey_io import FITS_HDU, HDF5_NODE

    if reader.fmt == "fits":
        return f"HDU {FITS_HDU[name]}"
    node, member = HDF5_NODE[name]
    return f"/{node}/{member}"


def _fmt(shape: tuple[int, ...]) -> str:
    return ", ".join(str(s) for s in shape)


def _kind_ok(kind: str, expected: np.dtype) -> bool:
    if expected.kind == "i":
        return kind in "iu"
    if expected.kind == "f":
        return kind in "iuf"
    if expected.kind == "U":
        return kind in "US"
    if expected.kind == "b":
        return kind in "biu"
    return True


def _kind_word(expected: np.dtype) -> str:
    return {"i": "an integer type", "f": "a number", "U": "a string", "b": "a boolean"}[
        expected.kind
    ]


def check_catalog(reader, *, known_detectids: np.ndarray | None = None) -> list[Problem]:
    """Values of the catalogue: finite numbers, unique ids, wavelengths in range, truth labels.

    ``known_detectids``: ids already in the database; a file repeating one is refused.
    Call only when :func:`check_structure` found nothing (columns exist with sane dtypes).
    """
    cat = catalog_location(reader.fmt, reader)
    fwhere = getattr(reader, "column_where", {}).get("field", f"{cat} column 'field'")
    if getattr(reader, "streams_catalogue", False):
        # Ids were checked by the reader's join; values are checked chunk by chunk, so
        # memory does not grow with the file. Messages name the catalogue's own rows.
        problems = []
        for _rows_read, cols, file_rows in reader.iter_catalogue():
            problems += check_values(
                cols,
                cols["detectid"].astype(np.int64),
                cat=cat,
                fwhere=fwhere,
                rowmap=file_rows,
                known_detectids=known_detectids,
            )
            if len(problems) >= MAX_VALUE_PROBLEMS:
                break
        return problems
    cols = reader.columns
    # Ids first: >= 2**63 would wrap to negative numbers below (and every other message
    # names rows by their detectid), so such a file gets only that problem.
    problems: list[Problem] = id_problems(cols["detectid"], f"{cat} column 'detectid'")
    if ids_unusable(cols["detectid"]):
        return problems
    detectid = cols["detectid"].astype(np.int64)
    rowmap = getattr(reader, "catalogue_rows", None)
    return problems + check_values(
        cols, detectid, cat=cat, fwhere=fwhere, rowmap=rowmap, known_detectids=known_detectids
    )


MAX_VALUE_PROBLEMS = 50  # a streamed catalogue stops being checked after this many


def check_values(
    cols: dict[str, np.ndarray],
    detectid: np.ndarray,
    *,
    cat: str,
    fwhere: str,
    rowmap: np.ndarray | None = None,
    known_detectids: np.ndarray | None = None,
) -> list[Problem]:
    """The value checks of :func:`check_catalog` on columns (a whole catalogue or a chunk of
    it); ``rowmap`` gives the row in the file of each value, for the messages."""
    problems: list[Problem] = []
    for name in CATALOG_COLUMNS:
        if name in cols and CATALOG_COLUMNS[name].kind == "f":
            vals = cols[name].astype(np.float64)
            bad = np.flatnonzero(np.isinf(vals) | (np.isnan(vals) & (name not in NULLABLE_COLUMNS)))
            if bad.size:
                problems.append(
                    Problem(
                        f"{cat} column '{name}' {_rows(bad, detectid, rowmap=rowmap)}",
                        "value is NaN or infinite (a missing value -- NaN, or a sentinel "
                        f"such as -999 -- is allowed only in {', '.join(NULLABLE_COLUMNS)})",
                    )
                )
            huge = np.flatnonzero(np.isfinite(vals) & (np.abs(vals) > IMPLAUSIBLE_ABS))
            if huge.size:
                problems.append(
                    Problem(
                        f"{cat} column '{name}' {_rows(huge, detectid, rowmap=rowmap)}",
                        f"{vals[huge[0]]:.3g} is not a plausible measurement "
                        f"(|value| > {IMPLAUSIBLE_ABS:g}; a float32 fill value?)",
                    )
                )
            if name in NON_NEGATIVE_COLUMNS:
                neg = np.flatnonzero(np.isfinite(vals) & (vals < 0))
                if neg.size:
                    problems.append(
                        Problem(
                            f"{cat} column '{name}' {_rows(neg, detectid, rowmap=rowmap)}",
                            f"{vals[neg[0]]:g} is negative; {name} cannot be",
                        )
                    )
    if "field" in cols:
        # ``field`` may come from another table (HETDEX's /Survey, by shotid): ``fwhere``
        text = cols["field"].astype(str)
        lengths = np.char.str_len(text)
        long = np.flatnonzero(lengths > FIELD_MAX_CHARS)
        if long.size:
            problems.append(
                Problem(
                    f"{fwhere} {_rows(long, detectid, rowmap=rowmap)}",
                    f"{str(text[long[0]])!r} is longer than {FIELD_MAX_CHARS} characters "
                    "(refused rather than truncated)",
                )
            )
        empty = np.flatnonzero(lengths == 0)
        if empty.size:
            problems.append(
                Problem(
                    f"{fwhere} {_rows(empty, detectid, rowmap=rowmap)}",
                    "value is missing (empty, or a sentinel such as 'n/a')",
                )
            )
    if known_detectids is not None and len(known_detectids):
        seen = np.flatnonzero(np.isin(detectid, known_detectids))
        if seen.size:
            problems.append(
                Problem(
                    f"{cat} column 'detectid' {_rows(seen, detectid, rowmap=rowmap)}",
                    f"{seen.size} detectid(s) were already ingested from another file",
                )
            )
    wave = cols["wave"].astype(np.float64)
    out = np.flatnonzero(np.isfinite(wave) & ((wave < WAVE_MIN) | (wave > WAVE_MAX)))
    if out.size:
        problems.append(
            Problem(
                f"{cat} column 'wave' {_rows(out, detectid, rowmap=rowmap)}",
                f"wavelength {wave[out[0]]:.1f} A is outside the instrument range "
                f"{WAVE_MIN:.0f}-{WAVE_MAX:.0f} A",
            )
        )
    for name in ("ra", "dec"):
        lim = 360.0 if name == "ra" else 90.0
        lo = 0.0 if name == "ra" else -90.0
        vals = cols[name].astype(np.float64)
        bad = np.flatnonzero(np.isfinite(vals) & ((vals < lo) | (vals > lim)))
        if bad.size:
            problems.append(
                Problem(
                    f"{cat} column '{name}' {_rows(bad, detectid, rowmap=rowmap)}",
                    f"{vals[bad[0]]} is outside {lo:g}..{lim:g} deg",
                )
            )
    if "truth_type" in cols:
        bad = np.flatnonzero(~np.isin(cols["truth_type"], TRUTH_TYPES))
        if bad.size:
            problems.append(
                Problem(
                    f"{cat} column 'truth_type' {_rows(bad, detectid, rowmap=rowmap)}",
                    f"unknown type {str(cols['truth_type'][bad[0]])!r}; "
                    f"expected one of {TRUTH_TYPES}",
                )
            )
    return problems


def check_chunk(
    name: str,
    rows: np.ndarray,
    *,
    start: int,
    location: str,
    detectid: np.ndarray,
    nan_policy: str = "reject",
) -> tuple[list[Problem], np.ndarray, int]:
    """Check one chunk of array ``name``. Returns (problems, cleaned rows, pixels zeroed).

    Infinite values are always refused. NaN pixels are refused under ``nan_policy='reject'``
    and set to 0 under ``'zero'`` (what ELiXer does with masked pixels).
    """
    if nan_policy not in NAN_POLICIES:
        raise ValueError(f"nan_policy must be one of {NAN_POLICIES}, not {nan_policy!r}")
    flat = rows.reshape(len(rows), -1)
    problems: list[Problem] = []
    inf_rows, nan_rows, nan_count = _nonfinite_rows(flat)
    if inf_rows.size:
        problems.append(
            Problem(
                f"{location} {_rows(inf_rows, detectid, start)}", "contains infinite pixel values"
            )
        )
    zeroed = 0
    if nan_rows.size:
        if nan_policy == "reject":
            problems.append(
                Problem(
                    f"{location} {_rows(nan_rows, detectid, start)}",
                    "contains NaN pixel values (rerun with --nan-policy zero to store them as 0)",
                )
            )
        else:
            zeroed = nan_count
            rows = np.where(np.isnan(rows), 0, rows)
    if name == "im_wave" and not inf_rows.size and not nan_rows.size:
        problems += _check_im_wave(rows, start=start, location=location, detectid=detectid)
    return problems, rows, zeroed


def _nonfinite_rows(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(rows with an infinite value, rows with a NaN, NaN count) of a (rows, values) array.

    Floats: a row's sum is finite only if all its values are, so only rows whose sum is not
    (a NaN, an infinity, or an overflow of finite values) are looked at value by value.
    Two boolean masks of the whole chunk per array were a large share of ingest's time.
    """
    if flat.dtype.kind != "f" or flat.size == 0:
        nan = np.isnan(flat)
        return (
            np.flatnonzero(np.isinf(flat).any(axis=1)),
            np.flatnonzero(nan.any(axis=1)),
            int(nan.sum()),
        )
    acc = np.float32 if flat.dtype.itemsize < 4 else None  # float16 would overflow early
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.add.reduce(flat, axis=1, dtype=acc)
    suspect = np.flatnonzero(~np.isfinite(total))
    if suspect.size == 0:
        return suspect, suspect, 0
    sub = flat[suspect]
    nan = np.isnan(sub)
    return (
        suspect[np.isinf(sub).any(axis=1)],
        suspect[nan.any(axis=1)],
        int(nan.sum()),
    )


# Column wavelengths beyond these cannot be a VIRUS cutout (the CCD spans ~3466-5540 A; the
# project's own files allow 50 columns of 2 A past a line at the catalogue's edges).
IM_WAVE_RANGE = (3300.0, 5700.0)


def _check_im_wave(
    rows: np.ndarray, *, start: int, location: str, detectid: np.ndarray
) -> list[Problem]:
    """The real (non-zero) columns of ``im_wave`` increase, are contiguous and in range;
    0.0 is the padding beyond the CCD edge, allowed only at either end."""
    w = np.asarray(rows, np.float64)
    real = w != 0
    lo, hi = IM_WAVE_RANGE
    out = (real & ((w < lo) | (w > hi))).any(axis=1)
    step = (np.diff(w, axis=1) <= 0) & real[:, 1:] & real[:, :-1]
    first = np.argmax(real, axis=1)
    last = w.shape[1] - 1 - np.argmax(real[:, ::-1], axis=1)
    cols = np.arange(w.shape[1])
    inside = (cols >= first[:, None]) & (cols <= last[:, None])
    hole = (inside & ~real).any(axis=1) & real.any(axis=1)
    problems = []
    for bad, what in (
        (out, f"has wavelengths outside {lo:.0f}-{hi:.0f} A"),
        (step.any(axis=1) | hole, "does not increase column by column (0.0 only as edge padding)"),
    ):
        idx = np.flatnonzero(bad)
        if idx.size:
            problems.append(Problem(f"{location} {_rows(idx, detectid, start)}", what))
    return problems
