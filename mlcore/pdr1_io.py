"""HETDEX's public release (PDR1): the HPSC-2 catalogue and its 1D spectra, as a survey source.

PDR1 is what a scientist outside the HETDEX team can download. It ships **no cutouts**: a
catalogue and 1D spectra only. Two FITS files:

``catalogue`` (HPSC-2; one binary table, the first table HDU)
    ``detectid``, ``RA``, ``DEC``, ``field``, ``sn``, ``apcor``, ``p_conf``, ``p_cnn`` and the
    line columns named as in HETDEX's ``/Detections`` (``shotid``, ``wave``, ``flux``,
    ``flux_err``, ``linewidth``, ``continuum``, ``chi2``). Names are matched without regard
    to case (``RA`` -> ``ra``); two columns whose names differ only in case are refused.
    [E] The line-column names follow ``/Detections``: they were not checked against the
    released file (the public data model names the first eight); a file that names them
    otherwise is refused with the missing column named, never guessed.
``spectra``
    ``INFO``       binary table, one row per spectrum: ``detectid`` (the join key)
    ``SPEC``       image (N, 1036): flux density on ``WAVELENGTH``
    ``SPEC_ERR``   image (N, 1036): its error
    ``WAVELENGTH`` image (1036,) (or (N, 1036), every row the same): must be HETDEX's
                   grid ``3470 + 2*arange(1036)`` A, or the file is refused (no resampling)

Conversions and rules:
- Spectra rows are joined to catalogue rows by ``detectid`` (``INFO``), never by position;
  a catalogue row without a spectrum, a spectrum without a catalogue row, a repeated id,
  or an ``INFO`` whose length differs from ``SPEC``'s is refused with the rows named.
- ``SPEC``/``SPEC_ERR`` are converted to the store's 1e-17 erg/s/cm2/A from the HDU's
  ``BUNIT`` when it has one (a unit that is not a flux density is refused); without
  ``BUNIT`` they are taken as 1e-17 erg/s/cm2/A (hetdex_api's ``get_spectrum`` unit), with
  a note.
- Sentinels (-999, -999.999, -99999; 'n/a') become missing values: NULL for ``continuum``,
  ``apcor``, ``p_conf``, ``p_cnn``; a refusal naming the row for a required column (a
  candidate without S/N or wavelength cannot be queued or scored). In the spectra they
  become NaN, which ``--nan-policy`` decides (refused by default).
- ``p_cnn`` and ``p_conf`` must lie in 0..1 (or be missing): they are kept as external
  scores the console compares with the platform's labels and model.
- Every candidate is stored without a picture: its cutout is all-missing and flagged
  (:data:`mlcore.cutout_quality.NO_CUTOUT` with ``NOT_IN_PRODUCT``), so it is never served
  to volunteers and never used to train the CNN; scientists see its spectrum.
- Two HDUs of the same name in either file are refused (astropy would take the first).

:func:`write_pdr1` writes a simulated survey in this layout (the fixture for tests, and
``simulate_survey --format pdr1``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from mlcore.join import align, id_problems
from mlcore.survey import (
    ARRAY_SHAPES,
    CATALOG_COLUMNS,
    N_SPEC,
    SPEC_DWAVE,
    SPEC_WAVE0,
    Survey,
)
from mlcore.survey_io import (
    SurveyFileError,
    SurveyReader,
    _text,
    check_regular_file,
    sentinels_to_missing,
)
from mlcore.validation import MAX_ROWS_LISTED, Problem

PDR1_SOURCE = "hetdex-pdr1"
EXTERNAL_SCORES = ("p_cnn", "p_conf")  # kept per candidate as external scores (0..1)
SPEC_HDUS = ("INFO", "SPEC", "SPEC_ERR", "WAVELENGTH")
STORE_FLUX_UNIT = "1e-17 erg / (s cm2 Angstrom)"
_CATALOGUE_WANTED = (*CATALOG_COLUMNS, *EXTERNAL_SCORES)


def _grid() -> np.ndarray:
    return SPEC_WAVE0 + SPEC_DWAVE * np.arange(N_SPEC)


def _open_fits(path: Path, what: str):
    from astropy.io import fits

    check_regular_file(path)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            hdul = fits.open(path, memmap=False, lazy_load_hdus=False)
    except Exception as exc:
        raise SurveyFileError(f"{path}: cannot be opened as FITS ({what}): {exc}") from exc
    bad = [str(w.message) for w in caught if "truncated" in str(w.message)]
    names = [h.name for h in hdul]
    twice = sorted({n for n in names if names.count(n) > 1 and n != ""})
    if bad or twice:
        hdul.close()
        if bad:
            raise SurveyFileError(f"{path}: file is truncated or corrupted ({bad[0]})")
        raise SurveyFileError(
            f"{path}: HDU name(s) {twice} appear more than once (HDUs: {names}); which one "
            "holds the data is ambiguous"
        )
    return hdul


class Pdr1Reader(SurveyReader):
    """PDR1's catalogue + spectra as one survey, in catalogue order; no cutouts."""

    no_cutouts = True
    score_source = PDR1_SOURCE

    def __init__(self, catalogue: Path, spectra: Path):
        from astropy.io import fits

        self.fmt, self.path = "pdr1", Path(catalogue)
        self.paths = {"catalogue": Path(catalogue), "spectra": Path(spectra)}
        self.columns, self.arrays, self.meta = {}, {}, {}
        self.join_problems, self.notes, self.fatal_problems = [], [], []
        self._index = None
        self._scale = 1.0
        self._cat = _open_fits(self.paths["catalogue"], "PDR1 catalogue")
        try:
            self._spec = _open_fits(self.paths["spectra"], "PDR1 spectra")
        except Exception:
            self._cat.close()
            raise
        try:
            tables = [
                h for h in self._cat if isinstance(h, fits.BinTableHDU | fits.TableHDU)
            ]  # fmt: skip
            if not tables:
                names = [h.name for h in self._cat]
                raise SurveyFileError(f"{self.path}: no table HDU (HDUs: {names})")
            table = tables[0]
            self.catalog_where = f"{self.path.name} HDU {table.name or 1}"
            self._read_catalogue(table)
            self._open_spectra()
            self.meta = {
                "source_files": {k: str(p) for k, p in self.paths.items()},
                "product": "HETDEX PDR1 (HPSC-2 catalogue + 1D spectra; no cutouts)",
                "conversions": [
                    "column names matched without regard to case (RA -> ra, DEC -> dec)",
                    f"SPEC, SPEC_ERR -> {STORE_FLUX_UNIT} (x {self._scale:g})",
                    "sentinels -999, -999.999, -99999, 'n/a' -> missing",
                    "p_cnn, p_conf kept as external scores (source hetdex-pdr1)",
                    "no cutouts: every candidate stored without a picture",
                ],
            }
        except Exception as exc:
            self.close()
            if isinstance(exc, SurveyFileError):
                raise
            raise SurveyFileError(f"{self.path}: cannot be read as PDR1: {exc}") from exc

    # --- catalogue --------------------------------------------------------------------------

    def _read_catalogue(self, table) -> None:
        data = table.data
        names = list(table.columns.names)
        lower: dict[str, list[str]] = {}
        for nm in names:
            lower.setdefault(nm.lower(), []).append(nm)
        clash = {k: v for k, v in lower.items() if len(v) > 1 and k in _CATALOGUE_WANTED}
        if clash:
            raise SurveyFileError(
                f"{self.catalog_where}: columns {sorted(sum(clash.values(), []))} differ only in "
                "case; which one is meant is ambiguous"
            )
        n = len(data) if data is not None else 0
        for key in _CATALOGUE_WANTED:
            if key not in lower:
                continue
            col = np.asarray(data[lower[key][0]]) if n else np.zeros(0)
            if col.dtype.byteorder == ">":
                col = col.astype(col.dtype.newbyteorder("="))
            if col.dtype.kind in "SO":
                col = _text(col, f"{self.catalog_where} column {lower[key][0]!r}")
            self.columns[key] = sentinels_to_missing(col) if col.dtype.kind in "fU" else col
        if "field" in self.columns:
            self.columns["field"] = np.char.lower(self.columns["field"])
        cw = self.catalog_where
        for key in EXTERNAL_SCORES:
            if key not in self.columns:
                self.notes.append(f"{cw} has no {key} column: no external score kept for it")
                continue
            vals = self.columns[key]
            if vals.dtype.kind not in "iuf" or vals.ndim != 1:
                self.join_problems.append(
                    Problem(f"{cw} column '{key}'", f"has dtype {vals.dtype}; expected a number")
                )
                continue
            vals = vals.astype(np.float64)
            bad = np.flatnonzero(~np.isnan(vals) & ~((vals >= 0) & (vals <= 1)))
            if bad.size:
                self.join_problems.append(
                    Problem(
                        f"{cw} column '{key}' {_rows(bad, self.columns.get('detectid'))}",
                        f"{vals[bad[0]]:g} is not a probability (0..1, or a sentinel such as "
                        "-999 for missing)",
                    )
                )
            self.columns[key] = vals

    # --- spectra ----------------------------------------------------------------------------

    def _open_spectra(self) -> None:
        from astropy import units as u

        sp, where = self._spec, self.paths["spectra"].name
        present = [h.name for h in sp]
        absent = [h for h in SPEC_HDUS if h not in present]
        if absent:
            raise SurveyFileError(
                f"{self.paths['spectra']}: lacks HDU(s) {absent} (HDUs present: {present}); "
                f"PDR1 spectra have {list(SPEC_HDUS)}"
            )
        info = sp["INFO"]
        info_names = {c.lower(): c for c in (info.columns.names if info.columns else [])}
        if "detectid" not in info_names:
            raise SurveyFileError(
                f"{where} HDU INFO: no 'detectid' column (columns: {list(info_names.values())})"
            )
        spec_ids = np.asarray(info.data[info_names["detectid"]]) if info.data is not None else []
        spec_ids = np.asarray(spec_ids)
        shapes = {h: tuple(sp[h].shape) for h in ("SPEC", "SPEC_ERR")}
        n_spec = len(spec_ids)
        for h, shape in shapes.items():
            if shape != (n_spec, N_SPEC):
                raise SurveyFileError(
                    f"{where} HDU {h}: has shape {shape}; expected ({n_spec}, {N_SPEC}) "
                    f"(one row of {N_SPEC} bins per INFO row)"
                )
        wave = np.asarray(sp["WAVELENGTH"].data, np.float64)
        rows = wave.reshape(-1, wave.shape[-1]) if wave.ndim in (1, 2) else None
        if rows is None or rows.shape[-1] != N_SPEC or not np.allclose(rows, _grid(), atol=0.01):
            first = rows[0, :2].tolist() if rows is not None and rows.size >= 2 else wave.shape
            raise SurveyFileError(
                f"{where} HDU WAVELENGTH: is not HETDEX's grid {SPEC_WAVE0:g} + "
                f"{SPEC_DWAVE:g}*arange({N_SPEC}) A (starts {first}, shape {wave.shape}); "
                "resampling is not done at ingest"
            )
        bunit = str(sp["SPEC"].header.get("BUNIT", "")).strip()
        if bunit:
            try:
                self._scale = float(u.Unit(bunit).to(u.Unit(STORE_FLUX_UNIT)))
            except (ValueError, u.UnitConversionError) as exc:
                raise SurveyFileError(
                    f"{where} HDU SPEC: BUNIT {bunit!r} is not a flux density that converts "
                    f"to {STORE_FLUX_UNIT} ({exc})"
                ) from exc
        else:
            self.notes.append(f"{where} HDU SPEC has no BUNIT: spectra taken as {STORE_FLUX_UNIT}")
        cat_ids = self.columns.get("detectid")
        if cat_ids is None:
            return  # check_structure names the missing column
        problems = id_problems(spec_ids, f"{where} HDU INFO column 'detectid'")
        if problems:
            self.join_problems += problems
            return
        if id_problems(cat_ids, "catalogue"):
            return  # check_catalog names the catalogue's own id problems
        self._index, problems = align(
            cat_ids, spec_ids, ref_where=self.catalog_where, other_where=f"{where} HDU INFO"
        )
        self.join_problems += problems
        n = len(cat_ids)
        for name in ARRAY_SHAPES:
            self.arrays[name] = ((n, *ARRAY_SHAPES[name]), np.dtype(np.float32))

    # --- pixels -----------------------------------------------------------------------------

    def location(self, name: str) -> str:
        hdu = {"spec1d": "SPEC", "spec1d_err": "SPEC_ERR"}.get(name)
        if hdu is None:
            return f"{self.path.name} (PDR1 has no {name}: no cutouts)"
        return f"{self.paths['spectra'].name} HDU {hdu}"

    def read(self, name: str, start: int, stop: int) -> np.ndarray:
        from mlcore.join import read_rows

        k = stop - start
        if name not in ("spec1d", "spec1d_err"):
            return np.zeros((k, *ARRAY_SHAPES[name]), np.float32)  # no picture in PDR1
        section = self._spec["SPEC" if name == "spec1d" else "SPEC_ERR"].section
        try:
            rows = read_rows(
                lambda a, b: np.asarray(section[a:b]),
                lambda idx: np.stack([np.asarray(section[int(i)]) for i in idx]),
                self._index,
                start,
                stop,
            )
        except Exception as exc:
            raise SurveyFileError(
                f"{self.location(name)} rows {start}-{stop - 1} cannot be read: {exc}"
            ) from exc
        rows = np.asarray(rows, np.float32)
        rows = sentinels_to_missing(rows)  # -999 in a spectrum is missing, not flux
        return rows * np.float32(self._scale) if self._scale != 1.0 else rows

    def close(self) -> None:
        for h in (getattr(self, "_cat", None), getattr(self, "_spec", None)):
            if h is not None:
                h.close()


def open_pdr1(catalogue: str | Path, spectra: str | Path) -> Pdr1Reader:
    return Pdr1Reader(Path(catalogue), Path(spectra))


def _rows(idx: np.ndarray, ids) -> str:
    shown = ", ".join(
        f"{int(i)}" + (f" (detectid {int(ids[i])})" if ids is not None else "")
        for i in idx[:MAX_ROWS_LISTED]
    )
    more = f" and {len(idx) - MAX_ROWS_LISTED} more" if len(idx) > MAX_ROWS_LISTED else ""
    return f"{'row' if len(idx) == 1 else 'rows'} {shown}{more}"


# ------------------------------------------------------------------------------------------
# Writing (fixtures; ``simulate_survey --format pdr1``)
# ------------------------------------------------------------------------------------------

SENTINEL_RATES = {"p_cnn": 0.02, "p_conf": 0.02, "continuum": 0.01, "apcor": 0.01}


def write_pdr1(
    survey: Survey,
    catalogue_path: str | Path,
    spectra_path: str | Path,
    *,
    seed: int = 0,
    rates: dict[str, float] | None = None,
    shuffle_spectra: bool = True,
) -> dict:
    """Write ``survey`` as PDR1's two FITS files (see the module docstring).

    ``p_cnn`` is a noisy stand-in for HETDEX's CNN score (truth-driven when the survey has
    truth), ``p_conf`` likewise; sentinels are written at ``rates``. The spectra are in
    another order than the catalogue when ``shuffle_spectra`` (as nothing promises the same
    order), so a reader that pairs by position fails. Returns the paths and the sentinel
    counts.
    """
    from astropy.io import fits

    rates = {**SENTINEL_RATES, **(rates or {})}
    rng = np.random.default_rng(seed)
    cat = {k: np.asarray(v) for k, v in survey.catalog.items()}
    n = len(survey)
    real = (
        np.asarray(survey.truth["truth_real"], bool)
        if survey.truth is not None
        else cat["sn"] > 5.5
    )
    logit = np.where(real, 1.6, -1.6) + rng.normal(0, 1.2, n)
    p_cnn = (1 / (1 + np.exp(-logit))).astype(np.float32)
    p_conf = np.clip(p_cnn + rng.normal(0, 0.1, n), 0, 1).astype(np.float32)
    cols = {
        "detectid": cat["detectid"].astype(np.int64),
        "RA": cat["ra"].astype(np.float64),
        "DEC": cat["dec"].astype(np.float64),
        "shotid": cat["shotid"].astype(np.int64),
        "field": np.asarray(cat["field"]).astype(str),
        "wave": cat["wave"].astype(np.float32),
        "flux": cat["flux"].astype(np.float32),
        "flux_err": cat["flux_err"].astype(np.float32),
        "linewidth": cat["linewidth"].astype(np.float32),
        "continuum": cat["continuum"].astype(np.float32).copy(),
        "sn": cat["sn"].astype(np.float32),
        "chi2": cat["chi2"].astype(np.float32),
        "apcor": cat["apcor"].astype(np.float32).copy(),
        "p_conf": p_conf,
        "p_cnn": p_cnn,
    }
    counts = {}
    for key, rate in rates.items():
        hit = rng.random(n) < rate
        cols[key][hit] = -999.0
        counts[key] = int(hit.sum())
    fmt = {"i8": "K", "f8": "D", "f4": "E"}
    fits_cols = []
    for name, arr in cols.items():
        if arr.dtype.kind == "U":
            width = max(1, int(arr.dtype.itemsize // 4))
            fits_cols.append(fits.Column(name=name, format=f"{width}A", array=arr.astype("S")))
        else:
            fits_cols.append(fits.Column(name=name, format=fmt[arr.dtype.str[1:]], array=arr))
    catalogue_path, spectra_path = Path(catalogue_path), Path(spectra_path)
    for p in (catalogue_path, spectra_path):
        p.parent.mkdir(parents=True, exist_ok=True)
    table = fits.BinTableHDU.from_columns(fits_cols, name="HPSC2")
    fits.HDUList([fits.PrimaryHDU(), table]).writeto(catalogue_path, overwrite=True)

    order = rng.permutation(n) if shuffle_spectra else np.arange(n)
    info = fits.BinTableHDU.from_columns(
        [
            fits.Column(name="detectid", format="K", array=cols["detectid"][order]),
            fits.Column(name="RA", format="D", array=cols["RA"][order]),
            fits.Column(name="DEC", format="D", array=cols["DEC"][order]),
        ],
        name="INFO",
    )
    spec = fits.ImageHDU(np.asarray(survey.spec1d, np.float32)[order], name="SPEC")
    spec.header["BUNIT"] = "1e-17 erg/(s cm2 Angstrom)"
    err = fits.ImageHDU(np.asarray(survey.spec1d_err, np.float32)[order], name="SPEC_ERR")
    err.header["BUNIT"] = "1e-17 erg/(s cm2 Angstrom)"
    wave = fits.ImageHDU(_grid().astype(np.float32), name="WAVELENGTH")
    wave.header["BUNIT"] = "Angstrom"
    fits.HDUList([fits.PrimaryHDU(), info, spec, err, wave]).writeto(spectra_path, overwrite=True)
    return {"catalogue": catalogue_path, "spectra": spectra_path, "sentinels": counts}


__all__ = [
    "EXTERNAL_SCORES",
    "PDR1_SOURCE",
    "Pdr1Reader",
    "open_pdr1",
    "write_pdr1",
]
