"""Read and write survey files: FITS (astropy) and HETDEX-style HDF5 (h5py).

Both formats hold the same thing (see :mod:`mlcore.survey`). Readers are lazy: a
:class:`SurveyReader` reads the small catalogue whole but the image arrays chunk by chunk,
so ingest memory does not grow with the file.

FITS layout
    primary HDU     header: SIMVERS, SIMSEED, SIMFIELD and SIMMETA (JSON of all parameters)
    ``CATALOG``     binary table: catalogue columns (+ optional ``truth_*`` columns)
    ``IM_SUM``      image (N, 9, 100)       ``IM_ARRAY``    image (N, 4, 9, 100)
    ``IM_WAVE``     image (N, 100)          ``SPEC1D``, ``SPEC1D_ERR``  images (N, 1036)

    ``IM_DETECTID`` image (N,) int64: the detectid of each row of the image HDUs (written
                    since issue #22; a file without it is paired by row, with a note)

HDF5 layout (the project's own: one file, tables named as in HETDEX's products)
    ``/Detections``  table (compound dataset) or group of datasets: catalogue columns
    ``/FiberImages`` table or group: ``detectid``, ``im_wave``, ``im_sum``, ``im_array``
    ``/Spec1D``      table or group: ``detectid``, ``spec1D``, ``spec1D_err``
    root attributes: the same header keys as FITS.
A "table" is what PyTables writes (one compound row per detection); a group of plain
datasets is accepted too, so files written by other tools can be read. HETDEX's real
three-file products (ML file, catalogue, survey table) are read by :mod:`mlcore.hetdex_io`.

Pixels are joined to catalogue rows by ``detectid`` wherever a table carries ids
(:mod:`mlcore.join`): rows in another order are read in catalogue order, and a file whose
tables hold different ids is refused with the rows named.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from mlcore.errors import DataError
from mlcore.survey import (
    ARRAY_SHAPES,
    CATALOG_COLUMNS,
    EXTERNAL_COLUMNS,
    TRUTH_COLUMNS,
    Survey,
)

FITS_MAGIC = b"SIMPLE  ="
FITS_IDS_HDU = "IM_DETECTID"
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"

# Array name in :class:`Survey` -> extension name in FITS.
FITS_HDU = {name: name.upper() for name in ARRAY_SHAPES}
# Array name -> (HDF5 node, member name inside it), as in HETDEX's ML file.
HDF5_NODE = {
    "im_wave": ("FiberImages", "im_wave"),
    "im_sum": ("FiberImages", "im_sum"),
    "im_array": ("FiberImages", "im_array"),
    "spec1d": ("Spec1D", "spec1D"),
    "spec1d_err": ("Spec1D", "spec1D_err"),
}


# Missing-value sentinels of HETDEX's public tables (PDR1: -999 and 'n/a'; ELiXer's
# elixer.h5: -999.999 and -99999). They become NaN / '' when read, never numbers.
FLOAT_SENTINELS = (-999.0, -999.999, -99999.0)
TEXT_SENTINELS = ("n/a", "N/A", "nan", "NaN", "None")


def sentinels_to_missing(col: np.ndarray) -> np.ndarray:
    """A catalogue column with its sentinels replaced: NaN for floats, '' for text."""
    if col.dtype.kind == "f":
        hit = np.isin(col, np.asarray(FLOAT_SENTINELS, dtype=col.dtype))
        if hit.any():
            col = np.where(hit, np.nan, col).astype(col.dtype)
    elif col.dtype.kind == "U":
        hit = np.isin(col, TEXT_SENTINELS)
        if hit.any():
            col = np.where(hit, "", col)
    return col


class SurveyFileError(DataError):
    """The file cannot be read as a survey; the message says where and what."""


def check_regular_file(path: str | Path) -> int:
    """The size of ``path`` if it is a non-empty regular file; SurveyFileError otherwise.

    Called before anything opens or hashes the file: reading /dev/zero or a FIFO never ends.
    """
    import stat

    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        raise SurveyFileError(f"{path}: cannot be read: No such file or directory") from None
    except OSError as exc:
        raise SurveyFileError(f"{path}: cannot be read: {exc.strerror}") from exc
    if stat.S_ISDIR(st.st_mode):
        raise SurveyFileError(f"{path}: is a directory, not a survey file")
    if not stat.S_ISREG(st.st_mode):
        kind = (
            "a FIFO (named pipe)"
            if stat.S_ISFIFO(st.st_mode)
            else "a character device"
            if stat.S_ISCHR(st.st_mode)
            else "a block device"
            if stat.S_ISBLK(st.st_mode)
            else "a socket"
            if stat.S_ISSOCK(st.st_mode)
            else "not a regular file"
        )
        raise SurveyFileError(
            f"{path}: is {kind}, not a regular file; refused without reading it "
            "(copy the data to a file first)"
        )
    if st.st_size == 0:
        raise SurveyFileError(f"{path}: is empty (0 bytes)")
    return st.st_size


def sniff_format(path: str | Path) -> str:
    """'fits' or 'hdf5' from the file's first bytes (never from its name)."""
    path = Path(path)
    check_regular_file(path)
    with open(path, "rb") as fh:
        head = fh.read(len(FITS_MAGIC))
    if head.startswith(FITS_MAGIC):
        return "fits"
    if head.startswith(HDF5_MAGIC):
        return "hdf5"
    raise SurveyFileError(
        f"{path}: not a FITS or HDF5 file (it starts with {head[:8]!r}; a FITS file starts "
        f"with {FITS_MAGIC!r}, an HDF5 file with {HDF5_MAGIC!r})"
    )


def _header_meta(meta: dict) -> dict[str, object]:
    """The header cards both formats carry: three short keys and the full JSON."""
    return {
        "SIMVERS": str(meta.get("simulator_version", "")),
        "SIMSEED": int(meta.get("seed", -1)),
        "SIMFIELD": str(meta.get("field", "")),
        "SIMMETA": json.dumps(meta, sort_keys=True, default=str),
    }


def _meta_from_header(header) -> dict:
    raw = header.get("SIMMETA")
    if raw is None:
        return {}
    if isinstance(raw, bytes):
        raw = raw.decode()
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SurveyFileError(f"header SIMMETA is not valid JSON: {exc}") from exc


# ------------------------------------------------------------------------------------------
# Writing
# ------------------------------------------------------------------------------------------


def write_survey(path: str | Path, survey: Survey, fmt: str | None = None) -> Path:
    """Write ``survey`` to ``path``; the format is ``fmt`` or taken from the suffix."""
    path = Path(path)
    fmt = fmt or ("hdf5" if path.suffix.lower() in (".h5", ".hdf5") else "fits")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    if fmt == "fits":
        _write_fits(tmp, survey)
    elif fmt == "hdf5":
        _write_hdf5(tmp, survey)
    else:
        raise ValueError(f"unknown format {fmt!r}: use 'fits' or 'hdf5'")
    tmp.replace(path)  # a crash never leaves a half-written file under the real name
    return path


def _table_columns(survey: Survey) -> dict[str, np.ndarray]:
    cols = {k: np.asarray(survey.catalog[k], dtype=dt) for k, dt in CATALOG_COLUMNS.items()}
    if survey.truth is not None:
        cols.update({k: np.asarray(survey.truth[k], dtype=dt) for k, dt in TRUTH_COLUMNS.items()})
    return cols


def _write_fits(path: Path, survey: Survey) -> None:
    from astropy.io import fits

    primary = fits.PrimaryHDU()
    for key, value in _header_meta(survey.meta).items():
        primary.header[key] = value
    table = fits.BinTableHDU.from_columns(_fits_columns(_table_columns(survey)), name="CATALOG")
    hdus = [primary, table]
    for name, hdu_name in FITS_HDU.items():
        hdus.append(fits.ImageHDU(np.asarray(getattr(survey, name), np.float32), name=hdu_name))
    # Image HDUs have no columns: this HDU says which detectid each of their rows belongs to.
    ids = np.asarray(survey.catalog["detectid"], np.int64)
    hdus.append(fits.ImageHDU(ids, name=FITS_IDS_HDU))
    fits.HDUList(hdus).writeto(path, overwrite=True)


def _fits_columns(cols: dict[str, np.ndarray]):
    from astropy.io import fits

    out = []
    for name, arr in cols.items():
        if arr.dtype.kind == "U":
            width = max(1, int(arr.dtype.itemsize // 4))
            out.append(fits.Column(name=name, format=f"{width}A", array=arr.astype(f"S{width}")))
        elif arr.dtype.kind == "b":
            out.append(fits.Column(name=name, format="L", array=arr))
        else:
            code = {"i8": "K", "i4": "J", "i2": "I", "f8": "D", "f4": "E"}[arr.dtype.str[1:]]
            out.append(fits.Column(name=name, format=code, array=arr))
    return out


def _write_hdf5(path: Path, survey: Survey) -> None:
    import h5py

    cols = _table_columns(survey)
    with h5py.File(path, "w") as h5:
        for key, value in _header_meta(survey.meta).items():
            h5.attrs[key] = value
        h5.create_dataset("Detections", data=_compound(cols))
        fiber = {
            "detectid": cols["detectid"],
            "im_wave": survey.im_wave,
            "im_sum": survey.im_sum,
            "im_array": survey.im_array,
        }
        spec = {
            "detectid": cols["detectid"],
            "spec1D": survey.spec1d,
            "spec1D_err": survey.spec1d_err,
        }
        # Compound rows, like the PyTables tables of HETDEX's file; chunked by rows so a
        # reader can take slices without touching the rest.
        chunks = (min(256, len(survey)),) if len(survey) else None
        h5.create_dataset("FiberImages", data=_compound(fiber), chunks=chunks)
        h5.create_dataset("Spec1D", data=_compound(spec), chunks=chunks)


def _compound(cols: dict[str, np.ndarray]) -> np.ndarray:
    n = len(next(iter(cols.values())))
    fields = []
    for name, arr in cols.items():
        arr = np.asarray(arr)
        dt = arr.dtype
        if dt.kind == "U":
            dt = np.dtype(f"S{max(1, dt.itemsize // 4)}")
        elif dt.kind == "f" and arr.ndim > 1:
            dt = np.dtype(np.float32)
        fields.append((name, dt, arr.shape[1:]))
    rec = np.empty(n, dtype=fields)
    for name, arr in cols.items():
        arr = np.asarray(arr)
        rec[name] = arr.astype(rec.dtype[name].base) if arr.dtype.kind == "U" else arr
    return rec


def write_external(path: str | Path, external: dict[str, np.ndarray], meta: dict | None = None):
    """Write a DESI-like confirmation catalogue as a FITS table (``EXTERNAL``) or CSV."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    cols = {k: np.asarray(external[k], dtype=dt) for k, dt in EXTERNAL_COLUMNS.items()}
    if path.suffix.lower() == ".csv":
        from mlcore.csv_safe import SafeWriter

        with open(path, "w", newline="") as fh:
            writer = SafeWriter(fh, lineterminator="\n")  # the platform's one CSV writer
            writer.writerow(cols)
            writer.writerows(zip(*cols.values(), strict=True))
        return path
    from astropy.io import fits

    primary = fits.PrimaryHDU()
    for key, value in _header_meta(meta or {}).items():
        primary.header[key] = value
    table = fits.BinTableHDU.from_columns(_fits_columns(cols), name="EXTERNAL")
    fits.HDUList([primary, table]).writeto(path, overwrite=True)
    return path


# ------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------


class SurveyReader:
    """Lazy access to one survey file. Use as a context manager.

    ``columns``: catalogue (+truth) columns as found, ``arrays``: name -> (shape, dtype)
    as found (shape includes N). Neither is validated here: :mod:`mlcore.validation` does
    that and names what is wrong.
    """

    fmt: str
    path: Path
    meta: dict
    columns: dict[str, np.ndarray]
    arrays: dict[str, tuple[tuple[int, ...], np.dtype]]
    # Rows of a pixel table whose ids do not match the catalogue (validation reports them),
    # and remarks for the operator (e.g. "paired by row: the file carries no ids").
    join_problems: list
    notes: list

    def __enter__(self) -> SurveyReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    @property
    def n(self) -> int:
        col = self.columns.get("detectid", next(iter(self.columns.values()), None))
        # A 0-d "column" (one scalar) has no rows; validation names it.
        return len(col) if col is not None and np.ndim(col) >= 1 else 0

    def location(self, name: str) -> str:
        """Where array ``name`` lives in the file, for error messages."""
        raise NotImplementedError

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) of array ``name``."""
        raise NotImplementedError

    def iter_catalogue(self, chunk: int = 1 << 16):
        """Yield (reader rows, {column: values}, rows in the file) over the catalogue.

        Here: slices of ``columns``. A reader that ``streams_catalogue`` (HETDEX's three
        files at ingest) reads its values chunk by chunk instead, keeping only ids in
        memory, and names their dtypes in ``column_dtypes``.
        """
        rowmap = getattr(self, "catalogue_rows", None)
        for a in range(0, self.n, chunk):
            rows = np.arange(a, min(self.n, a + chunk))
            cols = {k: v[a : a + chunk] for k, v in self.columns.items()}
            yield rows, cols, (rowmap[rows] if rowmap is not None else rows)

    def iter_chunks(
        self, chunk: int, *, reuse: bool = False
    ) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
        """Yield (start, stop, {array name: rows}) over the whole file.

        ``reuse=True`` lets a reader yield views of buffers it reuses for the next chunk
        (:class:`~mlcore.hetdex_io.HetdexReader` does): use each chunk before asking for
        the next. Here every chunk is fresh either way."""
        for start in range(0, self.n, chunk):
            stop = min(self.n, start + chunk)
            yield start, stop, {name: self.read(name, start, stop) for name in self.arrays}


class _FitsReader(SurveyReader):
    def __init__(self, path: Path):
        from astropy.io import fits

        self.fmt, self.path = "fits", path
        try:
            # No memmap: file-backed pages would count in the reader's memory and grow with the
            # file; ``section`` reads just the requested rows from disk. astropy only *warns*
            # about a truncated file, so catch that and refuse it here.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                self._hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
        except Exception as exc:  # astropy raises many types for a broken file
            raise SurveyFileError(f"{path}: cannot be opened as FITS: {exc}") from exc
        truncated = [
            str(w.message).replace("\n", " ")
            for w in caught
            if "truncated" in str(w.message) or "file is corrupted" in str(w.message)
        ]
        if truncated:
            self._hdul.close()
            raise SurveyFileError(f"{path}: file is truncated or corrupted ({truncated[0]})")
        try:
            names = [h.name for h in self._hdul]
            twice = sorted({n for n in names if names.count(n) > 1})
            if twice:
                # astropy would silently hand back the first one of each name.
                raise SurveyFileError(
                    f"{path}: HDU name(s) {twice} appear more than once (HDUs: {names}); "
                    "which one holds the data is ambiguous"
                )
            self.meta = _meta_from_header(self._hdul[0].header)
            if "CATALOG" not in self._hdul:
                names = [h.name for h in self._hdul]
                raise SurveyFileError(f"{path}: no CATALOG table HDU (HDUs present: {names})")
            cat = self._hdul["CATALOG"]
            if not isinstance(cat, fits.BinTableHDU):
                raise SurveyFileError(f"{path}: HDU CATALOG is not a binary table")
            data = cat.data
            self.columns = {}
            for name in cat.columns.names:
                col = np.asarray(data[name])
                if col.dtype.kind == "S":
                    col = _text(col, f"{path}: HDU CATALOG column {name!r}")
                key = name.lower() if name.lower() in _KNOWN else name
                self.columns[key] = sentinels_to_missing(col) if key in _KNOWN else col
            self.arrays = {}
            for name, hdu_name in FITS_HDU.items():
                if hdu_name in self._hdul:
                    hdu = self._hdul[hdu_name]
                    if not isinstance(hdu, fits.ImageHDU | fits.PrimaryHDU):
                        raise SurveyFileError(
                            f"{path}: HDU {hdu_name} is a {type(hdu).__name__}; expected an image"
                        )
                    shape = tuple(hdu.shape) if hdu.shape else (0,)
                    bitpix = hdu.header.get("BITPIX")
                    dtype = np.dtype(
                        {-32: "f4", -64: "f8", 8: "u1", 16: "i2", 32: "i4"}.get(bitpix, "i8")
                    )
                    self.arrays[name] = (shape, dtype)
            self._index = None
            self.join_problems, self.notes = [], []
            if FITS_IDS_HDU in self._hdul and "detectid" in self.columns:
                self._join_ids(np.asarray(self._hdul[FITS_IDS_HDU].data))
            elif self.arrays:
                self.notes.append(
                    f"no {FITS_IDS_HDU} HDU: image rows are paired with CATALOG rows by position"
                )
        except Exception as exc:
            self._hdul.close()
            if isinstance(exc, SurveyFileError):
                raise
            # A corrupted header or table fails deep in astropy (VerifyError, ValueError, ...)
            raise SurveyFileError(f"{path}: cannot be read as FITS: {exc}") from exc

    def _join_ids(self, image_ids: np.ndarray) -> None:
        from mlcore.join import align, id_problems

        cat_ids = self.columns["detectid"]
        where_img = f"HDU {FITS_IDS_HDU}"
        if id_problems(cat_ids, "HDU CATALOG column 'detectid'"):
            return  # check_catalog names the catalogue's own id problems
        self.join_problems = id_problems(image_ids, where_img)
        if self.join_problems:
            return
        self._index, self.join_problems = align(
            cat_ids, image_ids, ref_where="HDU CATALOG", other_where=where_img
        )

    def location(self, name: str) -> str:
        return f"HDU {FITS_HDU[name]}"

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        from mlcore.join import read_rows

        section = self._hdul[FITS_HDU[name]].section
        try:
            return np.asarray(
                read_rows(
                    lambda a, b: np.asarray(section[a:b]),
                    lambda idx: np.stack([np.asarray(section[int(i)]) for i in idx]),
                    self._index,
                    start,
                    stop,
                )
            )
        except Exception as exc:  # a corrupted data block
            raise SurveyFileError(
                f"{self.path}: HDU {FITS_HDU[name]} rows {start}-{stop - 1} cannot be read: {exc}"
            ) from exc

    def close(self) -> None:
        self._hdul.close()


_KNOWN = set(CATALOG_COLUMNS) | set(TRUTH_COLUMNS)


def _text(col: np.ndarray, where: str) -> np.ndarray:
    """Bytes (or HDF5 variable-length strings) as stripped text; SurveyFileError naming the
    first bad row when they are not ASCII."""
    try:
        return np.char.strip(col.astype("U"))
    except UnicodeDecodeError:
        for i, raw in enumerate(col.reshape(-1)):
            if isinstance(raw, bytes) and not raw.isascii():  # np.bytes_ is bytes
                raise SurveyFileError(f"{where} row {i}: {raw[:20]!r} is not ASCII text") from None
        raise


class _Hdf5Reader(SurveyReader):
    def __init__(self, path: Path):
        import h5py

        self.fmt, self.path = "hdf5", path
        try:
            self._h5 = h5py.File(path, "r")
        except Exception as exc:
            raise SurveyFileError(f"{path}: cannot be opened as HDF5: {exc}") from exc
        try:
            self.meta = _meta_from_header(self._h5.attrs)
            if "Detections" not in self._h5:
                raise SurveyFileError(
                    f"{path}: no /Detections table (top-level nodes: {sorted(self._h5.keys())})"
                )
            self.columns = {}
            for name, col in self._members("Detections").items():
                arr = np.asarray(col)
                if arr.dtype.kind in "SO":
                    arr = _text(arr, f"{path}: /Detections column {name!r}")
                self.columns[name] = sentinels_to_missing(arr) if name in _KNOWN else arr
            self.arrays = {}
            for name, (node, member) in HDF5_NODE.items():
                if node in self._h5:
                    ds = self._h5[node]
                    if isinstance(ds, h5py.Group) and member in ds:
                        sub = ds[member]
                        if not isinstance(sub, h5py.Dataset):
                            raise SurveyFileError(
                                f"{path}: /{node}/{member} is a {type(sub).__name__}; "
                                "expected a dataset"
                            )
                        self.arrays[name] = (tuple(sub.shape), sub.dtype)
                    elif (
                        isinstance(ds, h5py.Dataset) and ds.dtype.names and member in ds.dtype.names
                    ):
                        sub_dt = ds.dtype[member]
                        self.arrays[name] = ((ds.shape[0], *sub_dt.shape), sub_dt.base)
            self._index = {}
            self.join_problems, self.notes = [], []
            if "detectid" in self.columns:
                self._join_ids()
        except Exception as exc:
            self._h5.close()
            if isinstance(exc, SurveyFileError):
                raise
            # Corrupted object headers, heaps or B-trees fail in h5py as OSError, KeyError,
            # RuntimeError, ...
            raise SurveyFileError(f"{path}: cannot be read as HDF5: {exc}") from exc

    def _members(self, node: str) -> dict[str, np.ndarray]:
        import h5py

        obj = self._h5[node]
        if isinstance(obj, h5py.Group):
            return {k: obj[k][()] for k in obj if isinstance(obj[k], h5py.Dataset)}
        if obj.dtype.names:
            data = obj[()]
            return {k: data[k] for k in obj.dtype.names}
        raise SurveyFileError(f"{self.path}: /{node} is neither a table nor a group")

    def _node_ids(self, node: str) -> np.ndarray | None:
        import h5py

        obj = self._h5[node]
        if isinstance(obj, h5py.Group):
            return obj["detectid"][()] if "detectid" in obj else None
        if obj.dtype.names and "detectid" in obj.dtype.names:
            return obj.fields("detectid")[()]
        return None

    def _join_ids(self) -> None:
        from mlcore.join import align, id_problems

        cat_ids = self.columns["detectid"]
        if id_problems(cat_ids, "/Detections column 'detectid'"):
            return  # check_catalog names the catalogue's own id problems
        for node in dict.fromkeys(node for node, _ in HDF5_NODE.values()):
            if node not in self._h5:
                continue  # check_structure names the missing arrays
            ids = self._node_ids(node)
            if ids is None:
                self.notes.append(
                    f"/{node} has no detectid: its rows are paired with /Detections by position"
                )
                continue
            problems = id_problems(ids, f"/{node} column 'detectid'")
            if not problems:
                self._index[node], problems = align(
                    cat_ids, ids, ref_where="/Detections", other_where=f"/{node}"
                )
            self.join_problems += problems

    def location(self, name: str) -> str:
        node, member = HDF5_NODE[name]
        return f"/{node}/{member}"

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        import h5py

        from mlcore.join import read_rows

        node, member = HDF5_NODE[name]
        try:
            obj = self._h5[node]
            ds = obj[member] if isinstance(obj, h5py.Group) else obj.fields(member)
            return read_rows(
                lambda a, b: ds[a:b],
                lambda idx: ds[idx],
                self._index.get(node),
                start,
                stop,
            )
        except Exception as exc:  # a corrupted chunk
            raise SurveyFileError(
                f"{self.path}: /{node}/{member} rows {start}-{stop - 1} cannot be read: {exc}"
            ) from exc

    def close(self) -> None:
        self._h5.close()


def open_survey(path: str | Path) -> SurveyReader:
    """Open a survey file of either format (sniffed from its bytes) for lazy reading."""
    path = Path(path)
    fmt = sniff_format(path)
    return _FitsReader(path) if fmt == "fits" else _Hdf5Reader(path)


def read_survey(path: str | Path) -> Survey:
    """Read a whole survey file into memory (for notebooks, training and tests).

    Raises :class:`SurveyFileError` when a required column or array is missing; use
    :func:`mlcore.validation.validate_survey_file` first for a full report.
    """
    with open_survey(path) as reader:
        cols = reader.columns
        missing = [c for c in CATALOG_COLUMNS if c not in cols and c != "apcor"]
        missing += [a for a in ARRAY_SHAPES if a not in reader.arrays]
        if missing:
            raise SurveyFileError(f"{path}: missing {', '.join(missing)}")
        n = reader.n
        catalog = {
            k: (cols[k] if k in cols else np.ones(n)).astype(dt)
            for k, dt in CATALOG_COLUMNS.items()
        }
        truth = None
        if all(k in cols for k in TRUTH_COLUMNS):
            truth = {k: cols[k].astype(dt) for k, dt in TRUTH_COLUMNS.items()}
        arrays = {k: np.asarray(reader.read(k, 0, n), np.float32) for k in ARRAY_SHAPES}
        return Survey(catalog=catalog, truth=truth, meta=dict(reader.meta), **arrays)


def read_external(path: str | Path) -> dict[str, np.ndarray]:
    """Read an external confirmation catalogue (FITS table or CSV with ra, dec, z[, quality])."""
    path = Path(path)
    if path.suffix.lower() == ".csv":
        data = np.genfromtxt(path, delimiter=",", names=True, dtype=None, encoding="utf-8")
        cols = {name.lower(): np.atleast_1d(data[name]) for name in data.dtype.names}
    else:
        from astropy.table import Table

        table = Table.read(path)
        cols = {name.lower(): np.asarray(table[name]) for name in table.colnames}
    missing = [c for c in ("ra", "dec", "z") if c not in cols]
    if missing:
        raise SurveyFileError(f"{path}: external catalogue lacks column(s) {', '.join(missing)}")
    out = {k: cols[k].astype(dt) for k, dt in EXTERNAL_COLUMNS.items() if k in cols}
    out.setdefault("quality", np.zeros(len(out["ra"]), np.int16))
    return out
