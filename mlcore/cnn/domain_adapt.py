"""Adapting a trained LineCNN to shifted data *without labels from it* (issue 25).

A model trained on one instrument/sky state meets another (``mlcore.simulator.scenarios``,
``docs/shift.md``). These functions use only unlabelled cutouts of the new data (a field,
a night, a batch of shots) and are measured by ``bench/bench_unlabelled_shift.py``:

``noise_acf`` / ``whitening_filter`` / ``apply_filter`` (a noise model of the data)
    Estimate the noise autocorrelation of a set of raw cutouts from the data themselves:
    the pixels away from the line (columns outside the centre window), median removed,
    scaled by a robust sigma and clipped (heavy tails, hits), and the
    median over candidates of each lag's normalised product. ``whitening_filter`` turns a
    reference ACF (the training data's) and a target ACF into a zero-phase linear filter
    ``H = sqrt(PSD_ref / PSD_tgt)`` (gain capped) that gives the target's noise the
    reference's correlation; ``apply_filter`` applies it to raw cutouts (every channel, by
    FFT with symmetric padding), before the usual per-candidate normalisation, which then
    divides by the *whitened* noise level. A linear, invertible, zero-phase filter: it
    sharpens real lines as much as it decorrelates the noise (what was smoothed together
    is taken apart), moves nothing, and keeps the matched-filter S/N of a known profile.

``adapt_batchnorm`` (AdaBN)
    A copy of the model whose BatchNorm running means and variances are re-estimated on the
    target's normalised cutouts (a cumulative average over batches); every weight else as
    trained. The copy is a new module, so :func:`mlcore.cnn.scoring.fast_cpu_model` folds
    the new statistics (its cache is keyed on the module and its tensors' versions).

``tent_adapt`` (entropy minimisation, TENT)
    From AdaBN, the BatchNorm affine weights and biases trained to lower the mean binary
    entropy of the predictions on target batches (BatchNorm on batch statistics), then
    the running statistics re-estimated once more.

Self-training on pseudo-labels needs the training loop and the source labels: it is
``pseudo_labels`` here (confident, class-balanced picks) plus ordinary
:func:`mlcore.cnn.training.train_one` with ``init=`` (see the bench).

numpy/torch only (Django-free).
"""

from __future__ import annotations

import copy

import numpy as np
import torch
from torch import nn

from mlcore.cnn.data import MAD_TO_SIGMA, iter_batches, normalise
from mlcore.cnn.model import LineCNN

ROWS_PAD = 4  # symmetric padding (px) before the FFT filter
COLS_PAD = 12


def _check_raw(cutouts, name: str = "cutouts") -> np.ndarray:
    x = np.asarray(cutouts)
    if x.ndim != 4 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a non-empty (N, C, rows, cols) array, not {x.shape}")
    return x


def _side_blocks(x: np.ndarray, centre_half_width: int) -> list[np.ndarray]:
    """The wavelength columns left and right of the centre window: [(B, C, R, w), ...]."""
    cols = x.shape[-1]
    c = cols // 2
    lo, hi = max(0, c - centre_half_width), min(cols, c + centre_half_width)
    return [b for b in (x[..., :lo], x[..., hi:]) if b.shape[-1] > 0]


def noise_acf(
    cutouts,
    *,
    max_lag_rows: int = 4,
    max_lag_wave: int = 8,
    centre_half_width: int = 15,
    clip: float = 5.0,
    chunk: int = 1024,
) -> np.ndarray:
    """(N, C, rows, cols) raw cutouts -> (2R+1, 2W+1) noise autocorrelation, lag (0, 0) = 1.

    Entry ``[R + dr, W + dw]`` is the correlation between pixels ``dr`` rows and ``dw``
    wavelength columns apart. Estimated away from the line (outside the central
    ``2 * centre_half_width`` columns), per candidate and channel on each side block after
    removing the block's median and dividing by the block's robust sigma (values clipped at
    +-``clip``), then the median over candidates and channels of each lag's mean product
    over the lag-0 mean product: robust to the few cutouts with a source, a sky residual
    or a hit in the side blocks.
    """
    x = _check_raw(cutouts)
    R, W = int(max_lag_rows), int(max_lag_wave)
    if R < 0 or W < 0 or R >= x.shape[2]:
        raise ValueError(f"lags must be >= 0 and max_lag_rows < rows ({x.shape[2]})")
    half = np.zeros((R + 1, 2 * W + 1))  # dr >= 0 only; the rest by symmetry
    n_block = 0
    per_lag: list[list[np.ndarray]] = [[[] for _ in range(2 * W + 1)] for _ in range(R + 1)]
    for a, b in iter_batches(len(x), chunk):
        xb = np.asarray(x[a:b], dtype=np.float64)
        for blk in _side_blocks(xb, centre_half_width):
            if blk.shape[-1] <= W:
                continue
            blk = np.where(np.isfinite(blk), blk, np.nan)
            flat = blk.reshape(*blk.shape[:2], -1)
            flat = flat - np.nanmedian(flat, axis=-1, keepdims=True)
            blk = flat.reshape(blk.shape)
            mad = np.nanmedian(np.abs(flat), axis=-1) * MAD_TO_SIGMA
            mad = np.where(np.isfinite(mad) & (mad > 0), mad, 1.0)
            z = np.clip(np.nan_to_num(blk / mad[..., None, None]), -clip, clip)
            n_r, n_w = z.shape[-2:]
            n_block = n_r * n_w
            c0 = (z * z).mean(axis=(-2, -1))
            ok = c0 > 0
            for dr in range(R + 1):
                for j, dw in enumerate(range(-W, W + 1)):
                    a0, a1 = max(0, -dw), n_w - max(0, dw)
                    p = z[..., : n_r - dr, a0:a1] * z[..., dr:, a0 + dw : a1 + dw]
                    per_lag[dr][j].append((p.mean(axis=(-2, -1)) / np.where(ok, c0, 1))[ok])
    for dr in range(R + 1):
        for j in range(2 * W + 1):
            if not per_lag[dr][j]:
                raise ValueError("the cutouts have too few columns outside the centre window")
            half[dr, j] = np.median(np.concatenate(per_lag[dr][j]))
    acf = np.zeros((2 * R + 1, 2 * W + 1))
    acf[R:] = half
    acf[:R] = half[1:][::-1, ::-1]
    # removing each block's median biases every lag by about -(sum of the ACF) / (pixels
    # in a block): small for white noise, -0.03 for the correlated_noise scenario, enough
    # to push the spectrum below 0 somewhere; undone by a fixed-point iteration
    n_pix = max(n_block, 1)
    est = acf.copy()
    for _ in range(5):
        c = est.sum() / n_pix
        est = (acf + c) / (1.0 + c)
    # a Tukey taper on the longest lags so the truncated ACF has a smooth spectrum
    acf = est * np.outer(_tukey(R), _tukey(W))
    acf[R, W] = 1.0
    return acf


def _tukey(L: int) -> np.ndarray:
    """Weights for lags -L..L: 1 up to L/2, then a cosine roll-off to 0 at L+1."""
    d = np.abs(np.arange(-L, L + 1)).astype(float)
    half = L / 2.0
    w = 0.5 * (1.0 + np.cos(np.pi * (d - half) / (L + 1 - half)))
    return np.where(d <= half, 1.0, w)


def _psd(acf: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Power spectrum on an FFT grid ``shape`` of a centred (2R+1, 2W+1) ACF."""
    R, W = acf.shape[0] // 2, acf.shape[1] // 2
    grid = np.zeros(shape)
    for i, dr in enumerate(range(-R, R + 1)):
        for j, dw in enumerate(range(-W, W + 1)):
            grid[dr % shape[0], dw % shape[1]] += acf[i, j]
    return np.fft.rfft2(grid).real  # the ACF is even: a real spectrum


def whitening_filter(
    acf_target: np.ndarray,
    acf_reference: np.ndarray | None = None,
    *,
    shape: tuple[int, int] = (9 + 2 * ROWS_PAD, 100 + 2 * COLS_PAD),
    max_gain: float = 8.0,
    floor: float = 1e-3,
) -> np.ndarray:
    """The rfft2-domain gain ``sqrt(PSD_ref / PSD_tgt)`` on the padded cutout grid.

    ``acf_reference`` None: white noise (a delta). Spectra are floored at ``floor`` times
    their maximum (an estimated ACF's spectrum can dip below 0) and the gain capped at
    ``max_gain`` (noise the target has almost none of is not blown up). Returns
    ``(shape[0], shape[1] // 2 + 1)``.
    """
    acf_target = np.asarray(acf_target, dtype=np.float64)
    ref = np.zeros((1, 1)) + 1.0 if acf_reference is None else np.asarray(acf_reference, float)
    for name, a in (("acf_target", acf_target), ("acf_reference", ref)):
        if a.ndim != 2 or a.shape[0] % 2 == 0 or a.shape[1] % 2 == 0:
            raise ValueError(f"{name} must be a centred (2R+1, 2W+1) array, not {a.shape}")
        if a.shape[0] > shape[0] or a.shape[1] > shape[1]:
            raise ValueError(f"{name} {a.shape} does not fit the filter grid {shape}")
    if max_gain < 1:
        raise ValueError("max_gain must be >= 1")
    pt, pr = _psd(acf_target, shape), _psd(ref, shape)
    pt = np.maximum(pt, floor * pt.max())
    pr = np.maximum(pr, floor * pr.max())
    # both ACFs are 1 at lag 0, so the spectra have the same mean and the filter keeps the
    # per-pixel noise variance (it only redistributes it over frequencies)
    return np.minimum(np.sqrt(pr / pt), max_gain)


def apply_filter(cutouts, h: np.ndarray, *, chunk: int = 1024) -> np.ndarray:
    """Raw (N, C, rows, cols) cutouts filtered by the rfft2 gain ``h`` (every channel,
    symmetric padding of ``(h.shape[0] - rows) / 2`` rows and the matching columns) ->
    float32 array of the same shape. Non-finite pixels are filled with their row's median
    for the filter and put back as NaN after it (the normalisation then ignores them)."""
    x = _check_raw(cutouts)
    rows, cols = x.shape[-2:]
    gr, gc = h.shape[0], 2 * (h.shape[1] - 1)
    pr, pc = gr - rows, gc - cols
    if pr < 0 or pc < 0 or pr % 2 or pc % 2:
        raise ValueError(f"filter grid ({gr}, {gc}) does not pad cutouts of ({rows}, {cols})")
    pr, pc = pr // 2, pc // 2
    out = np.empty(x.shape, np.float32)
    for a, b in iter_batches(len(x), chunk):
        xb = np.asarray(x[a:b], dtype=np.float64)
        bad = ~np.isfinite(xb)
        if bad.any():
            med = np.nanmedian(np.where(bad, np.nan, xb), axis=-1, keepdims=True)
            xb = np.where(bad, np.nan_to_num(np.broadcast_to(med, xb.shape)), xb)
        xp = np.pad(xb, [(0, 0), (0, 0), (pr, pr), (pc, pc)], mode="symmetric")
        y = np.fft.irfft2(np.fft.rfft2(xp) * h, s=(gr, gc))[..., pr : pr + rows, pc : pc + cols]
        if bad.any():
            y[bad] = np.nan
        out[a:b] = y
    return out


def whiten_to_reference(
    target, reference_acf: np.ndarray | None = None, **acf_kw
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Raw target cutouts -> (filtered cutouts, the target's ACF, the filter): the target's
    noise given the reference's correlation (``reference_acf`` from :func:`noise_acf` on the
    training cutouts; None: white)."""
    acf_t = noise_acf(target, **acf_kw)
    h = whitening_filter(acf_t, reference_acf)
    return apply_filter(target, h), acf_t, h


def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _as_normalised(x) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
    if t.ndim != 4:
        raise ValueError(f"expected (N, C, rows, cols) cutouts, not {tuple(t.shape)}")
    return t


@torch.no_grad()
def _reestimate(model: LineCNN, z: torch.Tensor, spec, batch_size: int) -> None:
    bns = _bn_layers(model)
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the batches
    model.train()
    for a, b in iter_batches(len(z), batch_size):
        if b - a < 2:
            continue
        s = None if spec is None else torch.as_tensor(spec[a:b]).float()
        model.features(z[a:b].float(), s)
    for m in bns:
        m.momentum = 0.1
    model.eval()


def adapt_batchnorm(
    model: LineCNN,
    target_normalised,
    *,
    spec=None,
    batch_size: int = 256,
    seed: int = 0,
) -> LineCNN:
    """AdaBN: a copy of ``model`` with every BatchNorm's running statistics re-estimated
    on the target's *normalised* cutouts (N, 5, 9, 100) (and 1D windows when the model has
    a 1D branch), batches in a random order fixed by ``seed``. The original is untouched."""
    z = _as_normalised(target_normalised)
    if len(z) < 2 * batch_size and len(z) < 64:
        raise ValueError(f"AdaBN needs at least 64 target cutouts, got {len(z)}")
    if not _bn_layers(model):
        raise ValueError("the model has no BatchNorm layer to adapt")
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(z)))
    out = copy.deepcopy(model)
    _reestimate(
        out, z[order], None if spec is None else np.asarray(spec)[order.numpy()], batch_size
    )
    return out


def tent_adapt(
    model: LineCNN,
    target_normalised,
    *,
    spec=None,
    epochs: int = 1,
    lr: float = 1e-3,
    batch_size: int = 128,
    seed: int = 0,
) -> LineCNN:
    """TENT: from :func:`adapt_batchnorm`, only the BatchNorm affine parameters trained
    (Adam) to minimise the mean binary entropy of sigmoid(logit / temperature) on target
    batches (BatchNorm on batch statistics, head dropout off), then the running
    statistics re-estimated on the target. The original is untouched."""
    z = _as_normalised(target_normalised)
    out = adapt_batchnorm(model, z, spec=spec, seed=seed)
    for p in out.parameters():
        p.requires_grad_(False)
    params = []
    for m in _bn_layers(out):
        for p in (m.weight, m.bias):
            if p is not None:
                p.requires_grad_(True)
                params.append(p)
    opt = torch.optim.Adam(params, lr=lr)
    rng = np.random.default_rng(seed)
    temp = out.temperature.detach().float().clamp_min(1e-3)
    for _ in range(epochs):
        out.train()
        for m in out.modules():
            if isinstance(m, nn.Dropout):
                m.eval()
        order = rng.permutation(len(z))
        for a, b in iter_batches(len(z), batch_size):
            if b - a < 2:
                continue
            idx = torch.from_numpy(order[a:b])
            s = None if spec is None else torch.as_tensor(np.asarray(spec)[order[a:b]]).float()
            logit = out(z[idx].float(), s).float() / temp
            p = torch.sigmoid(logit)
            ent = -(p * torch.nn.functional.logsigmoid(logit)
                    + (1 - p) * torch.nn.functional.logsigmoid(-logit)).mean()  # fmt: skip
            opt.zero_grad(set_to_none=True)
            ent.backward()
            opt.step()
    for p in out.parameters():
        p.requires_grad_(True)
    _reestimate(out, z[torch.from_numpy(rng.permutation(len(z)))], spec, 256)
    return out


def pseudo_labels(
    probs: np.ndarray, sn: np.ndarray, *, threshold: float = 0.9, max_per_class: int | None = None
) -> np.ndarray:
    """Indices of confident predictions for self-training: probability >= ``threshold``
    (labelled real) or <= 1 - ``threshold`` (not real), with as many of each class kept
    (the most confident first) so the pseudo-labels do not carry the model's bias towards
    one class into training. Picks are made per S/N regime (``sn`` <= 5.5, > 5.5), so
    both regimes contribute."""
    probs = np.asarray(probs, dtype=np.float64)
    sn = np.asarray(sn, dtype=np.float64)
    if probs.shape != sn.shape or probs.ndim != 1:
        raise ValueError("probs and sn must be 1D arrays of the same length")
    if not 0.5 < threshold < 1.0:
        raise ValueError("threshold must be in (0.5, 1)")
    keep = []
    for reg in (sn <= 5.5, sn > 5.5):
        pos = np.flatnonzero(reg & (probs >= threshold))
        neg = np.flatnonzero(reg & (probs <= 1 - threshold))
        k = min(len(pos), len(neg))
        if max_per_class is not None:
            k = min(k, max_per_class)
        keep += [pos[np.argsort(-probs[pos])][:k], neg[np.argsort(probs[neg])][:k]]
    return np.sort(np.concatenate(keep)).astype(np.int64)


@torch.no_grad()
def predict_probs(model: LineCNN, raw, *, batch_size: int = 1024) -> np.ndarray:
    """Eval-mode calibrated probabilities sigmoid(logit / temperature) of raw cutouts."""
    model.eval()
    x = _check_raw(raw)
    out = []
    for a, b in iter_batches(len(x), batch_size):
        z, _ = normalise(torch.from_numpy(np.asarray(x[a:b], np.float32)))
        out.append(torch.sigmoid(model(z).float() / model.temperature.float()).numpy())
    return np.concatenate(out)


def normalise_all(raw, batch_size: int = 2048) -> torch.Tensor:
    """Raw (N, 5, 9, 100) -> normalised float32 tensor (the CNN's input)."""
    x = _check_raw(raw)
    parts = [
        normalise(torch.from_numpy(np.asarray(x[a:b], np.float32)))[0]
        for a, b in iter_batches(len(x), batch_size)
    ]
    return torch.cat(parts)


__all__ = [
    "adapt_batchnorm",
    "apply_filter",
    "noise_acf",
    "normalise_all",
    "predict_probs",
    "pseudo_labels",
    "tent_adapt",
    "whiten_to_reference",
    "whitening_filter",
]
