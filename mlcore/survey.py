"""The in-memory shape of a survey: one place that names every column, dtype and array.

The simulator produces a :class:`Survey`; :mod:`mlcore.survey_io` writes and reads it as
FITS or HETDEX-style HDF5; ingest validates files against the constants here. Shapes follow
HETDEX's ``detect_ml_*.h5`` machine-learning product (see ``shared/SIMULATOR.md``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

# --- instrument / file geometry -------------------------------------------------------
N_SPEC = 1036  # rectified 1D spectrum length
SPEC_WAVE0 = 3470.0  # A, first pixel of the rectified grid
SPEC_DWAVE = 2.0  # A per pixel
SPEC_WAVE = (SPEC_WAVE0 + SPEC_DWAVE * np.arange(N_SPEC)).astype(np.float32)
WAVE_MIN, WAVE_MAX = 3470.0, 5540.0  # instrument range; ingest rejects lines outside it
USABLE_WAVE_MIN, USABLE_WAVE_MAX = 3510.0, 5496.0  # the catalogue cuts the edges
CUTOUT_ROWS = 9  # spatial direction on the CCD (one fiber trace)
CUTOUT_COLS = 100  # wavelength direction, 2 A per pixel, line near column 50
N_FIBERS = 4  # highest-weight fibers in im_array
LINE_COL = 50  # nominal column of the line in a cutout

# --- S/N regimes (the paper reports metrics per regime) ---------------------------------
SN_THRESHOLD = 4.8
SN_LOW_MAX = 5.5  # low regime: 4.8 <= sn <= 5.5; high regime: sn > 5.5
REGIME_NAMES = ("low", "high")  # index 0, 1 of regime_index

FIELDS = ("cosmos", "goods-n", "dex-spring", "dex-fall")

# Catalogue columns (HETDEX ``Detections`` names) and the dtype each is stored with.
CATALOG_COLUMNS: dict[str, np.dtype] = {
    "detectid": np.dtype("int64"),
    "shotid": np.dtype("int64"),
    "ra": np.dtype("float64"),
    "dec": np.dtype("float64"),
    "wave": np.dtype("float32"),
    "flux": np.dtype("float32"),
    "flux_err": np.dtype("float32"),
    "linewidth": np.dtype("float32"),
    "continuum": np.dtype("float32"),
    "sn": np.dtype("float32"),
    "chi2": np.dtype("float32"),
    "apcor": np.dtype("float32"),
    "field": np.dtype("U12"),
}
# Columns a file must have; ``apcor`` is optional (filled with 1.0 when absent).
REQUIRED_CATALOG_COLUMNS = tuple(c for c in CATALOG_COLUMNS if c != "apcor")

# Ground truth, only in simulated files. Kept apart from anything people produce.
TRUTH_COLUMNS: dict[str, np.dtype] = {
    "truth_real": np.dtype("bool"),
    "truth_type": np.dtype("U12"),
    "truth_flux": np.dtype("float32"),  # true line flux, 0 for contaminants
    "truth_z": np.dtype("float32"),  # true redshift of the line's emitter, nan if none
}
REAL_TYPES = ("lae", "oii")
CONTAMINANT_TYPES = ("noise", "sky", "cosmic", "hotcol", "meteor", "badfiber", "star")
TRUTH_TYPES = REAL_TYPES + CONTAMINANT_TYPES

# Image arrays: name -> shape after the leading N axis.
ARRAY_SHAPES: dict[str, tuple[int, ...]] = {
    "im_sum": (CUTOUT_ROWS, CUTOUT_COLS),
    "im_array": (N_FIBERS, CUTOUT_ROWS, CUTOUT_COLS),
    "im_wave": (CUTOUT_COLS,),
    "spec1d": (N_SPEC,),
    "spec1d_err": (N_SPEC,),
}

# External (DESI-like) confirmation catalogue columns.
EXTERNAL_COLUMNS: dict[str, np.dtype] = {
    "ra": np.dtype("float64"),
    "dec": np.dtype("float64"),
    "z": np.dtype("float32"),
    "quality": np.dtype("int16"),  # 0 = secure, 1 = probable
}

LYA_REST = 1215.67
OII_REST = 3727.09


def regime_of(sn: np.ndarray) -> np.ndarray:
    """'low' for 4.8 <= sn <= 5.5, 'high' above, 'below' under the threshold."""
    sn = np.asarray(sn)
    out = np.array(np.asarray(REGIME_NAMES, dtype="U5")[regime_index(sn)])
    out[sn < SN_THRESHOLD] = "below"
    return out


def regime_index(sn: np.ndarray) -> np.ndarray:
    """0 for the low regime (sn <= 5.5, including anything below 4.8), 1 for high.

    The one definition of the S/N regimes: every array test in mlcore and every database
    filter in the platform (``labelapp.selectors.regimes``) follows it."""
    return (np.asarray(sn) > SN_LOW_MAX).astype(np.int64)


def regime_name(sn: float) -> str:
    """'low' or 'high' for one candidate (below 4.8 counts as low, as in regime_index)."""
    return REGIME_NAMES[int(regime_index(sn))]


@dataclass
class Survey:
    """A whole survey in memory: catalogue columns, image arrays, optional truth.

    ``catalog`` maps each of :data:`CATALOG_COLUMNS` to a length-N array. The image arrays
    are float32 with the shapes in :data:`ARRAY_SHAPES`. ``truth`` (simulated data only)
    maps :data:`TRUTH_COLUMNS` to length-N arrays. ``external`` is the DESI-like
    confirmation catalogue (columns :data:`EXTERNAL_COLUMNS`), or None. ``meta`` holds
    strings and numbers written into file headers (simulator version, seed, parameters).
    """

    catalog: dict[str, np.ndarray]
    im_sum: np.ndarray
    im_array: np.ndarray
    im_wave: np.ndarray
    spec1d: np.ndarray
    spec1d_err: np.ndarray
    truth: dict[str, np.ndarray] | None = None
    external: dict[str, np.ndarray] | None = None
    meta: dict[str, object] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.catalog["detectid"])

    def arrays(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in ARRAY_SHAPES}

    def subset(self, idx: np.ndarray | slice) -> Survey:
        """Rows ``idx`` of every column and array (truth too); external and meta kept."""
        return Survey(
            catalog={k: v[idx] for k, v in self.catalog.items()},
            truth=None if self.truth is None else {k: v[idx] for k, v in self.truth.items()},
            external=self.external,
            meta=dict(self.meta),
            **{k: v[idx] for k, v in self.arrays().items()},
        )


def stack_cutouts(im_sum: np.ndarray, im_array: np.ndarray) -> np.ndarray:
    """(N, 9, 100) + (N, 4, 9, 100) -> (N, 5, 9, 100): summed image first, then fibers.

    This is the layout of the cutout store and of the CNN input.
    """
    return np.concatenate([im_sum[:, None], im_array], axis=1)
