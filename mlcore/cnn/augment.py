"""Instrument-variation augmentations on *raw* (un-normalised) training cutouts (issue 25).

Each mimics one way real data can differ from the training field and is applied to a
(B, 5, 9, 100) batch before the per-candidate normalisation (channel 0 the summed image,
1-4 the fibres; 9 rows across the trace, 100 wavelength columns of 2 A). Amplitudes are in
units of each candidate's own robust pixel noise (1.4826 MAD, the normalisation's), so they
mean the same at any flux scale. Every one is off at 0 (the batch comes back unchanged),
draws only from the given ``torch.Generator`` (deterministic for a seed), and leaves the
label valid: nothing is added on the candidate's own line except the noise and blur that
any real line could meet. Which of them help is measured by ``bench/bench_augment.py``
(docs/shift.md, "Robustness training"); ``TrainConfig`` switches them (PSF blur and
fibre throughput on by default, the rest off).

The wavelength shift and the spatial flip act on the normalised batch
(:func:`mlcore.cnn.data.augment`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from mlcore.survey import LINE_COL

MAD_TO_SIGMA = 1.4826
# sky residuals and cosmic hits are injected at least this far (px) from the line column,
# so they never become the candidate itself (which would change its label)
AWAY_PX = 6


@dataclass(frozen=True)
class RawAugment:
    """Strengths of the raw-cutout augmentations; 0 switches one off."""

    noise_max: float = 0.0  # noise level x U(1, noise_max): adds white noise
    corr_noise: float = 0.0  # adds correlated noise, amplitude U(0, corr_noise) x sigma
    psf: float = 0.0  # row blur sigma U(0, psf) px and fibre mixing U(0, psf / 5)
    throughput: float = 0.0  # per-fibre gain 1 + N(0, throughput)
    sky: float = 0.0  # probability of a sky residual at a random column away from the line
    calib: float = 0.0  # per-fibre wavelength offset N(0, calib) px (linear interpolation)
    cosmic: float = 0.0  # mean number of cosmic-ray hits per cutout (Poisson)

    def active(self) -> bool:
        return any(getattr(self, f.name) > 0 for f in fields(self))

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise ValueError(f"RawAugment.{f.name} must be a finite number >= 0, not {v!r}")
        if self.noise_max and self.noise_max < 1:
            raise ValueError("RawAugment.noise_max must be 0 (off) or >= 1")
        if self.sky > 1:
            raise ValueError("RawAugment.sky is a probability: at most 1")


def _u(gen: torch.Generator, shape, lo: float, hi: float, dev) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand(shape, generator=gen, device=dev)


def _n(gen: torch.Generator, shape, dev) -> torch.Tensor:
    return torch.randn(shape, generator=gen, device=dev)


def noise_sigma(x: torch.Tensor) -> torch.Tensor:
    """(B, 5, 9, W) -> (B, 5, 1, 1): robust pixel noise of the summed image (channel 0) and
    of the four fibres pooled (channels 1-4), as the normalisation measures it."""
    B = x.shape[0]

    def rs(a: torch.Tensor) -> torch.Tensor:
        med = a.median(dim=1, keepdim=True).values
        s = MAD_TO_SIGMA * (a - med).abs().median(dim=1).values
        return torch.where(torch.isfinite(s) & (s > 0), s, torch.ones_like(s))

    s0, sf = rs(x[:, 0].reshape(B, -1)), rs(x[:, 1:].reshape(B, -1))
    return torch.cat([s0[:, None], sf[:, None].expand(B, x.shape[1] - 1)], 1)[:, :, None, None]


def _gauss_matrix(n: int, sig: torch.Tensor) -> torch.Tensor:
    """(B,) kernel sigmas (px, 0 = identity) -> (B, n, n) row-normalised Gaussian
    smoothing matrices (edges renormalised, so a constant stays constant)."""
    i = torch.arange(n, device=sig.device, dtype=torch.float32)
    d = i[None, :, None] - i[None, None, :]
    s = sig.clamp_min(1e-3)[:, None, None]
    k = torch.exp(-0.5 * (d / s) ** 2)
    return k / k.sum(2, keepdim=True)


def _correlated(white: torch.Tensor, sw: torch.Tensor, sr: torch.Tensor) -> torch.Tensor:
    """(B, C, R, W) white noise -> smoothed along wavelength (sw px) and rows (sr px) per
    sample, rescaled to unit variance (the kernels' sum of squares)."""
    R, W = white.shape[-2:]
    Kw, Kr = _gauss_matrix(W, sw), _gauss_matrix(R, sr)
    y = torch.einsum("bvw,bcrw->bcrv", Kw, white)
    y = torch.einsum("bsr,bcrv->bcsv", Kr, y)
    norm = Kw[:, W // 2].pow(2).sum(1).sqrt() * Kr[:, R // 2].pow(2).sum(1).sqrt()
    return y / norm[:, None, None, None]


def _shift_cols(x: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """Shift each (b, c) row-image along wavelength by d (B, C) px (sub-pixel, linear
    interpolation, edges replicated): a feature at column j moves to j + d."""
    W = x.shape[-1]
    pos = torch.arange(W, device=x.device, dtype=torch.float32)[None, None, :] - d[..., None]
    pos = pos.clamp(0, W - 1)
    lo = pos.floor().long().clamp(0, W - 2)
    f = (pos - lo.float()).unsqueeze(2)  # (B, C, 1, W)
    lo = lo.unsqueeze(2).expand(-1, -1, x.shape[2], -1)
    return torch.gather(x, 3, lo) * (1 - f) + torch.gather(x, 3, lo + 1) * f


def augment_raw(x: torch.Tensor, cfg: RawAugment, generator: torch.Generator) -> torch.Tensor:
    """(B, 5, 9, W) raw float32 -> augmented copy (``x`` itself when every strength is 0)."""
    if not cfg.active():
        return x
    gen, dev = generator, x.device
    B, C, R, W = x.shape
    x = torch.nan_to_num(x.float(), nan=0.0)  # masked pixels: the median level
    sig = noise_sigma(x)  # measured once, before anything below changes it
    if cfg.throughput > 0:  # fibre-to-fibre throughput: each fibre's gain
        g = (1 + cfg.throughput * _n(gen, (B, C - 1), dev)).clamp_min(0.3)
        x = torch.cat([x[:, :1], x[:, 1:] * g[:, :, None, None]], 1)
    if cfg.psf > 0:  # seeing / trace width: blur across rows, share light between fibres
        Kr = _gauss_matrix(R, _u(gen, (B,), 0.0, cfg.psf, dev))
        x = torch.einsum("bsr,bcrw->bcsw", Kr, x)
        m = _u(gen, (B, 1, 1, 1), 0.0, cfg.psf / 5, dev).clamp_max(0.5)
        fib = x[:, 1:]
        x = torch.cat([x[:, :1], (1 - m) * fib + m * fib.mean(1, keepdim=True)], 1)
    if cfg.calib > 0:  # wavelength calibration: each fibre off by a fraction of a pixel
        d = cfg.calib * _n(gen, (B, C - 1), dev)
        d = torch.cat([d.mean(1, keepdim=True), d], 1)  # the sum sees the mean offset
        x = _shift_cols(x, d)
    if cfg.sky > 0:  # a sky residual at a random column away from the line
        on = torch.rand(B, generator=gen, device=dev) < cfg.sky
        side = torch.where(torch.rand(B, generator=gen, device=dev) < 0.5, -1.0, 1.0)
        # the P-Cygni dip sits 2.2 sigma (<= 3.1 px) blueward: keep it away from the line too
        dist = _u(gen, (B,), AWAY_PX + 4, LINE_COL - 4, dev)
        mu = (LINE_COL + side * dist)[:, None]
        s = _u(gen, (B, 1), 1.0, 1.4, dev)  # ~ the instrumental sigma (2.4 A / 2 A px)
        col = torch.arange(W, device=dev, dtype=torch.float32)[None, :]
        pcyg = torch.rand(B, 1, generator=gen, device=dev) < 0.3
        dip = _u(gen, (B, 1), 0.4, 1.0, dev) * pcyg
        prof = torch.exp(-0.5 * ((col - mu) / s) ** 2) - dip * torch.exp(
            -0.5 * ((col - mu + 2.2 * s) / s) ** 2
        )  # (B, W), P-Cygni dip blueward as the simulator's residuals
        amp = _u(gen, (B, 1), 1.0, 6.0, dev) * on[:, None]
        fib = 1 + 0.15 * _n(gen, (B, C), dev)  # every fibre sees it, with some scatter
        fib[:, 0] = 1.0
        x = x + ((amp * fib)[:, :, None] * prof[:, None, :])[:, :, None, :] * sig
    if cfg.cosmic > 0:  # cosmic-ray hits: a few sharp pixels in one fibre
        n_hits = torch.poisson(torch.full((B,), float(cfg.cosmic), device=dev), generator=gen)
        for k in range(int(n_hits.max().item()) if B else 0):
            on = (n_hits > k).float()
            fibre = torch.randint(1, C, (B,), generator=gen, device=dev)
            row = torch.randint(0, R, (B,), generator=gen, device=dev)
            red = torch.rand(B, generator=gen, device=dev) < 0.5
            dist = torch.randint(AWAY_PX, LINE_COL - 6, (B,), generator=gen, device=dev)
            length = torch.randint(1, 4, (B,), generator=gen, device=dev)
            # the hit's nearest pixel is dist >= AWAY_PX from the line column
            start = torch.where(red, LINE_COL + dist, LINE_COL - dist - length + 1)
            amp = _u(gen, (B,), 5.0, 50.0, dev) * sig[:, 1, 0, 0] * on
            col = torch.arange(W, device=dev)[None, :]
            hit = ((col >= start[:, None]) & (col < (start + length)[:, None])).float()
            add = torch.zeros_like(x)
            b = torch.arange(B, device=dev)
            add[b, fibre, row] = amp[:, None] * hit
            add[b, 0, row] = 0.25 * amp[:, None] * hit  # the summed image sees a share
            x = x + add
    if cfg.corr_noise > 0:  # correlated noise (sky subtraction, resampling)
        sw = _u(gen, (B,), 0.5, 2.0, dev)
        sr = _u(gen, (B,), 0.0, 1.5, dev)
        a = _u(gen, (B, 1, 1, 1), 0.0, cfg.corr_noise, dev)
        x = x + a * sig * _correlated(_n(gen, (B, C, R, W), dev), sw, sr)
    if cfg.noise_max > 0:  # a noisier night: white noise on top
        f = _u(gen, (B, 1, 1, 1), 1.0, cfg.noise_max, dev)
        x = x + sig * torch.sqrt(f * f - 1) * _n(gen, (B, C, R, W), dev)
    return x


__all__ = ["RawAugment", "augment_raw", "noise_sigma"]
