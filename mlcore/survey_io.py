"""Read and write survey files: FITS (astropy) and HETDEX-style HDF5 (h5py).

Both formats hold the same thing (see :mod:`mlcore.survey`). Readers are lazy: a
:class:`SurveyReader` reads the small catalogue whole but the image arrays chunk by chunk,
so ingest memory does not grow with the file.

FITS layout
    primary HDU     header: SIMVERS, SIMSEED, SIMFIELD and SIMMETA (JSON of all parameters)
    ``CATALOG``     binary table: catalogue columns (+ optional ``truth_*`` columns)
    ``IM_SUM``      image (N, 9, 100)       ``IM_ARRAY``    image (N, 4, 9, 100)
    ``IM_WAVE``     image (N, 100)          ``SPEC1D``, ``SPEC1D_ERR``  images (N, 1036)

HDF5 layout (as HETDEX's ``detect_ml_*.h5``)
    ``/Detections``  table (compound dataset) or group of datasets: catalogue columns
    ``/FiberImages`` table or group: ``detectid``, ``im_wave``, ``im_sum``, ``im_array``
    ``/Spec1D``      table or group: ``detectid`` (optional), ``spec1D``, ``spec1D_err``
    root attributes: the same header keys as FITS.
A "table" is what PyTables writes (one compound row per detection); a group of plain
datasets is accepted too, so files written by other tools can be read.
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


class SurveyFileError(DataError):
    """The file cannot be read as a survey; the message says where and what."""


def sniff_format(path: str | Path) -> str:
    """'fits' or 'hdf5' from the file's first bytes (never from its name)."""
    path = Path(path)
    if not path.exists():
        raise SurveyFileError(f"{path}: no such file")
    if path.is_dir():
        raise SurveyFileError(f"{path}: is a directory, not a survey file")
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
        with open(path, "w") as fh:
            fh.write(",".join(cols) + "\n")
            for row in zip(*cols.values(), strict=True):
                fh.write(",".join(str(v) for v in row) + "\n")
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

    def iter_chunks(self, chunk: int) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
        """Yield (start, stop, {array name: rows}) over the whole file."""
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
                self.columns[name.lower() if name.lower() in _KNOWN else name] = col
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
        except Exception as exc:
            self._hdul.close()
            if isinstance(exc, SurveyFileError):
                raise
            # A corrupted header or table fails deep in astropy (VerifyError, ValueError, ...)
            raise SurveyFileError(f"{path}: cannot be read as FITS: {exc}") from exc

    def location(self, name: str) -> str:
        return f"HDU {FITS_HDU[name]}"

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        try:
            return np.asarray(self._hdul[FITS_HDU[name]].section[start:stop])
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
                self.columns[name] = arr
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

    def location(self, name: str) -> str:
        node, member = HDF5_NODE[name]
        return f"/{node}/{member}"

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        import h5py

        node, member = HDF5_NODE[name]
        try:
            obj = self._h5[node]
            if isinstance(obj, h5py.Group):
                return obj[member][start:stop]
            return obj.fields(member)[start:stop]
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
