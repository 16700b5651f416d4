"""2D cutouts and the full 1D spectrum of the kept candidates, consistent with the 1D data
the line finder measured.

Pixel noise is iid Gaussian per fiber pixel in the default instrument (a shift scenario can
correlate it and give it heavy tails: ``instrument.shape_pixel_noise``). The 1D spectrum is
the optimal extraction
``e = sum_r tau_r * im_sum_r / sum(tau^2)`` of ``im_sum = sum_k w_k P_k / sum(w^2)``, so
a fresh pixel-noise draw is conditioned on the 1D noise the detection step already saw
(Gaussian conditioning on a linear functional: exact and one pass).
"""

from __future__ import annotations

import numpy as np

from mlcore.simulator.instrument import correlate_noise, shape_pixel_noise
from mlcore.simulator.params import SimParams
from mlcore.simulator.sources import Trials, sigma_1d
from mlcore.survey import N_SPEC, SPEC_DWAVE, SPEC_WAVE, SPEC_WAVE0


def render(
    tr: Trials, rng: np.random.Generator, tau: np.ndarray, p: SimParams
) -> dict[str, np.ndarray]:
    """im_sum (N,9,100), im_array (N,4,9,100), im_wave (N,100), spec1d, spec1d_err (N,1036)."""
    n = len(tr.wave0)
    wave = tr.cut_wave
    top = tr.fp.top.astype(np.float32)  # (N, 4)
    w2 = tr.fp.w2
    w2_rest = np.maximum(w2 - (tr.fp.top**2).sum(1), 0.0)
    t2 = float(tau @ tau)
    tau32 = tau.astype(np.float32)

    # pixel noise: sigma_pix such that the extraction has sigma_1d
    spix = (tr.sigma * np.sqrt(t2 * w2)[:, None]).astype(np.float32)  # (N, 100)
    fibers = shape_pixel_noise(rng.standard_normal((n, 4, 9, 100), dtype=np.float32), rng, p)
    fibers *= spix[:, None, None, :]
    rest = shape_pixel_noise(rng.standard_normal((n, 9, 100), dtype=np.float32), rng, p)
    rest *= (spix * np.sqrt(w2_rest)[:, None].astype(np.float32))[:, None, :]

    single = tr.single_fiber >= 0
    target = tr.eps - np.where(single, tr.single_frac, 0.0)[:, None] * tr.excess
    e_now = np.einsum("nk,nkrc->nrc", top, fibers) + rest
    e_now = np.einsum("r,nrc->nc", tau32, e_now) / (t2 * w2)[:, None]
    delta = (target - e_now).astype(np.float32)  # (N, 100)
    fibers += top[:, :, None, None] * tau32[None, None, :, None] * delta[:, None, None, :]
    rest += (w2_rest[:, None, None] * tau[None, :, None]).astype(np.float32) * delta[:, None, :]
    if single.any():
        # a single fiber's excursion carries (part of) the noise peak
        idx = np.nonzero(single)[0]
        j = tr.single_fiber[idx]
        add = tr.single_frac[idx, None] * tr.excess[idx] * (w2[idx] / tr.fp.top[idx, j])[:, None]
        fibers[idx, j] += tau32[None, :, None] * add[:, None, :].astype(np.float32)

    for c in tr.comps:  # deterministic signal
        spec = c.spectrum(wave).astype(np.float32)  # (N, 100)
        sr = c.rows.astype(np.float32)[:, :, None] * spec[:, None, :]  # (N, 9, 100)
        fibers += c.fib.astype(np.float32)[:, :, None, None] * sr[:, None]
        rest += c.rest.astype(np.float32)[:, None, None] * sr

    im_sum = (np.einsum("nk,nkrc->nrc", top, fibers) + rest) / w2[:, None, None].astype(np.float32)
    del rest

    # ELiXer-style masking of cosmic-ray pixels in the affected fiber
    box = next((c for c in tr.comps if c.kind == "box"), None)
    for i in np.nonzero(tr.mask_fiber >= 0)[0]:
        c = box
        cols = (wave[i] >= c.par["lo"][i]) & (wave[i] <= c.par["hi"][i])
        rows = c.rows[i] > 0
        fibers[i, tr.mask_fiber[i]][np.ix_(rows, cols)] = 0.0

    # full 1D spectrum: fresh noise off the cutout, the measured data on it
    full = np.broadcast_to(SPEC_WAVE.astype(np.float64), (n, N_SPEC))
    err = sigma_1d(full, tr.noise_scale, p)
    # localised signals live inside the cutout window, which is overwritten below
    white = correlate_noise(rng.standard_normal((n, N_SPEC)), p.noise_corr_wave_px, axis=-1)
    spec = tr.signal(full, tau, nonlocal_only=True) + err * white
    data = tr.signal(wave, tau) + tr.eps
    k = np.round((wave - SPEC_WAVE0) / SPEC_DWAVE).astype(np.int64)
    inside = (k >= 0) & (k < N_SPEC)
    r = np.broadcast_to(np.arange(n)[:, None], k.shape)
    spec[r[inside], k[inside]] = data[inside]
    return {
        "im_sum": im_sum,
        "im_array": fibers,
        "im_wave": wave.astype(np.float32),
        "spec1d": spec.astype(np.float32),
        "spec1d_err": err.astype(np.float32),
    }
