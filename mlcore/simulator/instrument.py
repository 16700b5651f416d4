"""Instrument model: resolution, noise, fiber trace and the fiber footprint of a source."""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mlcore.simulator.params import SimParams
from mlcore.survey import CUTOUT_ROWS, N_FIBERS

DITHERS = np.array([[0.0, 0.0], [1.27, -0.73], [1.27, 0.73]])  # arcsec [S]


def sigma_inst(wave: np.ndarray, p: SimParams) -> np.ndarray:
    """Instrumental Gaussian sigma in A; constant R means it scales with wavelength."""
    return p.sigma_inst_4500 * np.asarray(wave) / 4500.0


def noise_profile(wave: np.ndarray, p: SimParams) -> np.ndarray:
    """Relative 1D noise vs wavelength: blue end ~1.3x noisier, slight rise at the red end."""
    wave = np.asarray(wave, dtype=np.float64)
    k = (wave - _TABLE_W0) / 2.0
    ki = np.rint(k).astype(np.int64)
    if np.all(np.abs(k - ki) < 1e-6) and ki.min() >= 0 and ki.max() < _TABLE_N:
        return _profile_table(p.blue_noise_boost, p.blue_edge)[ki]  # on-grid: table lookup
    return _noise_profile(wave, p.blue_noise_boost, p.blue_edge)


_TABLE_W0, _TABLE_N = 3070.0, 1500  # 2 A grid covering every cutout column


@lru_cache(maxsize=4)
def _profile_table(boost: float, edge: float) -> np.ndarray:
    return _noise_profile(_TABLE_W0 + 2.0 * np.arange(_TABLE_N), boost, edge)


def _noise_profile(wave: np.ndarray, boost: float, edge: float) -> np.ndarray:
    blue = 1.0 + (boost - 1.0) / (1.0 + np.exp((wave - edge) / 60.0))
    red = 1.0 + 0.08 / (1.0 + np.exp((5400.0 - wave) / 50.0))
    return blue * red


def trace_profile(p: SimParams) -> np.ndarray:
    """Spatial profile of one fiber across the 9 cutout rows, summing to 1."""
    r = np.arange(CUTOUT_ROWS) - (CUTOUT_ROWS - 1) / 2
    t = np.exp(-0.5 * (r / p.trace_sigma_px) ** 2)
    return t / t.sum()


def _moffat_alpha(fwhm: np.ndarray, beta: float) -> np.ndarray:
    return fwhm / (2.0 * np.sqrt(2.0 ** (1.0 / beta) - 1.0))


def _lattice(pitch: float, half: int = 2) -> np.ndarray:
    """Hexagonal fiber lattice around the origin (one dither), arcsec, (P, 2)."""
    i, j = np.meshgrid(np.arange(-half, half + 1), np.arange(-half, half + 1), indexing="ij")
    x = pitch * (i + 0.5 * j)
    y = pitch * (np.sqrt(3) / 2) * j
    return np.stack([x.ravel(), y.ravel()], axis=1)


@dataclass
class Footprint:
    """How a source at a candidate position falls on the fibers of 3 dithers.

    The first 4 fibers are the ``im_array`` fibers, by decreasing point-source (PSF) weight;
    the others follow in no particular order. ``w`` are PSF flux fractions (the
    optimal-extraction weights).
    """

    w: np.ndarray  # (N, F) PSF weights, sorted
    dith: np.ndarray  # (N, F) dither index of each sorted fiber
    r: np.ndarray  # (N, F) distance fiber centre - source, arcsec
    w2: np.ndarray  # (N,) sum of squared weights: normalises the extraction
    apcor: np.ndarray  # (N,) PSF fraction covered by fibers

    @property
    def top(self) -> np.ndarray:
        return self.w[:, :N_FIBERS]

    def rest_by_dither(self, amp: np.ndarray) -> np.ndarray:
        """sum over non-top fibers of w_k * amp_k, split per dither: (N, 3)."""
        rest = self.w[:, N_FIBERS:] * amp[:, N_FIBERS:]
        onehot = self.dith[:, N_FIBERS:, None] == np.arange(3)
        return np.einsum("nk,nkd->nd", rest, onehot)

    def subset(self, idx: np.ndarray) -> Footprint:
        return Footprint(self.w[idx], self.dith[idx], self.r[idx], self.w2[idx], self.apcor[idx])


def moffat_weights(r: np.ndarray, fwhm: np.ndarray, p: SimParams) -> np.ndarray:
    """Flux fraction falling in a fiber at distance r (centre-sampled Moffat x fiber area)."""
    a = _moffat_alpha(np.asarray(fwhm), p.moffat_beta)[..., None]
    b = p.moffat_beta
    peak = (b - 1.0) / (np.pi * a**2)
    return peak * (1.0 + (r / a) ** 2) ** (-b) * (np.pi * p.fiber_radius**2)


def footprint(n: int, seeing: np.ndarray, rng: np.random.Generator, p: SimParams) -> Footprint:
    """Random source positions relative to the fiber lattice, with PSF weights."""
    lat = _lattice(p.fiber_pitch)
    fib = (DITHERS[:, None, :] + lat[None, :, :]).reshape(-1, 2)  # (3P, 2)
    dith_of = np.repeat(np.arange(3), len(lat))
    u = rng.random((n, 2))  # source uniformly inside one lattice cell
    pos = np.stack(
        [p.fiber_pitch * (u[:, 0] + 0.5 * u[:, 1]), p.fiber_pitch * np.sqrt(3) / 2 * u[:, 1]],
        axis=1,
    )
    xy = fib[None, :, :] - pos[:, None, :]
    r = np.hypot(xy[..., 0], xy[..., 1])
    w = moffat_weights(r, seeing, p)
    # only the 4 highest-weight fibers need an order; the others enter through sums
    order = np.argpartition(-w, N_FIBERS, axis=1)
    top4 = np.argsort(-np.take_along_axis(w, order[:, :N_FIBERS], axis=1), axis=1)
    order[:, :N_FIBERS] = np.take_along_axis(order[:, :N_FIBERS], top4, axis=1)
    w = np.take_along_axis(w, order, axis=1)
    r = np.take_along_axis(r, order, axis=1)
    w2 = (w**2).sum(axis=1)
    apcor = np.clip(w.sum(axis=1), 0.0, 1.0)
    return Footprint(w, dith_of[order], r, w2, apcor)


def _corr_kernel(sigma_px: float) -> np.ndarray:
    """Gaussian smoothing kernel normalised so white unit-variance noise keeps unit variance."""
    half = max(1, int(np.ceil(3.0 * sigma_px)))
    x = np.arange(-half, half + 1)
    k = np.exp(-0.5 * (x / sigma_px) ** 2)
    return k / np.sqrt((k * k).sum())


def correlate_noise(x: np.ndarray, sigma_px: float, axis: int) -> np.ndarray:
    """Correlate white noise ``x`` along ``axis`` (per-pixel variance kept); 0 = unchanged."""
    if sigma_px <= 0:
        return x
    k = _corr_kernel(sigma_px).astype(x.dtype)
    half = len(k) // 2
    pad = [(0, 0)] * x.ndim
    pad[axis] = (half, half)
    xp = np.pad(x, pad, mode="reflect")
    out = np.zeros_like(x)
    n = x.shape[axis]
    for j, kj in enumerate(k):
        out += kj * np.take(xp, np.arange(j, j + n), axis=axis)
    return out


def shape_pixel_noise(x: np.ndarray, rng: np.random.Generator, p: SimParams) -> np.ndarray:
    """White unit pixel noise (..., rows, cols) -> the instrument's: correlated along
    wavelength and across rows, and heavy-tailed (a Gaussian scale mixture with the
    variance of a Student t of ``noise_tail_df`` dof, rescaled to unit variance).
    With the default parameters ``x`` is returned untouched and no random numbers are
    drawn, so the default simulation is unchanged."""
    x = correlate_noise(x, p.noise_corr_wave_px, axis=-1)
    x = correlate_noise(x, p.noise_corr_rows_px, axis=-2)
    if p.noise_tail_df > 2:
        df = p.noise_tail_df
        scale = np.sqrt((df - 2.0) / rng.chisquare(df, x.shape)).astype(x.dtype)
        x = x * scale
    return x
