"""Small, fast, contract-valid surveys for tests (no simulator physics: just right shapes)."""

from __future__ import annotations

import numpy as np

from mlcore.survey import (
    CUTOUT_COLS,
    CUTOUT_ROWS,
    LINE_COL,
    N_FIBERS,
    N_SPEC,
    SPEC_WAVE,
    Survey,
)


def make_survey(
    n: int = 40,
    seed: int = 0,
    *,
    first_id: int = 1_000_000,
    truth: bool = True,
    field: str = "cosmos",
) -> Survey:
    rng = np.random.default_rng(seed)
    wave = rng.uniform(3600, 5400, n).astype(np.float32)
    catalog = {
        "detectid": np.arange(first_id, first_id + n, dtype=np.int64),
        "shotid": (20190101001 + rng.integers(0, 5, n)).astype(np.int64),
        "ra": rng.uniform(149.9, 150.3, n),
        "dec": rng.uniform(2.0, 2.4, n),
        "wave": wave,
        "flux": rng.uniform(5, 30, n).astype(np.float32),
        "flux_err": rng.uniform(1, 3, n).astype(np.float32),
        "linewidth": rng.uniform(2, 6, n).astype(np.float32),
        "continuum": rng.normal(0, 0.1, n).astype(np.float32),
        "sn": rng.uniform(4.8, 8, n).astype(np.float32),
        "chi2": rng.uniform(0.8, 1.5, n).astype(np.float32),
        "apcor": np.full(n, 0.9, np.float32),
        "field": np.full(n, field),
    }
    im_sum = rng.normal(0, 1, (n, CUTOUT_ROWS, CUTOUT_COLS)).astype(np.float32)
    im_sum[:, 3:6, LINE_COL - 2 : LINE_COL + 3] += 4  # a blob at the line position
    im_array = rng.normal(0, 1, (n, N_FIBERS, CUTOUT_ROWS, CUTOUT_COLS)).astype(np.float32)
    im_wave = (wave[:, None] + 2.0 * (np.arange(CUTOUT_COLS) - LINE_COL)).astype(np.float32)
    spec1d = rng.normal(0, 1, (n, N_SPEC)).astype(np.float32)
    spec1d_err = np.full((n, N_SPEC), 1.0, np.float32)
    truth_cols = None
    if truth:
        real = rng.random(n) < 0.5
        truth_cols = {
            "truth_real": real,
            "truth_type": np.where(real, "lae", "noise"),
            "truth_flux": np.where(real, catalog["flux"], 0).astype(np.float32),
            "truth_z": np.where(real, wave / 1215.67 - 1, np.nan).astype(np.float32),
        }
    assert len(SPEC_WAVE) == N_SPEC
    return Survey(
        catalog=catalog,
        im_sum=im_sum,
        im_array=im_array,
        im_wave=im_wave,
        spec1d=spec1d,
        spec1d_err=spec1d_err,
        truth=truth_cols,
        meta={"simulator_version": "test-factory", "seed": seed, "field": field},
    )
