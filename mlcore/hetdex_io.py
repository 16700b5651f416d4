"""HETDEX's real data products: the ML file, the detections catalogue and the survey table.

Layouts, from the HETDEX team's code (HETDEX/hetdex_api: ``h5tools/create_detect_hdf5.py``,
``h5tools/create_survey_hdf5.py``, ``hetdex_tools/get_spec2D.py``, ``hetdex_api/detections.py``
and the notebook ``How_to_open_the_machine_learning_H5_files.ipynb``, whose output prints the
HDR4 file's tree):

``detect_ml_4.0.0.h5`` (faint detections only, rows in shot order; no ``/Detections``)
    ``/FiberImages`` table: ``detectid`` Int64, ``im_wave`` Float32 (100,), ``im_sum`` Float32
                     (9, 100), ``im_array`` Float32 (4, 9, 100)
    ``/Spec1D``      table: ``detectid``, ``spec1D``, ``spec1D_err`` Float32 (1036,) on
                     ``3470 + 2*arange(1036)`` A, in 1e-17 erg/s/cm2 **per 2 A bin**
    ``/PhotImages``, ``/LineImages`` tables (not read: no use in labelling yet)
``detect_hdr4.h5`` (every detection)
    ``/Detections`` table: ``detectid``, ``shotid`` Int64; ``ra``, ``dec`` Float32; ``wave``,
                    ``flux``, ``flux_err``, ``linewidth``, ``continuum``, ``sn``, ``chi2`` and
                    their ``*_err``; ``apcor``, ``fiber_id``, ``multiframe``, ``amp``, ...
    ``/Spectra``, ``/Fibers`` (not read: the ML file's ``/Spec1D`` is the same spectrum)
``survey_hdr4.h5``
    ``/Survey`` table, one row per shot: ``shotid``, ``field`` (``cosmos``, ``dex-spring``,
                ``dex-fall``, ``goods-n``, ``nep``, ``ssa22``, ``parallel``, ``other``), ...

:class:`HetdexReader` presents the three as one :class:`~mlcore.survey_io.SurveyReader` in the
ML file's row order, so ingest validates and stores them like any survey file. Every join is
by id: catalogue rows by ``detectid`` (streamed in chunks, only rows whose id is in the ML
file are kept), ``/Spec1D`` rows by ``detectid``, ``field`` by ``shotid``. Conversions:
``spec1D``/``spec1D_err`` divided by 2 (per 2 A bin -> per A, as hetdex_api's
``get_spectrum``); ``ra``/``dec`` Float32 widened to float64; ``field`` taken from ``/Survey``;
sentinels (-999, -999.999, -99999, 'n/a') become missing values. hetdex_api also divides by
a white-dwarf flux correction (``wdcor.txt``) that is not in these files: it is not applied.

:func:`write_hetdex` writes a simulated survey in these layouts, with the real quirks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mlcore.join import align, id_problems, read_rows
from mlcore.survey import (
    ARRAY_SHAPES,
    CATALOG_COLUMNS,
    CUTOUT_COLS,
    N_SPEC,
    TRUTH_COLUMNS,
    Survey,
)
from mlcore.survey_io import (
    SurveyFileError,
    SurveyReader,
    _header_meta,
    _meta_from_header,
    _text,
    check_regular_file,
    sentinels_to_missing,
)
from mlcore.validation import MAX_ROWS_LISTED, Problem

SPEC_PER_BIN = 2.0  # the HDF5 spectra are flux per 2 A pixel; the store holds flux per A
CCD_PIXELS = 1032  # native wavelength pixels of a VIRUS fibre (get_2Dimage_wave)
ML_NODE = {
    "im_wave": ("FiberImages", "im_wave"),
    "im_sum": ("FiberImages", "im_sum"),
    "im_array": ("FiberImages", "im_array"),
    "spec1d": ("Spec1D", "spec1D"),
    "spec1d_err": ("Spec1D", "spec1D_err"),
}
# /Detections columns read (``field`` comes from /Survey); ``truth_*`` only in simulated files.
CATALOG_READ = tuple(c for c in CATALOG_COLUMNS if c != "field")
CATALOG_CHUNK = 1 << 14  # catalogue rows per read (~2 MB of the columns read; HDF5 picks them)


class HetdexReader(SurveyReader):
    """The ML file joined with its catalogue and survey table, in the ML file's row order.

    Memory: the catalogue is read ``CATALOG_CHUNK`` rows at a time, so it does not grow with
    the catalogue. Per ML candidate the reader keeps int64 ids only: the detectids, their
    sort order and the sorted ids (24 bytes; 32 when /Spec1D is in another order than
    /FiberImages); without ``stream`` also the catalogue's values (about 80 bytes).
    Problems that make the join impossible are in ``fatal_problems`` (validation reports
    them before anything else).
    """

    def __init__(
        self,
        ml: Path,
        catalogue: Path,
        survey: Path,
        *,
        chunk: int | None = None,
        stream: bool = False,
    ):
        import h5py

        self.fmt, self.path = "hetdex", Path(ml)
        self.paths = {"ml": Path(ml), "catalogue": Path(catalogue), "survey": Path(survey)}
        self.catalog_where = f"{self.paths['catalogue'].name}:/Detections"
        self.column_where = {
            "field": f"{self.paths['survey'].name}:/Survey column 'field' (by shotid) for "
            f"{self.catalog_where}"
        }
        self.columns, self.arrays, self.column_dtypes = {}, {}, {}
        self.join_problems, self.notes, self.fatal_problems = [], [], []
        self.streams_catalogue = stream
        self._chunk = chunk or CATALOG_CHUNK
        self._index: np.ndarray | None = None
        self._files = {}
        try:
            for role, path in self.paths.items():
                check_regular_file(path)
                try:
                    self._files[role] = h5py.File(path, "r")
                except Exception as exc:
                    raise SurveyFileError(f"{path}: cannot be opened as HDF5: {exc}") from exc
            self._ml = self._files["ml"]
            self.meta = _meta_from_header(self._ml.attrs)
            self._open_ml()
            if not self.fatal_problems:
                self._open_survey()
            if not self.fatal_problems:
                self._join_catalogue()
            if not self.fatal_problems and not stream:
                self._load_columns()
            self.meta["source_files"] = {k: str(p) for k, p in self.paths.items()}
            self.meta["conversions"] = [
                "spec1D, spec1D_err: per 2 A bin -> per A (divided by 2)",
                "ra, dec: Float32 -> float64",
                "field: from /Survey by shotid",
                "sentinels -999, -999.999, -99999, 'n/a' -> missing",
                "not applied: hetdex_api's white-dwarf flux correction (wdcor.txt)",
            ]
        except Exception as exc:
            self.close()
            if isinstance(exc, SurveyFileError):
                raise
            raise SurveyFileError(f"{self.path}: cannot be read as HDF5: {exc}") from exc

    # --- the ML file ----------------------------------------------------------------------

    def _where(self, role: str, node: str) -> str:
        return f"{self.paths[role].name}:/{node}"

    def _table(self, role: str, node: str, members: tuple[str, ...]):
        import h5py

        h5 = self._files[role]
        where = self._where(role, node)
        if node not in h5:
            self.fatal_problems.append(
                Problem(where, f"missing (top-level nodes: {sorted(h5.keys())})")
            )
            return None
        ds = h5[node]
        if not isinstance(ds, h5py.Dataset) or not ds.dtype.names or ds.ndim != 1:
            self.fatal_problems.append(
                Problem(where, "is not a table (a one-dimensional compound dataset)")
            )
            return None
        absent = [m for m in members if m not in ds.dtype.names]
        if absent:
            self.fatal_problems.append(
                Problem(where, f"lacks column(s) {absent} (columns: {list(ds.dtype.names)})")
            )
            return None
        return ds

    def _open_ml(self) -> None:
        if "Detections" in self._ml:
            self.notes.append(
                f"{self.paths['ml'].name} has its own /Detections; the catalogue given with "
                "--catalogue is used instead"
            )
        fib = self._table("ml", "FiberImages", ("detectid", "im_wave", "im_sum", "im_array"))
        spec = self._table("ml", "Spec1D", ("detectid", "spec1D", "spec1D_err"))
        if fib is None or spec is None:
            return
        self._fib, self._spec = fib, spec
        for name, (node, member) in ML_NODE.items():
            ds = fib if node == "FiberImages" else spec
            sub = ds.dtype[member]
            self.arrays[name] = ((ds.shape[0], *sub.shape), sub.base)
        self.ml_ids = _field_in_slices(fib, "detectid")
        spec_ids = _field_in_slices(spec, "detectid")
        fw, sw = self._where("ml", "FiberImages"), self._where("ml", "Spec1D")
        problems = id_problems(self.ml_ids, f"{fw} column 'detectid'")
        problems += id_problems(spec_ids, f"{sw} column 'detectid'")
        if not problems:
            self._index, problems = align(self.ml_ids, spec_ids, ref_where=fw, other_where=sw)
        if len(self.ml_ids) == 0:
            problems.append(Problem(fw, "has no rows: nothing to ingest"))
        self.fatal_problems += problems
        self.columns["detectid"] = self.ml_ids

    # --- the survey table (one row per shot: small, read whole) ----------------------------

    def _open_survey(self) -> None:
        tab = self._table("survey", "Survey", ("shotid", "field"))
        if tab is None:
            return
        sw = self._where("survey", "Survey")
        rec = tab.fields(["shotid", "field"])[()]
        shot = rec["shotid"].astype(np.int64)
        field = sentinels_to_missing(_text(rec["field"], f"{sw} column 'field'"))
        order = np.argsort(shot, kind="stable")
        s_shot, s_field = shot[order], field[order]
        clash = np.flatnonzero((s_shot[1:] == s_shot[:-1]) & (s_field[1:] != s_field[:-1]))
        if clash.size:
            self.fatal_problems.append(
                Problem(
                    f"{sw} {_list('row', order[clash + 1].tolist())}",
                    f"shotid {int(s_shot[clash[0]])} has two different fields",
                )
            )
            return
        self._shots, self._shot_fields = s_shot, s_field

    def _field_of(self, shotid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(field, found) for each shotid, from /Survey."""
        want = shotid.astype(np.int64)
        s_shot = self._shots
        if not len(s_shot):
            return np.full(len(want), "", self._shot_fields.dtype), np.zeros(len(want), bool)
        pos = np.minimum(np.searchsorted(s_shot, want), len(s_shot) - 1)
        return self._shot_fields[pos], s_shot[pos] == want

    # --- the catalogue, streamed ----------------------------------------------------------

    def _join_catalogue(self) -> None:
        """One pass over the catalogue that reads ids and shotids only: every ML candidate
        has exactly one catalogue row, and its shot is in /Survey. Keeps nothing per
        candidate but the sorted ids (values are read again, chunk by chunk, by
        :meth:`iter_catalogue`)."""
        det = self._table("catalogue", "Detections", ("detectid",))
        if det is None:
            return
        self._det = det
        names = det.dtype.names
        self._wanted = [c for c in (*CATALOG_READ, *TRUTH_COLUMNS) if c in names]
        self.column_dtypes = {c: det.dtype[c] for c in self._wanted}
        if "field" in self.column_dtypes:  # /Survey's field wins; the catalogue has none
            self.column_dtypes.pop("field")
        self.column_dtypes["field"] = self._shot_fields.dtype
        ids = self.ml_ids.astype(np.int64)
        n = len(ids)
        self._order = np.argsort(ids, kind="stable")
        self._sorted_ids = ids[self._order]
        found = np.zeros(n, bool)
        dup_rows: list[int] = []
        lost_shot: list[int] = []
        lost_shot_id = 0
        cw = self.catalog_where
        key = ["detectid", "shotid"] if "shotid" in names else ["detectid"]
        for a, rec in _slabs(det, key, self._chunk):
            cid = rec["detectid"]
            if cid.dtype.kind == "u":
                self.fatal_problems += id_problems(cid, f"{cw} column 'detectid' (chunk at {a})")
                if self.fatal_problems:
                    return
            hit, tgt = self._match(cid.astype(np.int64))
            # the same detectid twice in the catalogue: which row is the candidate?
            again = found[tgt]
            _, first = np.unique(tgt, return_index=True)
            within = np.ones(len(tgt), bool)
            within[first] = False
            dup_rows += (a + hit[again | within]).tolist()
            found[tgt] = True
            if "shotid" in rec.dtype.names:
                _, ok = self._field_of(rec["shotid"][hit])
                if not ok.all():
                    lost_shot_id = lost_shot_id or int(rec["shotid"][hit][~ok][0])
                    lost_shot += (a + hit[~ok]).tolist()
        if dup_rows:
            self.fatal_problems.append(
                Problem(
                    f"{cw} {_list('row', dup_rows)}",
                    "detectid appears more than once in the catalogue",
                )
            )
        lost = np.flatnonzero(~found)
        if lost.size:
            self.fatal_problems.append(
                Problem(
                    f"{self._where('ml', 'FiberImages')} {_rows(lost, ids)}",
                    f"detectid has no row in {cw}",
                )
            )
        if lost_shot and not self.fatal_problems:
            self.fatal_problems.append(
                Problem(
                    f"{cw} column 'shotid' {_list('row', lost_shot)}",
                    f"shotid {lost_shot_id} is not in {self._where('survey', 'Survey')}, so "
                    "the field is unknown",
                )
            )

    def _match(self, cid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(positions in ``cid`` whose id is an ML candidate, that candidate's ML row)."""
        n = len(self._sorted_ids)
        pos = np.minimum(np.searchsorted(self._sorted_ids, cid), n - 1)
        hit = np.flatnonzero(self._sorted_ids[pos] == cid)
        return hit, self._order[pos[hit]]

    def iter_catalogue(self, chunk: int | None = None):
        """Yield (ML rows, columns, catalogue rows) for the ML file's candidates, in catalogue
        order, ``chunk`` catalogue rows at a time; sentinels are missing values, text is
        ``str``, ``field`` comes from /Survey. Memory: one chunk."""
        det, cw = self._det, self.catalog_where
        for a, rec in _slabs(det, self._wanted, chunk or self._chunk):
            hit, rows = self._match(rec["detectid"].astype(np.int64))
            if not hit.size:
                continue
            cols = {}
            for c in self._wanted:
                col = rec[c][hit]
                if col.dtype.kind in "SO":
                    col = _text(col, f"{cw} column {c!r}")
                cols[c] = sentinels_to_missing(col) if c in CATALOG_COLUMNS else col
            if "shotid" in cols:
                cols["field"], _ = self._field_of(cols["shotid"])
            yield rows, cols, a + hit

    def _load_columns(self) -> None:
        """Whole columns in the ML file's order (for scoring and notebooks; ingest streams)."""
        n = self.n
        out: dict[str, np.ndarray] = {}
        cat_row = np.full(n, -1, np.int64)
        for rows, cols, where in self.iter_catalogue():
            for c, v in cols.items():
                if c not in out:
                    out[c] = np.zeros(n, v.dtype)
                out[c][rows] = v
            cat_row[rows] = where
        self.columns.update(out)
        self.catalogue_rows = cat_row

    # --- pixels -----------------------------------------------------------------------------

    def location(self, name: str) -> str:
        node, member = ML_NODE[name]
        return f"{self._where('ml', node)}/{member}"

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        node, member = ML_NODE[name]
        try:
            if node == "FiberImages":
                return self._fib.fields(member)[start:stop]
            ds = self._spec.fields(member)
            rows = read_rows(lambda a, b: ds[a:b], lambda i: ds[i], self._index, start, stop)
            return rows / np.float32(SPEC_PER_BIN)
        except Exception as exc:  # a corrupted chunk
            raise SurveyFileError(
                f"{self.location(name)} rows {start}-{stop - 1} cannot be read: {exc}"
            ) from exc

    def iter_chunks(self, chunk: int, *, reuse: bool = False):
        """As :meth:`SurveyReader.iter_chunks`, reading each table's rows once per chunk (a
        field of a compound dataset costs the whole row's I/O: three field reads would read
        /FiberImages three times).

        ``reuse=True`` (ingest): every chunk is read into the same buffers, allocated once,
        and the arrays yielded are views of them, valid until the next chunk is read. Fresh
        buffers per chunk (~120 kB per candidate with the copies made from them) were mapped,
        page-faulted, zeroed and unmapped again on every chunk, and left glibc's heap larger
        as the file went on (RSS +60 MiB during the chunks of a 60,000-row ingest, measured).
        """
        scale = np.float32(SPEC_PER_BIN)
        fib_dt, spec_dt = self._fib.dtype, self._spec.dtype
        out_dt = {
            k: np.result_type(spec_dt[m].base, scale)
            for k, m in (("spec1d", "spec1D"), ("spec1d_err", "spec1D_err"))
        }
        bufs = None
        for start in range(0, self.n, chunk):
            stop = min(self.n, start + chunk)
            k = stop - start
            if bufs is None or not reuse:
                size = chunk if reuse else k
                bufs = {
                    "fib": np.empty(size, fib_dt),
                    "spec": np.empty(size, spec_dt),
                    **{a: np.empty((size, N_SPEC), dt) for a, dt in out_dt.items()},
                }
            fib, spec = bufs["fib"][:k], bufs["spec"][:k]
            try:
                # the file's own row type: HDF5 copies the rows without a conversion buffer
                if k:
                    self._fib.read_direct(fib, np.s_[start:stop], np.s_[0:k])
                _read_rows_into(self._spec, self._index, start, stop, spec)
            except Exception as exc:  # a corrupted chunk
                raise SurveyFileError(
                    f"{self._where('ml', 'FiberImages')} or /Spec1D rows {start}-{stop - 1} "
                    f"cannot be read: {exc}"
                ) from exc
            # Views of the row buffer, not copies: every consumer reads them row by row
            # (a reshape of one row's (4, 9, 100) block is still a view).
            arrays = {a: fib[a] for a in ("im_sum", "im_array", "im_wave")}
            for a, m in (("spec1d", "spec1D"), ("spec1d_err", "spec1D_err")):
                arrays[a] = np.divide(spec[m], scale, out=bufs[a][:k])
            yield start, stop, arrays

    @property
    def n(self) -> int:
        return len(getattr(self, "ml_ids", ()))

    def close(self) -> None:
        for h5 in self._files.values():
            h5.close()


def open_hetdex(
    ml: str | Path, catalogue: str | Path, survey: str | Path, *, stream: bool = False
) -> HetdexReader:
    """The three files as one reader. ``stream=True`` (ingest) keeps only the ids in memory
    and reads catalogue values chunk by chunk through :meth:`HetdexReader.iter_catalogue`;
    otherwise ``columns`` holds whole columns in the ML file's order."""
    return HetdexReader(Path(ml), Path(catalogue), Path(survey), stream=stream)


def _field_in_slices(ds, name: str, rows: int = 4096) -> np.ndarray:
    """One column of a compound table, read a slice at a time: one read of the whole column
    made HDF5 itself hold memory that grew with the table (+5 MiB from 20,000 to 80,000 rows
    of /FiberImages, measured); slices keep it flat."""
    out = np.empty(ds.shape[0], ds.dtype[name])
    for a in range(0, ds.shape[0], rows):
        out[a : a + rows] = ds.fields(name)[a : a + rows]
    return out


def _slabs(ds, names: list[str], rows: int):
    """(first row, records) of columns ``names`` of table ``ds``, ``rows`` rows at a time,
    read into one buffer (HDF5 picks the members by name): a fresh array per slab left
    glibc's heap larger after each (ingest memory grew with the catalogue). Each slab is
    valid until the next is read."""
    n = ds.shape[0]
    buf = np.empty(min(rows, n), np.dtype([(c, ds.dtype[c]) for c in names]))
    for a in range(0, n, rows):
        k = min(rows, n - a)
        ds.read_direct(buf, np.s_[a : a + k], np.s_[0:k])
        yield a, buf[:k]


def _read_rows_into(ds, index: np.ndarray | None, start: int, stop: int, out: np.ndarray):
    """Rows [start, stop) of table ``ds`` in the reference order (``index`` from
    :func:`mlcore.join.align`; None: the same order) into ``out``, joined by id. Reordered
    rows are read as runs of consecutive file rows in increasing order, then put back."""
    k = stop - start
    if k == 0:
        return
    if index is None:
        ds.read_direct(out, np.s_[start:stop], np.s_[0:k])
        return
    want = index[start:stop]
    order = np.argsort(want, kind="stable")
    rows = want[order]
    breaks = np.flatnonzero(np.diff(rows) != 1) + 1
    if len(breaks) == 0 and np.array_equal(order, np.arange(k)):
        ds.read_direct(out, np.s_[int(rows[0]) : int(rows[-1]) + 1], np.s_[0:k])
        return
    if len(breaks) < k // 8:  # a few long runs: one contiguous read each
        tmp = np.empty(k, out.dtype)
        for a, b in zip((0, *breaks), (*breaks, k), strict=True):
            ds.read_direct(tmp, np.s_[int(rows[a]) : int(rows[b - 1]) + 1], np.s_[a:b])
    else:  # scattered: one point selection (h5py reads it in increasing order)
        tmp = ds[rows]
    out[order] = tmp


def _rows(idx: np.ndarray, ids: np.ndarray) -> str:
    shown = ", ".join(f"{int(i)} (detectid {int(ids[i])})" for i in idx[:MAX_ROWS_LISTED])
    more = f" and {len(idx) - MAX_ROWS_LISTED} more" if len(idx) > MAX_ROWS_LISTED else ""
    return f"{'row' if len(idx) == 1 else 'rows'} {shown}{more}"


def _list(word: str, rows: list[int]) -> str:
    shown = ", ".join(str(r) for r in rows[:MAX_ROWS_LISTED])
    more = f" and {len(rows) - MAX_ROWS_LISTED} more" if len(rows) > MAX_ROWS_LISTED else ""
    return f"{word}{'s' if len(rows) > 1 else ''} {shown}{more}"


# ------------------------------------------------------------------------------------------
# Writing (the simulator's ``--format hetdex``)
# ------------------------------------------------------------------------------------------

# Quirk rates [E]: hetdex_api does not publish them; these are guesses that keep every
# quirk present in a file of a few thousand rows. Edge padding is not a rate: it follows
# from the line's wavelength on the native CCD grid, as in the real file.
QUIRK_RATES = {
    "failed_cutout": 0.003,  # all-zero im_wave, im_sum and im_array (extraction failed)
    "missing_fibers": 0.01,  # one to three all-zero im_array planes
    "sentinel_continuum": 0.002,  # continuum = -999 (missing)
    "sentinel_apcor": 0.002,  # apcor = -999.999 (missing)
}
SURVEY_FIELDS_EXTRA = ("nep", "ssa22", "parallel", "other")  # shots with no ML candidates


def native_wave(shotid: np.ndarray) -> np.ndarray:
    """(n, 1032) native CCD wavelengths: ~2 A per pixel with a gentle curvature and a
    per-shot offset, so ``im_wave`` is never the clean 2 A grid [E: shape]."""
    x = np.arange(CCD_PIXELS, dtype=np.float64)
    offset = ((np.asarray(shotid) % 97) / 97.0 - 0.5)[:, None]  # deterministic per shot
    return 3468.0 + 2.006 * x - 2.0e-6 * (x - 516) ** 2 + offset


def hetdex_cutout_wave(wave: np.ndarray, shotid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(im_wave (n, 100), padded (n, 100) bool) as ``get_2Dimage_wave`` cuts them: 100
    native columns around the first pixel at or above the line, 0.0 beyond the CCD edge."""
    native = native_wave(shotid)
    n = len(wave)
    im_wave = np.zeros((n, CUTOUT_COLS), np.float32)
    padded = np.ones((n, CUTOUT_COLS), bool)
    half = CUTOUT_COLS // 2
    for i in range(n):
        sel = min(int(np.searchsorted(native[i], wave[i])), CCD_PIXELS - 1)
        x1, x2 = max(0, sel - half), min(CCD_PIXELS, sel + half)
        s1 = CUTOUT_COLS - (x2 - x1) if x1 == 0 else 0
        im_wave[i, s1 : s1 + (x2 - x1)] = native[i, x1:x2]
        padded[i, s1 : s1 + (x2 - x1)] = False
    return im_wave, padded


def write_hetdex(
    survey: Survey,
    ml_path: str | Path,
    catalogue_path: str | Path,
    survey_path: str | Path,
    *,
    seed: int = 0,
    catalogue_factor: float = 2.0,
    rates: dict[str, float] | None = None,
    chunk: int = 2048,
) -> dict[str, Path]:
    """Write ``survey`` as HETDEX's three files (see the module docstring), with quirks.

    The ML file holds every candidate of ``survey`` in shot order; the catalogue holds them
    plus ``catalogue_factor - 1`` times as many brighter detections that are not in the ML
    file (as the real catalogue holds the g < 22 ones), in detectid order. Simulation truth
    goes into the catalogue as ``truth_*`` columns (the real file has none). Returns the
    paths and, under ``"quirks"``, the row counts of each quirk written.
    """
    import h5py

    rates = {**QUIRK_RATES, **(rates or {})}
    rng = np.random.default_rng(seed)
    cat = {k: np.asarray(v) for k, v in survey.catalog.items()}
    n = len(survey)
    ml_order = np.lexsort((cat["detectid"], cat["shotid"]))  # shot order, as the real file

    # --- quirks, decided per candidate (in the survey's order) ---
    im_wave, padded = hetdex_cutout_wave(cat["wave"].astype(np.float64), cat["shotid"])
    failed = rng.random(n) < rates["failed_cutout"]
    lost_planes = np.where(rng.random(n) < rates["missing_fibers"], rng.integers(1, 4, n), 0)
    lost_planes[failed] = 0
    quirks = {
        "failed_cutout": int(failed.sum()),
        "missing_fibers": int((lost_planes > 0).sum()),
        "padded": int((padded.any(axis=1) & ~failed).sum()),
    }

    paths = {"ml": Path(ml_path), "catalogue": Path(catalogue_path), "survey": Path(survey_path)}
    for p in paths.values():
        p.parent.mkdir(parents=True, exist_ok=True)
    tmp = {k: p.with_name(p.name + ".partial") for k, p in paths.items()}

    fib_dt = np.dtype(
        [
            ("detectid", "<i8"),
            ("im_wave", "<f4", (CUTOUT_COLS,)),
            ("im_sum", "<f4", ARRAY_SHAPES["im_sum"]),
            ("im_array", "<f4", ARRAY_SHAPES["im_array"]),
        ]
    )
    spec_dt = np.dtype(
        [("detectid", "<i8"), ("spec1D", "<f4", (N_SPEC,)), ("spec1D_err", "<f4", (N_SPEC,))]
    )
    with h5py.File(tmp["ml"], "w") as h5:
        for key, value in _header_meta(survey.meta).items():
            h5.attrs[key] = value
        # PyTables' chunk shapes for these tables in the HDR4 file
        fib = h5.create_dataset("FiberImages", (n,), fib_dt, chunks=(min(56, max(n, 1)),))
        spec = h5.create_dataset("Spec1D", (n,), spec_dt, chunks=(min(126, max(n, 1)),))
        fib.attrs["TITLE"] = "Fiber Cutout Images"
        spec.attrs["TITLE"] = "Aperture Summed Spectrum"
        for a in range(0, n, chunk):
            idx = ml_order[a : a + chunk]
            rec = np.zeros(len(idx), fib_dt)
            rec["detectid"] = cat["detectid"][idx]
            rec["im_wave"] = im_wave[idx]
            s = survey.im_sum[idx].copy()
            arr = survey.im_array[idx].copy()
            pad = padded[idx]
            s[np.broadcast_to(pad[:, None, :], s.shape)] = 0
            arr[np.broadcast_to(pad[:, None, None, :], arr.shape)] = 0
            for j, k in enumerate(lost_planes[idx]):
                if k:
                    arr[j, 4 - k :] = 0  # the weakest fibres are the ones missing
            dead = failed[idx]
            s[dead], arr[dead] = 0, 0
            rec["im_wave"][dead] = 0
            rec["im_sum"], rec["im_array"] = s, arr
            fib[a : a + len(idx)] = rec
            srec = np.zeros(len(idx), spec_dt)
            srec["detectid"] = cat["detectid"][idx]
            srec["spec1D"] = survey.spec1d[idx] * SPEC_PER_BIN  # stored per 2 A bin
            srec["spec1D_err"] = survey.spec1d_err[idx] * SPEC_PER_BIN
            spec[a : a + len(idx)] = srec

    # --- catalogue: the ML candidates plus brighter detections, in detectid order ---
    n_extra = max(0, int(round(n * (catalogue_factor - 1))))
    donor = rng.integers(0, n, n_extra) if n else np.zeros(0, np.int64)
    lo, hi = int(cat["detectid"].min()), int(cat["detectid"].max())
    pool = np.setdiff1d(
        np.arange(lo, hi + n_extra + n + 1, dtype=np.int64), cat["detectid"], assume_unique=True
    )
    extra_ids = np.sort(rng.choice(pool, n_extra, replace=False)) if n_extra else pool[:0]
    all_idx = np.concatenate([np.arange(n), donor])
    det_ids = np.concatenate([cat["detectid"].astype(np.int64), extra_ids])
    order = np.argsort(det_ids, kind="stable")
    src = all_idx[order]
    is_extra = np.concatenate([np.zeros(n, bool), np.ones(n_extra, bool)])[order]
    m = len(order)
    det_fields = [
        ("detectid", "<i8"),
        ("shotid", "<i8"),
        ("ra", "<f4"),
        ("dec", "<f4"),
        *[(c, "<f4") for c in ("wave", "wave_err", "flux", "flux_err", "linewidth")],
        *[(c, "<f4") for c in ("linewidth_err", "continuum", "continuum_err", "sn", "sn_err")],
        ("chi2", "<f4"),
        ("chi2_err", "<f4"),
        ("apcor", "<f4"),
        ("fiber_id", "S38"),
        ("multiframe", "S20"),
        ("ifuslot", "S3"),
        ("amp", "S2"),
        ("fibnum", "<i4"),
    ]
    if survey.truth is not None:
        det_fields += [
            ("truth_real", "?"),
            ("truth_type", "S12"),
            ("truth_flux", "<f4"),
            ("truth_z", "<f4"),
        ]
    det_dt = np.dtype(det_fields)
    sentinel_cont = rng.random(m) < rates["sentinel_continuum"]
    sentinel_apcor = rng.random(m) < rates["sentinel_apcor"]
    quirks["sentinel_continuum"] = int((sentinel_cont & ~is_extra).sum())
    quirks["sentinel_apcor"] = int((sentinel_apcor & ~is_extra).sum())
    with h5py.File(tmp["catalogue"], "w") as h5:
        det = h5.create_dataset("Detections", (m,), det_dt, chunks=(min(4096, max(m, 1)),))
        for a in range(0, m, 1 << 16):
            sl = slice(a, min(m, a + (1 << 16)))
            i = src[sl]
            ex = is_extra[sl]
            rec = np.zeros(len(i), det_dt)
            rec["detectid"] = det_ids[order[sl]]
            for c in ("shotid", "ra", "dec", "wave", "flux", "flux_err", "linewidth", "chi2"):
                rec[c] = cat[c][i]
            rec["continuum"] = np.where(sentinel_cont[sl], -999.0, cat["continuum"][i])
            rec["apcor"] = np.where(sentinel_apcor[sl], -999.999, cat["apcor"][i])
            # the bright detections left out of the ML file (g < 22): brighter lines
            rec["sn"] = np.where(ex, cat["sn"][i] * 3, cat["sn"][i])
            rec["flux"] = np.where(ex, cat["flux"][i] * 3, cat["flux"][i])
            for c in ("wave_err", "linewidth_err", "continuum_err", "sn_err", "chi2_err"):
                rec[c] = rng.uniform(0.05, 0.5, len(i))
            rec["sn_err"][rng.random(len(i)) < 0.01] = -999.0  # a sentinel in a column not read
            rec["fibnum"] = rng.integers(1, 113, len(i))
            rec["amp"] = rng.choice([b"LL", b"LU", b"RL", b"RU"], len(i))
            rec["ifuslot"] = rng.choice([b"046", b"083", b"095", b"106"], len(i))
            rec["multiframe"] = [b"multi_" + k for k in rec["ifuslot"]]
            rec["fiber_id"] = [
                f"{int(s)}_1_{int(f):03d}".encode()
                for s, f in zip(rec["shotid"], rec["fibnum"], strict=True)
            ]
            if survey.truth is not None:
                for c in TRUTH_COLUMNS:
                    vals = np.asarray(survey.truth[c])[i]
                    rec[c] = vals.astype("S12") if vals.dtype.kind == "U" else vals
            det[sl] = rec

    # --- survey table: one row per shot, plus shots in fields with no candidates here ---
    shots, first = np.unique(cat["shotid"].astype(np.int64), return_index=True)
    fields = np.asarray(cat["field"]).astype(str)[first]
    extra_shots = np.arange(len(SURVEY_FIELDS_EXTRA), dtype=np.int64) + 20990101001
    sv_dt = np.dtype(
        [
            ("shotid", "<i8"),
            ("date", "<i4"),
            ("obsid", "<i4"),
            ("objid", "S18"),
            ("field", "S12"),
            ("fwhm_virus", "<f4"),
            ("response_4540", "<f4"),
        ]
    )
    rows = np.zeros(len(shots) + len(extra_shots), sv_dt)
    rows["shotid"] = np.concatenate([shots, extra_shots])
    rows["date"] = rows["shotid"] // 1000
    rows["obsid"] = rows["shotid"] % 1000
    rows["field"] = np.concatenate([fields, SURVEY_FIELDS_EXTRA]).astype("S12")
    rows["objid"] = [b"DEX" + f.upper()[:8] for f in rows["field"]]
    rows["fwhm_virus"] = rng.normal(1.8, 0.3, len(rows))
    rows["response_4540"] = rng.uniform(0.08, 0.16, len(rows))
    with h5py.File(tmp["survey"], "w") as h5:
        h5.create_dataset("Survey", data=rows)

    for k, p in paths.items():
        tmp[k].replace(p)
    out: dict = dict(paths)
    out["quirks"] = quirks
    out["meta"] = json.loads(_header_meta(survey.meta)["SIMMETA"])
    return out


def ml_row_of(ml_path: str | Path) -> dict[int, int]:
    """detectid -> row of the ML file's /FiberImages (for tests and notebooks)."""
    import h5py

    with h5py.File(ml_path, "r") as h5:
        ids = h5["FiberImages"].fields("detectid")[()]
    return {int(d): i for i, d in enumerate(ids)}


__all__ = [
    "CCD_PIXELS",
    "HetdexReader",
    "QUIRK_RATES",
    "SPEC_PER_BIN",
    "hetdex_cutout_wave",
    "ml_row_of",
    "open_hetdex",
    "write_hetdex",
]
