"""Inputs for the CNN: per-candidate normalisation, NaN policy, augmentation, splits, weights.

Everything takes plain arrays: (N, 5, 9, 100) cutouts as float16/float32 numpy arrays or
memmaps (any array-like that slices to a numpy array), plus length-N ``sn`` (and ``field``)
arrays. Batches are cast to float32 only when read, so memory is bounded by the batch.

Normalisation (per candidate, in torch so it runs on the GPU when scoring):
    * channel 0, the summed image: subtract its median, divide by 1.4826 * MAD (a robust
      noise sigma; the line occupies a few % of the 900 pixels, so it barely moves either);
    * channels 1-4, the fibers: one median and one MAD pooled over all four, so the
      relative levels of the fibers survive (PSF-consistent weights of a real source, a
      bad fiber's offset, a hit in one fiber only);
    * then ``z -> 4 * asinh(z / 4)``: linear within about +-4 sigma, logarithmic beyond, so
      meteors and cosmic rays do not dominate a batch but stay the brightest thing.
NaN policy: non-finite pixels (masked, NaN, inf) are ignored by the median and MAD and set
to 0 after normalisation, i.e. to the background level. The fraction of such pixels is
returned as ``masked_frac`` so callers can flag heavily masked candidates. A sigma of 0 (an
all-constant or all-masked cutout) falls back to 1.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch

from mlcore.survey import SPEC_DWAVE, SPEC_WAVE0, regime_index

ASINH_SOFT = 4.0
MAD_TO_SIGMA = 1.4826


def _robust_center_scale(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, M) with NaNs -> median (B, 1), sigma (B, 1); NaNs ignored."""
    med = torch.nanmedian(x, dim=1, keepdim=True).values
    mad = torch.nanmedian((x - med).abs(), dim=1, keepdim=True).values
    sigma = MAD_TO_SIGMA * mad
    bad = ~torch.isfinite(sigma) | (sigma <= 0)
    sigma = torch.where(bad, torch.ones_like(sigma), sigma)
    med = torch.where(torch.isfinite(med), med, torch.zeros_like(med))
    return med, sigma


def normalise_torch(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The recipe in torch ops (per-candidate ``torch.nanmedian``): runs on any device.

    :func:`normalise` uses it for tensors on a GPU (or that need gradients); on the CPU it
    takes the numpy path, which gives the same result to float rounding and is ~10x faster.
    Kept as the reference the fast path is tested and benchmarked against.
    """
    x = x.float()
    finite = torch.isfinite(x)
    masked_frac = (~finite).flatten(1).float().mean(dim=1)  # (B,)
    x = torch.where(finite, x, torch.full_like(x, float("nan")))  # inf -> nan for nanmedian
    B = x.shape[0]
    s_med, s_sig = _robust_center_scale(x[:, 0].reshape(B, -1))  # summed image
    f_med, f_sig = _robust_center_scale(x[:, 1:].reshape(B, -1))  # 4 fibers pooled
    med = torch.cat([s_med, f_med.expand(B, x.shape[1] - 1)], dim=1)[:, :, None, None]
    sig = torch.cat([s_sig, f_sig.expand(B, x.shape[1] - 1)], dim=1)[:, :, None, None]
    z = (x - med) / sig
    z = ASINH_SOFT * torch.asinh(z / ASINH_SOFT)
    z = torch.nan_to_num(z, nan=0.0, posinf=0.0, neginf=0.0)
    return z, masked_frac


def _lower_median_rows(a: np.ndarray, n_finite: np.ndarray | None) -> np.ndarray:
    """(B, M) float32 -> (B,) the lower median of each row's finite values, NaN if none.

    ``torch.nanmedian``'s definition (the ((n-1)//2)-th smallest of the n finite values),
    by selection (``np.partition``, O(M)) instead of a sort. ``n_finite`` is None when every
    value is finite (one partition for the whole batch); else non-finite values must already
    be +inf, so they sort last, and rows are partitioned in groups of equal finite count.
    """
    B, M = a.shape
    if n_finite is None:
        k = (M - 1) // 2
        return np.partition(a, k, axis=1)[:, k]
    out = np.full(B, np.nan, np.float32)
    for n in np.unique(n_finite):
        if n == 0:
            continue
        rows = np.flatnonzero(n_finite == n)
        k = (int(n) - 1) // 2
        sub = a if len(rows) == B else a[rows]
        out[rows] = np.partition(sub, k, axis=1)[:, k]
    return out


def _center_scale_numpy(a: np.ndarray, n_finite: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """(B, M) -> median (B,), sigma (B,) as :func:`_robust_center_scale` computes them."""
    med = _lower_median_rows(a, n_finite)
    with np.errstate(invalid="ignore", over="ignore"):
        dev = np.abs(a - med[:, None])  # +inf stays +inf (after the finite values)
        if n_finite is not None:
            dev[np.isnan(dev)] = np.inf  # rows with no finite value: med is NaN
        mad = _lower_median_rows(dev, n_finite)
        sigma = np.float32(MAD_TO_SIGMA) * mad
    sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, np.float32(1.0))
    med = np.where(np.isfinite(med), med, np.float32(0.0))
    return med.astype(np.float32), sigma.astype(np.float32)


def _kth_of_two_sorted(a_at, b_at, p: int, q: int, k: int, n_rows: int) -> np.ndarray:
    """The k-th smallest (0-based) of the union of two ascending runs per row, of lengths p
    and q, read only where probed: ``a_at(i)``/``b_at(j)`` give each row's i-th/j-th
    element for (n_rows,) index arrays. A binary search (vectorised over rows, O(log p)
    probes) on how many of the k + 1 smallest come from ``a``."""
    lo = np.full(n_rows, max(0, k + 1 - q))
    hi = np.full(n_rows, min(k + 1, p))
    while (lo < hi).any():
        live = lo < hi
        mid = np.where(live, (lo + hi) // 2, 0)
        if q:
            take_fewer = a_at(mid) >= b_at(np.clip(k - mid, 0, q - 1))
        else:
            take_fewer = np.ones(n_rows, bool)
        hi = np.where(live & take_fewer, mid, hi)
        lo = np.where(live & ~take_fewer, mid + 1, lo)
    i, j = lo, k + 1 - lo  # i from a, j from b
    from_a = np.where(i > 0, a_at(np.maximum(i - 1, 0)), -np.inf)
    from_b = np.where(j > 0, b_at(np.clip(j - 1, 0, max(q - 1, 0))), -np.inf) if q else -np.inf
    return np.maximum(from_a, from_b).astype(np.float32)


def _center_scale_float16(h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(R, M) float16 rows, all finite -> median (R,), sigma (R,) as
    :func:`_center_scale_numpy` gives them, faster: a float16 row sorts by a radix sort of
    its bit patterns (numpy's stable sort of 16-bit keys), the median is the middle element
    and the MAD the k-th smallest of the two sorted runs of distances |x - med| either side
    of it, found by probing a few of them (each computed in float32, as the selection
    computes them all)."""
    u = np.ascontiguousarray(h).view(np.uint16)
    keys = u ^ (((u >> 15) * np.uint16(0x7FFF)) | np.uint16(0x8000))  # order-preserving
    keys = np.sort(keys, axis=1, kind="stable")
    bits = keys ^ ((((keys >> 15) ^ np.uint16(1)) * np.uint16(0x7FFF)) | np.uint16(0x8000))
    v = bits.view(np.float16)  # each row sorted ascending
    R, M = v.shape
    k = (M - 1) // 2
    rows = np.arange(R)
    med = v[:, k].astype(np.float32)

    def left(i):  # distances of x <= med, ascending: med - v[k], med - v[k-1], ...
        return med - v[rows, k - i].astype(np.float32)

    def right(j):  # of x >= med after it: v[k+1] - med, ...
        return v[rows, k + 1 + j].astype(np.float32) - med

    mad = _kth_of_two_sorted(left, right, k + 1, M - k - 1, k, R)
    with np.errstate(invalid="ignore", over="ignore"):
        sigma = np.float32(MAD_TO_SIGMA) * mad
    sigma = np.where(np.isfinite(sigma) & (sigma > 0), sigma, np.float32(1.0))
    return med, sigma.astype(np.float32)


def normalise_numpy(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """:func:`normalise` on a numpy (B, 5, 9, 100) array -> (z float32, masked_frac (B,)).

    Medians by selection instead of a sort per candidate: for float16 input (the cutout
    store) a radix sort of the bit patterns (:func:`_center_scale_float16`), otherwise
    ``np.partition`` (one call per batch when nothing is masked; masked rows are grouped by
    their count of finite pixels), and numpy's vectorised ``arcsinh``: the same values as
    :func:`normalise_torch` to float rounding (medians and MADs exactly, asinh to an ulp).
    """
    x = np.asarray(x)
    half = x if x.dtype == np.float16 else None
    if x.dtype != np.float32:
        x = x.astype(np.float32)
    B, C = x.shape[:2]
    flat = x.reshape(B, C, -1)
    finite = np.isfinite(flat)
    n_fin_s = np.count_nonzero(finite[:, 0], axis=1)
    n_fin_f = np.count_nonzero(finite[:, 1:].reshape(B, -1), axis=1)
    n_pix = flat.shape[1] * flat.shape[2]
    n_bad = n_pix - n_fin_s - n_fin_f
    masked_frac = n_bad.astype(np.float32) / np.float32(n_pix)
    any_bad = bool(n_bad.any())
    if half is not None:  # the cutout store's dtype: radix sort for the unmasked rows
        clean = np.flatnonzero(n_bad == 0)
        hf = half.reshape(B, C, -1)
        s_med, s_sig, f_med, f_sig = (np.empty(B, np.float32) for _ in range(4))
        s_med[clean], s_sig[clean] = _center_scale_float16(hf[clean, 0])
        f_med[clean], f_sig[clean] = _center_scale_float16(hf[clean, 1:].reshape(len(clean), -1))
        rest = np.flatnonzero(n_bad > 0)
        if len(rest):
            src = np.where(finite[rest], flat[rest], np.float32(np.inf))
            s_med[rest], s_sig[rest] = _center_scale_numpy(src[:, 0], n_fin_s[rest])
            f_med[rest], f_sig[rest] = _center_scale_numpy(
                src[:, 1:].reshape(len(rest), -1), n_fin_f[rest]
            )
    else:
        src = np.where(finite, flat, np.float32(np.inf)) if any_bad else flat
        s_med, s_sig = _center_scale_numpy(src[:, 0], n_fin_s if any_bad else None)
        f_med, f_sig = _center_scale_numpy(src[:, 1:].reshape(B, -1), n_fin_f if any_bad else None)
    med = np.empty((B, C, 1), np.float32)
    sig = np.empty((B, C, 1), np.float32)
    med[:, 0, 0], med[:, 1:, 0] = s_med, f_med[:, None]
    sig[:, 0, 0], sig[:, 1:, 0] = s_sig, f_sig[:, None]
    with np.errstate(invalid="ignore", over="ignore"):
        z = flat - med
        z /= sig
        z /= np.float32(ASINH_SOFT)
        np.arcsinh(z, out=z)
        z *= np.float32(ASINH_SOFT)
    if any_bad or not np.isfinite(z).all():
        z[~np.isfinite(z)] = 0.0  # masked pixels -> background (and any overflow, as before)
    return z.reshape(x.shape), masked_frac


def normalise(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 5, 9, 100) raw float -> (normalised (B, 5, 9, 100) float32, masked_frac (B,)).

    See the module docstring for the recipe and the NaN policy. CPU tensors go through
    :func:`normalise_numpy`, others (GPU) through :func:`normalise_torch`.
    """
    if x.device.type == "cpu" and not x.requires_grad:
        if x.dtype not in (torch.float16, torch.float32, torch.float64):
            x = x.float()
        z, m = normalise_numpy(x.numpy())
        return torch.from_numpy(z), torch.from_numpy(m)
    return normalise_torch(x)


def spec_windows(
    spec1d: np.ndarray, spec1d_err: np.ndarray, wave: np.ndarray, half_width: int = 50
) -> np.ndarray:
    """(N, 1036) spectrum + error + line wavelength -> (N, 2, 2*half_width) float32.

    A window of the rectified 1D spectrum centred on the line, padded with 0 off the grid:
    channel 0 is S/N per pixel (flux / err), channel 1 the flux over its robust sigma in the
    window. Both go through the same asinh compression as the images; NaN -> 0.
    """
    spec1d = np.asarray(spec1d)  # float16 from the store: only the window is widened
    spec1d_err = np.asarray(spec1d_err)
    n, n_spec = spec1d.shape
    centre = np.rint((np.asarray(wave, dtype=np.float64) - SPEC_WAVE0) / SPEC_DWAVE).astype(int)
    offs = np.arange(-half_width, half_width)
    idx = centre[:, None] + offs[None, :]  # (N, L)
    inside = (idx >= 0) & (idx < n_spec)
    idx = np.clip(idx, 0, n_spec - 1)
    rows = np.arange(n)[:, None]
    flux = np.where(inside, spec1d[rows, idx].astype(np.float32), np.float32(np.nan))
    err = np.where(inside, spec1d_err[rows, idx].astype(np.float32), np.float32(np.nan))
    with np.errstate(invalid="ignore", divide="ignore"):
        snr = flux / np.where(err > 0, err, np.nan)
        med = np.nanmedian(flux, axis=1, keepdims=True)
        mad = np.nanmedian(np.abs(flux - med), axis=1, keepdims=True) * MAD_TO_SIGMA
        mad = np.where(np.isfinite(mad) & (mad > 0), mad, 1.0)
        scaled = (flux - np.nan_to_num(med)) / mad
    out = np.stack([snr, scaled], axis=1)
    out = ASINH_SOFT * np.arcsinh(out / ASINH_SOFT)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0).astype(np.float32)


def iter_batches(n: int, batch_size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, batch_size):
        yield start, min(start + batch_size, n)


def normalise_array(
    cutouts, batch_size: int = 2048, out_dtype: torch.dtype = torch.float16
) -> tuple[torch.Tensor, torch.Tensor]:
    """Normalise a whole (N, 5, 9, 100) array-like in batches -> (N, 5, 9, 100) tensor.

    Stored as float16 by default (half the memory; values are O(1)-O(20), well within
    float16 precision) for the training cache; batches are cast back to float32.
    """
    n = len(cutouts)
    out = torch.empty((n, *cutouts.shape[1:]), dtype=out_dtype)
    masked = torch.empty(n, dtype=torch.float32)
    for a, b in iter_batches(n, batch_size):
        z, m = normalise(torch.from_numpy(np.asarray(cutouts[a:b], dtype=np.float32)))
        out[a:b] = z.to(out_dtype)
        masked[a:b] = m
    return out, masked


# --- augmentation (physics-respecting) -----------------------------------------------------


def augment(
    x: torch.Tensor,
    max_shift: int,
    flip_p: float,
    generator: torch.Generator | None = None,
    spec: torch.Tensor | None = None,
    shift_sigma: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Random small wavelength shifts and flips along the spatial axis, per sample.

    (B, C, 9, 100) [, (B, 2, L)] -> same. Shifts of up to ``max_shift`` px move the line
    around column 50 as the line-finder's centroid error does; edges are replicated; the 1D
    window (same 2 A pixels) moves with the image. Flips are along the rows only: the
    spatial profile across a fiber trace has no preferred side, a line profile in
    wavelength has (Lya is red-skewed, P-Cygni sky residuals are dip-then-bump), so there is
    never a flip along wavelength. ``shift_sigma`` > 0 draws the shifts as round(N(0,
    shift_sigma)) clipped to +-``max_shift`` instead of uniformly (a width measured from
    the line finder's centroid error).
    """
    B, _, _, W = x.shape
    dev = x.device
    if max_shift > 0:
        if shift_sigma > 0:
            g = torch.randn(B, generator=generator, device=dev) * shift_sigma
            s = g.round().clamp(-max_shift, max_shift).long()
        else:
            s = torch.randint(-max_shift, max_shift + 1, (B,), generator=generator, device=dev)
        idx = (torch.arange(W, device=dev)[None, :] - s[:, None]).clamp(0, W - 1)  # (B, W)
        x = torch.gather(x, 3, idx[:, None, None, :].expand_as(x))
        if spec is not None:
            L = spec.shape[-1]
            idx = (torch.arange(L, device=dev)[None, :] - s[:, None]).clamp(0, L - 1)
            spec = torch.gather(spec, 2, idx[:, None, :].expand_as(spec))
    if flip_p > 0:
        flip = torch.rand(B, generator=generator, device=dev) < flip_p
        x = torch.where(flip[:, None, None, None], x.flip(2), x)
    return x, spec


# --- splits and class balance -------------------------------------------------------------


def stratified_split(
    strata: np.ndarray, fractions: tuple[float, ...], seed: int
) -> list[np.ndarray]:
    """Split indices 0..N-1 into len(fractions)+1 parts, stratified; the last gets the rest.

    ``strata`` is any length-N integer/str key (e.g. regime*2 + class). Deterministic for
    a seed; each returned index array is sorted (memmap-friendly reads).
    """
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[] for _ in range(len(fractions) + 1)]
    for key in np.unique(strata):
        idx = np.flatnonzero(strata == key)
        idx = idx[rng.permutation(len(idx))]
        cuts = np.cumsum([int(round(f * len(idx))) for f in fractions])
        for k, chunk in enumerate(np.split(idx, cuts)):
            parts[k].append(chunk)
    return [np.sort(np.concatenate(p)) if p else np.array([], dtype=np.int64) for p in parts]


def balanced_weights(targets: np.ndarray, sn: np.ndarray, max_ratio: float = 20.0) -> np.ndarray:
    """Per-sample weights making every (regime, class) cell carry equal total weight.

    Real lines and artefacts are not 50/50 and the mix differs between the S/N regimes, so
    the loss is balanced within each regime, and the two regimes count equally. Soft
    targets count fractionally towards both classes (a sample's weight is its target's
    share of the two class weights). Weights are normalised to mean 1 and capped at
    ``max_ratio`` so a nearly empty cell cannot blow up the loss.
    """
    t = np.clip(np.asarray(targets, dtype=np.float64), 0.0, 1.0)
    reg = regime_index(sn)
    w = np.zeros_like(t)
    cells = []
    for r in (0, 1):
        in_r = reg == r
        if not in_r.any():
            continue
        n_pos = t[in_r].sum()
        n_neg = (1.0 - t[in_r]).sum()
        cells.append((in_r, n_pos, n_neg))
    n_cells = 2 * len(cells)
    n = len(t)
    for in_r, n_pos, n_neg in cells:
        w_pos = n / (n_cells * n_pos) if n_pos > 0 else 0.0
        w_neg = n / (n_cells * n_neg) if n_neg > 0 else 0.0
        w[in_r] = t[in_r] * w_pos + (1.0 - t[in_r]) * w_neg
    w = np.minimum(w, max_ratio)
    return (w / w.mean()).astype(np.float32) if w.mean() > 0 else np.ones_like(w, np.float32)
