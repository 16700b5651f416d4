"""A tiny, fast stand-in for the survey simulator, for unit tests and smoke runs.

Not physics: just enough structure that a CNN has something to learn in a few seconds.
Real lines are a Gaussian at column ~50 on the fiber trace, PSF-weighted across fibers;
fakes are pure noise, a sky-like line through every fiber, or a one-fiber cosmic hit.
"""

from __future__ import annotations

import numpy as np

from mlcore.survey import CUTOUT_COLS, CUTOUT_ROWS, LINE_COL, N_FIBERS


def toy_candidates(n: int, seed: int = 0, real_fraction: float = 0.5) -> dict[str, np.ndarray]:
    """-> {'cutouts' (n,5,9,100) float32, 'real' (n,) bool, 'sn' (n,), 'type' (n,) str}."""
    rng = np.random.default_rng(seed)
    real = rng.random(n) < real_fraction
    sn = np.where(rng.random(n) < 0.5, rng.uniform(4.8, 5.5, n), rng.uniform(5.5, 9.0, n))
    x = rng.normal(0.0, 1.0, (n, N_FIBERS, CUTOUT_ROWS, CUTOUT_COLS)).astype(np.float32)
    cols = np.arange(CUTOUT_COLS)
    rows = np.arange(CUTOUT_ROWS)
    trace = np.exp(-0.5 * ((rows - 4) / 1.5) ** 2)  # (9,)
    kinds = np.where(real, "lae", rng.choice(["noise", "sky", "cosmic"], n))
    for i in range(n):
        amp = 0.5 * sn[i]
        if kinds[i] == "lae":
            sig = rng.uniform(1.5, 3.0)
            prof = np.exp(-0.5 * ((cols - LINE_COL - rng.integers(-1, 2)) / sig) ** 2)
            w = np.sort(rng.dirichlet(np.ones(N_FIBERS)))[::-1]  # PSF weights, brightest first
            x[i] += amp * w[:, None, None] * 2.0 * trace[None, :, None] * prof[None, None, :]
        elif kinds[i] == "sky":
            prof = np.exp(-0.5 * ((cols - LINE_COL) / 1.0) ** 2)
            x[i] += 0.6 * amp * prof[None, None, :]  # all fibers, all rows alike
        elif kinds[i] == "cosmic":
            f, r, c = rng.integers(N_FIBERS), rng.integers(2, 7), LINE_COL + rng.integers(-1, 2)
            x[i, f, r, c] += 6.0 * amp
    weights = np.array([0.4, 0.3, 0.2, 0.1], np.float32)
    im_sum = np.tensordot(x, weights, axes=([1], [0]))  # (n, 9, 100)
    cutouts = np.concatenate([im_sum[:, None], x], axis=1).astype(np.float32)
    return {"cutouts": cutouts, "real": real, "sn": sn.astype(np.float32), "type": kinds}
