"""The line finder: one Gaussian matched-filter fit applied to every candidate alike.

Real lines, noise peaks and artefacts all go through :func:`measure` on their simulated
extracted spectrum, and :func:`passes_cuts` applies the catalogue cuts to what it measured.
So a false candidate's ``sn`` is whatever the fit found in its pixels, never a stamped value.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from mlcore.simulator.params import SimParams
from mlcore.survey import LINE_COL, SPEC_DWAVE


@dataclass
class Measurement:
    wave_off: np.ndarray  # fitted centre minus the cutout's centre wavelength (A)
    flux: np.ndarray  # 1e-17 erg/s/cm2
    flux_err: np.ndarray
    sn: np.ndarray
    linewidth: np.ndarray  # fitted Gaussian sigma (A)
    continuum: np.ndarray  # 1e-17 erg/s/cm2/A
    chi2: np.ndarray  # reduced chi2 near the line

    def subset(self, idx: np.ndarray) -> Measurement:
        return Measurement(*(getattr(self, k)[idx] for k in self.__dataclass_fields__))


@lru_cache(maxsize=8)
def _bank(half: int, centre_range: float) -> tuple[np.ndarray, ...]:
    """Template bank: unit-flux Gaussians over a grid of centre offsets x widths."""
    offs = np.arange(-centre_range, centre_range + 1e-9, 0.5)  # px
    widths = np.geomspace(1.2, 17.0, 18)  # A; brackets the 1.6-14 A catalogue cut
    x = (np.arange(-half, half + 1) * SPEC_DWAVE)[:, None, None]  # A from the cutout centre
    mu = (offs * SPEC_DWAVE)[None, :, None]
    s = widths[None, None, :]
    g = np.exp(-0.5 * ((x - mu) / s) ** 2) / (np.sqrt(2 * np.pi) * s)
    g = g.reshape(len(x), -1)
    return g, g * g, offs, widths, x[:, 0, 0]


def _parabola(ym: np.ndarray, y0: np.ndarray, yp: np.ndarray) -> np.ndarray:
    """Vertex offset (in grid steps, within +-0.5) of a parabola through 3 points."""
    den = ym - 2 * y0 + yp
    with np.errstate(divide="ignore", invalid="ignore"):
        d = np.where(den < 0, 0.5 * (ym - yp) / den, 0.0)
    return np.clip(np.nan_to_num(d), -0.5, 0.5)


def measure(data: np.ndarray, sigma: np.ndarray, p: SimParams) -> Measurement:
    """Fit Gaussian + constant continuum around column LINE_COL of each row of ``data``.

    data, sigma: (N, C) extracted spectrum and its 1-sigma error on the cutout columns.
    Picks the template with the largest S/N (for a linear fit with a free continuum that is
    also the least-chi2 template), then refines centre and width by parabolic interpolation.
    """
    half = p.fit_half_window
    G, G2, offs, widths, x = _bank(half, p.fit_centre_halfrange)
    sl = slice(LINE_COL - half, LINE_COL + half + 1)
    d = np.asarray(data[:, sl], dtype=np.float64)
    w = 1.0 / np.asarray(sigma[:, sl], dtype=np.float64) ** 2
    wd = w * d
    # weighted normal equations for (A, C), all templates at once (BLAS matmuls)
    s1 = w.sum(1)
    sd = wd.sum(1)
    sg = w @ G
    sgg = w @ G2
    sgd = wd @ G
    # sn = A / err(A) = (sgd*s1 - sg*sd) / sqrt(s1 * det), det = sgg*s1 - sg^2
    num = sgd * s1[:, None]
    num -= sg * sd[:, None]
    den = sgg * s1[:, None]
    den -= sg * sg
    np.maximum(den, 1e-300, out=den)
    den *= s1[:, None]
    np.sqrt(den, out=den)
    num /= den
    sn_all = num
    best = np.argmax(sn_all, axis=1)
    rows = np.arange(len(d))
    no, nw = len(offs), len(widths)
    io, iw = np.divmod(best, nw)
    grid = sn_all.reshape(len(d), no, nw)
    # parabolic refinement of width (in log) and centre; edges are not refined
    iwm, iwp = np.clip(iw - 1, 0, nw - 1), np.clip(iw + 1, 0, nw - 1)
    iom, iop = np.clip(io - 1, 0, no - 1), np.clip(io + 1, 0, no - 1)
    dw = _parabola(grid[rows, io, iwm], grid[rows, io, iw], grid[rows, io, iwp])
    dw = np.where((iw > 0) & (iw < nw - 1), dw, 0.0)
    do = _parabola(grid[rows, iom, iw], grid[rows, io, iw], grid[rows, iop, iw])
    do = np.where((io > 0) & (io < no - 1), do, 0.0)
    lw = widths[iw] * (widths[1] / widths[0]) ** dw
    off = (offs[io] + 0.5 * do) * SPEC_DWAVE

    b_sg, b_sgg, b_sgd = sg[rows, best], sgg[rows, best], sgd[rows, best]
    det = b_sgg * s1 - b_sg**2
    A = (b_sgd * s1 - b_sg * sd) / det
    C = (b_sgg * sd - b_sg * b_sgd) / det
    gb = G[:, best].T  # (N, 2*half+1)
    resid2 = (d - A[:, None] * gb - C[:, None]) ** 2 * w
    win = np.maximum(p.chi2_half_width_sigmas * widths[iw], p.chi2_min_half_width)
    mask = np.abs(x[None, :] - (offs[io] * SPEC_DWAVE)[:, None]) <= win[:, None]
    nm = mask.sum(1)
    chi2 = (resid2 * mask).sum(1) / np.maximum(nm - 3, 1)
    return Measurement(
        wave_off=off,
        flux=A,
        flux_err=np.sqrt(s1 / det),
        sn=sn_all[rows, best],
        linewidth=lw,
        continuum=C,
        chi2=chi2,
    )


def passes_cuts(m: Measurement, p: SimParams) -> np.ndarray:
    """The catalogue cuts [S]: sn, chi2, linewidth, and the stricter low-S/N cuts."""
    ok = (m.sn >= p.sn_min) & (m.chi2 <= p.chi2_max)
    ok &= (m.linewidth >= p.linewidth_min) & (m.linewidth <= p.linewidth_max)
    low = m.sn <= p.low_sn_max
    ok &= ~low | ((m.chi2 <= p.low_chi2_max) & (m.linewidth <= p.low_linewidth_max))
    return ok & np.isfinite(m.sn)
