"""Is new data like the data the live model was trained on? Shift statistics and a verdict.

Three kinds of evidence, each comparing a *reference* sample (rows of the live model's
training data) with a *new* sample (an ingest batch, a field, a group of nights):

1. Input statistics per candidate, from the raw (N, 5, 9, 100) cutouts (summed image, then
   the 4 fibres), compared as distributions with the two-sample Kolmogorov-Smirnov distance:
   ``noise_level``       robust sigma (1.4826 MAD) of the fibre pixels off the line
                         (columns 0-34 and 65-99), in flux units;
   ``noise_corr_wave``   lag-1 autocorrelation of those pixels along wavelength;
   ``noise_corr_rows``   lag-1 autocorrelation across the 9 rows of a trace;
   ``sky_row_share``     line flux (columns 46-54 of the summed image) in the outer rows
                         (0, 1, 7, 8) over the central rows (3-5): sky residuals fill the
                         whole cutout height, a source sits on the trace;
   ``seeing_proxy``      line flux of fibres 2-4 over 3x fibre 1: flatter when the PSF is
                         broad;
   ``masked_frac``       share of fibre pixels that are exactly 0 or not finite.
2. The model's own representation (``LineCNN.features``, the penultimate layer): a
   cross-validated logistic-regression domain classifier's ROC AUC (0.5: the model cannot
   tell the samples apart) and the MMD^2 with a Gaussian kernel, each with a permutation
   p-value.
3. The model's output: the KS distance between the score distributions and the change in
   the predicted-real fraction (score >= 0.5).
4. Where the lines are (when both samples carry the candidates' catalogue wavelengths): a
   sky line or an artefact at a fixed wavelength the training data did not have makes a
   spike in the new sample's wavelength histogram, the "false spikes in the redshift
   distribution" of the science case. :func:`wave_spikes` scans 6 A bins (two grids half a
   bin apart) for the largest excess of the new sample over the reference, as a
   pooled-proportion z score. Added after the held-back ``sky_artefacts`` scenario had been
   measured and missed (docs/shift.md says so): a post-hoc statistic, not an unseen test.

:func:`judge` turns them into a verdict, ``in distribution`` / ``shifted`` / ``far``, with
thresholds measured by ``bench/bench_shift.py`` (held-out draws of the training field set
them; independent draws measure the false-alarm rate; the shift scenarios of
``mlcore.simulator.scenarios`` measure detection). numpy and torch only.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch

from mlcore.errors import DataError

INPUT_STATS = (
    "noise_level",
    "noise_corr_wave",
    "noise_corr_rows",
    "sky_row_share",
    "seeing_proxy",
    "masked_frac",
)
VERDICTS = ("in distribution", "shifted", "far")
MIN_SAMPLE = 100  # fewer candidates than this on either side: no verdict
_OFF = (slice(0, 35), slice(65, 100))  # columns off the line
_LINE = slice(46, 55)  # columns on the line (LINE_COL = 50)
_OUTER_ROWS = [0, 1, 7, 8]
_CENTRAL_ROWS = [3, 4, 5]


# --- 1. input statistics ------------------------------------------------------------------


def _check_cutouts(cutouts, name: str) -> np.ndarray:
    shape = getattr(cutouts, "shape", None)
    if shape is None or len(shape) != 4 or tuple(shape[1:]) != (5, 9, 100):
        raise DataError(
            f"{name}: expected cutouts of shape (N, 5, 9, 100) (summed image + 4 fibres), "
            f"got {shape}"
        )
    return cutouts


def input_statistics(cutouts, chunk: int = 2048) -> dict[str, np.ndarray]:
    """(N, 5, 9, 100) raw cutouts (any float dtype, NaN allowed) -> {stat: (N,) float64}."""
    cutouts = _check_cutouts(cutouts, "input_statistics")
    n = cutouts.shape[0]
    out = {k: np.zeros(n) for k in INPUT_STATS}
    for a in range(0, n, chunk):
        x = np.asarray(cutouts[a : a + chunk], dtype=np.float64)
        bad = ~np.isfinite(x)
        x = np.where(bad, 0.0, x)
        fib = x[:, 1:]  # (B, 4, 9, 100)
        out["masked_frac"][a : a + len(x)] = (bad[:, 1:] | (fib == 0.0)).mean(axis=(1, 2, 3))
        blocks = [fib[..., s] for s in _OFF]  # 2 x (B, 4, 9, 35)
        base = np.median(np.concatenate(blocks, axis=-1), axis=-1, keepdims=True)  # per row
        res = [b - base for b in blocks]
        flat = np.concatenate([r.reshape(len(x), -1) for r in res], axis=1)
        mad = np.median(np.abs(flat - np.median(flat, axis=1, keepdims=True)), axis=1)
        out["noise_level"][a : a + len(x)] = 1.4826 * mad
        ss = sum((r * r).sum(axis=(1, 2, 3)) for r in res)
        ss = np.maximum(ss, 1e-300)
        lag_w = sum((r[..., 1:] * r[..., :-1]).sum(axis=(1, 2, 3)) for r in res)
        lag_r = sum((r[:, :, 1:] * r[:, :, :-1]).sum(axis=(1, 2, 3)) for r in res)
        out["noise_corr_wave"][a : a + len(x)] = lag_w / ss
        out["noise_corr_rows"][a : a + len(x)] = lag_r / ss
        # line flux above the off-line level, per row of the summed image and per fibre
        s_img = x[:, 0]  # (B, 9, 100)
        s_base = np.median(np.concatenate([s_img[..., s] for s in _OFF], axis=-1), axis=-1)
        s_line = (s_img[..., _LINE] - s_base[..., None]).sum(-1)  # (B, 9)
        noise = 1.4826 * mad * math.sqrt(_LINE.stop - _LINE.start) + 1e-12
        outer = s_line[:, _OUTER_ROWS].mean(1)
        central = s_line[:, _CENTRAL_ROWS].mean(1)
        out["sky_row_share"][a : a + len(x)] = np.clip(
            outer / np.maximum(np.abs(central), noise), -3, 3
        )
        f_line = (fib[..., _LINE] - base).sum(axis=(2, 3))  # (B, 4)
        f1 = np.maximum(np.abs(f_line[:, 0]), 3 * noise)
        out["seeing_proxy"][a : a + len(x)] = np.clip(f_line[:, 1:].mean(1) / f1, -3, 3)
    return out


def ks_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sample Kolmogorov-Smirnov distance sup |F_a - F_b| (NaNs dropped)."""
    a = np.sort(np.asarray(a, np.float64)[np.isfinite(a)])
    b = np.sort(np.asarray(b, np.float64)[np.isfinite(b)])
    if len(a) == 0 or len(b) == 0:
        raise DataError("ks_distance: a sample with no finite values")
    grid = np.concatenate([a, b])
    fa = np.searchsorted(a, grid, side="right") / len(a)
    fb = np.searchsorted(b, grid, side="right") / len(b)
    return float(np.max(np.abs(fa - fb)))


# --- 2. the representation ------------------------------------------------------------------


def _subsample(x: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    return x if len(x) <= k else x[np.sort(rng.choice(len(x), k, replace=False))]


def _pooled_pca(ref: np.ndarray, new: np.ndarray, dim: int) -> tuple[torch.Tensor, int]:
    """Standardise the pooled embeddings and project on their first ``dim`` principal axes.
    Label-free, so the permutation tests stay valid."""
    x = torch.from_numpy(np.concatenate([ref, new]).astype(np.float64))
    x = x - x.mean(0)
    sd = x.std(0)
    x = x[:, sd > 1e-9] / sd[sd > 1e-9]
    if x.shape[1] == 0:
        return torch.zeros((len(x), 1), dtype=torch.float64), len(ref)
    evals, evecs = torch.linalg.eigh(x.T @ x)  # ascending
    k = min(dim, x.shape[1])
    z = x @ evecs[:, -k:]
    return z / z.std(0).clamp_min(1e-12), len(ref)


def _auc_rows(scores: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """ROC AUC of each row of ``scores`` (P, n) against labels ``y`` (P, n) in {0, 1}."""
    ranks = scores.argsort(dim=1).argsort(dim=1).double() + 1.0
    n1 = y.sum(1)
    n0 = y.shape[1] - n1
    return ((ranks * y).sum(1) - n1 * (n1 + 1) / 2) / (n1 * n0)


def _logreg_batched(x: torch.Tensor, y: torch.Tensor, l2: float, iters: int = 12):
    """P independent L2-logistic regressions on shared x (n, d) with labels y (P, n),
    by Newton's method (exact for a convex problem this small). -> weights (P, d+1)."""
    n, d = x.shape
    xb = torch.cat([x, torch.ones((n, 1), dtype=x.dtype)], dim=1)  # (n, d+1)
    w = torch.zeros((y.shape[0], d + 1), dtype=x.dtype)
    reg = torch.full((d + 1,), l2 * n, dtype=x.dtype)
    reg[-1] = 1e-8
    for _ in range(iters):
        p = torch.sigmoid(w @ xb.T)  # (P, n)
        g = (p - y) @ xb + reg * w  # (P, d+1)
        h = (xb.T.unsqueeze(0) * (p * (1 - p)).unsqueeze(1)) @ xb + torch.diag(reg)
        w = w - torch.linalg.solve(h, g.unsqueeze(-1)).squeeze(-1)
    return w


def domain_classifier_auc(
    ref: np.ndarray,
    new: np.ndarray,
    *,
    folds: int = 5,
    n_perm: int = 39,
    seed: int = 0,
    max_per_side: int = 1500,
    pca_dim: int = 16,
    l2: float = 1e-3,
) -> tuple[float, float]:
    """Cross-validated ROC AUC of a logistic regression telling ``new`` from ``ref``
    embeddings, and its permutation p-value ((1 + #perm AUC >= observed) / (1 + n_perm)).

    The observed labelling and ``n_perm`` shuffles are fitted together as one batch of
    independent regressions on the same folds.
    """
    rng = np.random.default_rng(seed)
    ref = _subsample(np.asarray(ref), max_per_side, rng)
    new = _subsample(np.asarray(new), max_per_side, rng)
    z, n_ref = _pooled_pca(ref, new, pca_dim)
    n = len(z)
    y0 = np.r_[np.zeros(n_ref), np.ones(n - n_ref)]
    ys = [y0] + [rng.permutation(y0) for _ in range(n_perm)]
    y = torch.from_numpy(np.stack(ys))  # (P, n)
    fold = rng.permutation(np.arange(n) % folds)
    scores = torch.zeros_like(y)
    for k in range(folds):
        tr = torch.from_numpy(fold != k)
        te = torch.from_numpy(fold == k)
        w = _logreg_batched(z[tr], y[:, tr], l2)
        zb = torch.cat([z[te], torch.ones((int(te.sum()), 1), dtype=z.dtype)], dim=1)
        scores[:, te] = w @ zb.T
    auc = _auc_rows(scores, y)
    obs = float(auc[0])
    p = (1 + int((auc[1:] >= obs - 1e-12).sum())) / (1 + n_perm)
    return obs, float(p)


def mmd_test(
    ref: np.ndarray,
    new: np.ndarray,
    *,
    n_perm: int = 99,
    seed: int = 0,
    max_per_side: int = 1000,
    pca_dim: int = 16,
) -> tuple[float, float]:
    """MMD^2 (biased V-statistic, Gaussian kernel with the pooled median-distance
    bandwidth) between the embeddings, and its permutation p-value."""
    rng = np.random.default_rng(seed)
    ref = _subsample(np.asarray(ref), max_per_side, rng)
    new = _subsample(np.asarray(new), max_per_side, rng)
    z, n_ref = _pooled_pca(ref, new, pca_dim)
    n = len(z)
    d2 = torch.cdist(z, z).pow(2)
    med = d2[torch.triu(torch.ones(n, n, dtype=torch.bool), 1)].median().clamp_min(1e-12)
    k = torch.exp(-d2 / med)
    base = np.r_[np.full(n_ref, 1.0 / n_ref), np.full(n - n_ref, -1.0 / (n - n_ref))]
    s = torch.from_numpy(np.stack([base] + [rng.permutation(base) for _ in range(n_perm)]))
    stat = ((s @ k) * s).sum(1)
    obs = float(stat[0])
    p = (1 + int((stat[1:] >= obs - 1e-15).sum())) / (1 + n_perm)
    return obs, float(p)


# --- 4. where the lines are ------------------------------------------------------------------

WAVE_BIN = 6.0  # A: about the instrument's resolution (5.6 A FWHM) plus centroid scatter
WAVE_MIN_COUNT = 5  # a spike needs this many new candidates in its bin (Poisson tails)


def wave_spikes(
    ref_wave: np.ndarray, new_wave: np.ndarray, *, width: float = WAVE_BIN, top: int = 3
) -> dict:
    """The largest excess of ``new_wave`` over ``ref_wave`` in any ``width`` bin.

    Both histograms on the same grid (and on a second grid offset by half a bin, so a spike
    on a bin edge is not split), each bin's share compared as a two-sample proportion z =
    (p_new - p_ref) / sqrt(p (1 - p) (1/n_new + 1/n_ref)), p the pooled share. Only excesses
    of the new sample count (a line the new data lacks costs no trust), and only bins with at
    least ``WAVE_MIN_COUNT`` new candidates. Returns ``z`` (the largest, 0 when none), the
    ``wave`` of its bin centre, and the ``top`` spikes, at least a bin apart."""
    a = np.asarray(ref_wave, np.float64)
    b = np.asarray(new_wave, np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) < MIN_SAMPLE or len(b) < MIN_SAMPLE:
        raise DataError(
            f"wave_spikes: need at least {MIN_SAMPLE} finite wavelengths on each side, got "
            f"{len(a)} (reference) and {len(b)} (new)"
        )
    lo = min(a.min(), b.min()) - width
    hi = max(a.max(), b.max()) + width
    found: list[tuple[float, float]] = []
    for offset in (0.0, width / 2):
        edges = np.arange(lo - offset, hi + width, width)
        ca = np.histogram(a, edges)[0].astype(np.float64)
        cb = np.histogram(b, edges)[0].astype(np.float64)
        pa, pb = ca / len(a), cb / len(b)
        p = (ca + cb) / (len(a) + len(b))
        se = np.sqrt(np.maximum(p * (1 - p), 1e-12) * (1 / len(a) + 1 / len(b)))
        z = np.where(cb >= WAVE_MIN_COUNT, (pb - pa) / se, 0.0)
        centres = edges[:-1] + width / 2
        found += [(float(z[i]), float(centres[i])) for i in np.flatnonzero(z > 0)]
    found.sort(reverse=True)
    spikes: list[dict] = []
    for z, w in found:
        if all(abs(w - s["wave"]) >= width for s in spikes):
            spikes.append({"z": round(z, 3), "wave": round(w, 1)})
        if len(spikes) == top:
            break
    best = spikes[0] if spikes else {"z": 0.0, "wave": None}
    return {"z": best["z"], "wave": best["wave"], "top": spikes}


# --- the report and the verdict -------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    """What the tests need from one sample: per-candidate input statistics, embeddings
    (N, F) and calibrated scores (N,), row-aligned (same candidates, same order); ``waves``
    (optional): the candidates' catalogue wavelengths, same rows."""

    stats: dict[str, np.ndarray]
    embeddings: np.ndarray
    scores: np.ndarray
    waves: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = len(self.scores)
        if self.waves is not None and len(self.waves) != n:
            raise DataError(f"Sample: {len(self.waves)} wavelengths for {n} candidates")
        if self.embeddings.ndim != 2 or len(self.embeddings) != n:
            raise DataError(f"Sample: embeddings {self.embeddings.shape} do not match {n} scores")
        for k in INPUT_STATS:
            if k not in self.stats or len(self.stats[k]) != n:
                raise DataError(f"Sample: input statistic {k!r} missing or not of length {n}")

    def __len__(self) -> int:
        return len(self.scores)


@torch.inference_mode()
def describe(
    model,
    cutouts,
    *,
    spec: np.ndarray | None = None,
    waves: np.ndarray | None = None,
    batch: int = 1024,
) -> Sample:
    """Input statistics, ``model.features`` embeddings and calibrated scores (the
    deterministic forward pass divided by the model's temperature, as scoring with T=1) of
    raw (N, 5, 9, 100) cutouts; ``spec``: the (N, 2, L) 1D windows of a model with a 1D
    branch; ``waves``: the same candidates' catalogue wavelengths (A), for the wavelength
    statistic. The trunk runs once per batch for both."""
    from mlcore.cnn.data import normalise

    cutouts = _check_cutouts(cutouts, "describe")
    n = cutouts.shape[0]
    if spec is not None and len(spec) != n:
        raise DataError(f"describe: {len(spec)} 1D windows for {n} cutouts")
    model.eval()
    device = next(model.parameters()).device
    members = getattr(model, "members", None)
    embs, probs = [], []
    for a in range(0, n, batch):
        raw = torch.from_numpy(np.array(cutouts[a : a + batch], dtype=np.float32))
        x, _ = normalise(raw.to(device))
        s = None if spec is None else torch.as_tensor(np.asarray(spec[a : a + batch], np.float32))
        if members is None:
            f = model.features(x, s)
            logit = model.head(f)
        else:  # an ensemble: concatenated member features, mean member logit
            fs = [m.features(x, s) for m in members]
            f = torch.cat(fs, dim=1)
            logit = torch.stack([m.head(fm) for m, fm in zip(members, fs, strict=True)]).mean(0)
        embs.append(f.float().cpu().numpy())
        probs.append(torch.sigmoid(logit.float() / model.temperature.float()).cpu().numpy())
    emb = np.concatenate(embs) if embs else np.zeros((0, model.feature_dim), np.float32)
    prob = np.concatenate(probs) if probs else np.zeros(0, np.float32)
    w = None if waves is None else np.asarray(waves, np.float64).reshape(-1)
    return Sample(input_statistics(cutouts), emb, prob, w)


@dataclass(frozen=True)
class Thresholds:
    """Where "in distribution" ends, measured by ``bench/bench_shift.py``.

    Each ``*_shifted`` value is an effect size the held-out training-field draws of the
    calibration set did not reach (the largest of them, times ``margin``), at a new sample
    of ``n_new`` candidates against a reference of ``n_ref``; :meth:`scaled` widens them
    for smaller samples (KS and AUC noise scale as sqrt(1/n + 1/m)). The representation
    tests also need their permutation p-value below ``alpha``. ``far`` is a convention, not
    a measurement: a domain AUC of ``auc_far`` (the model tells the samples apart 9 times
    in 10) or an input-statistic KS distance of ``ks_far`` and twice its threshold.
    """

    ks_input: dict[str, float] = field(default_factory=dict)
    auc: float = 0.6
    mmd: float = 0.01
    score_ks: float = 0.1
    real_frac: float = 0.1
    # the largest wavelength-spike z score (wave_spikes): already scaled by the samples'
    # sizes, so not widened for smaller ones; inf (never flags) in thresholds made before it
    wave_spike_z: float = math.inf
    alpha: float = 0.05
    auc_far: float = 0.9
    ks_far: float = 0.5
    n_new: int = 1500
    n_ref: int = 3000
    source: str = ""

    def scaled(self, n_new: int, n_ref: int) -> Thresholds:
        f = math.sqrt((1 / n_new + 1 / n_ref) / (1 / self.n_new + 1 / self.n_ref))
        f = max(f, 1.0)  # never tighter than measured
        return Thresholds(
            # a KS distance or an AUC cannot pass 1: at small samples a statistic whose
            # null scatter is that wide flags only complete separation
            ks_input={k: min(v * f, 1.0) for k, v in self.ks_input.items()},
            auc=min(0.5 + (self.auc - 0.5) * f, 1.0),
            mmd=self.mmd * f * f,  # MMD^2 noise scales as 1/n
            score_ks=min(self.score_ks * f, 1.0),
            real_frac=self.real_frac * f,
            wave_spike_z=self.wave_spike_z,
            alpha=self.alpha,
            auc_far=max(self.auc_far, 0.5 + (self.auc - 0.5) * f),
            ks_far=self.ks_far,
            n_new=n_new,
            n_ref=n_ref,
            source=self.source,
        )

    def to_dict(self) -> dict:
        d = asdict(self)
        if math.isinf(d["wave_spike_z"]):
            d["wave_spike_z"] = None  # JSON has no infinity (stored reports are JSON)
        return d


# Measured by bench/bench_shift.py (bench/RESULTS.md, docs/shift.md): the largest value over
# 80 held-out COSMOS draws against 2,000 rows of the model's training data, times 1.5 (pixel
# and model statistics on 1,000 candidates a draw; the wavelength spike on 5,000 against
# every training row). On 40 further draws (fresh seeds) none was called shifted.
DEFAULT_THRESHOLDS = Thresholds(
    ks_input={
        "noise_level": 0.4823,
        "noise_corr_wave": 0.0772,
        "noise_corr_rows": 0.084,
        "sky_row_share": 0.093,
        "seeing_proxy": 0.1222,
        "masked_frac": 0.0113,
    },
    auc=0.5557,
    mmd=0.003186,
    score_ks=0.078,
    real_frac=0.051,
    wave_spike_z=5.703,
    n_new=1000,
    n_ref=2000,
    source="bench/bench_shift.py: max over 80 held-out COSMOS draws x 1.5",
)


# Reports per group of observing nights (mlcore.nights): one night is one or a few shots,
# each with its own seeing and noise, so the draw-level thresholds above (calibrated on
# draws spanning ~4 shots) called 7 of 50 unshifted nights shifted. These are measured on
# 80 unshifted nights (x 1.5) by bench/bench_shift_nights.py: 0 of 50 fresh unshifted nights
# flagged, psf_seeing and correlated_noise still 50 of 50, the sky-line shift 4 of 50 (one
# night has too few candidates for its spike; batch and field reports catch it). noise_level
# at 1.23 cannot flag a night: a KS distance never passes 1 (its null scatter per shot is
# that wide).
NIGHT_THRESHOLDS = Thresholds(
    ks_input={
        "noise_level": 1.2275,
        "noise_corr_wave": 0.1591,
        "noise_corr_rows": 0.1723,
        "sky_row_share": 0.1763,
        "seeing_proxy": 0.249,
        "masked_frac": 0.0238,
    },
    auc=0.606,
    mmd=0.009694,
    score_ks=0.221,
    real_frac=0.21,
    wave_spike_z=9.034,
    n_new=243,
    n_ref=2000,
    source="bench/bench_shift_nights.py: max over 80 unshifted COSMOS nights x 1.5",
)


def compare(
    ref: Sample,
    new: Sample,
    *,
    thresholds: Thresholds | None = None,
    n_perm_auc: int = 39,
    n_perm_mmd: int = 99,
    seed: int = 0,
    ref_waves: np.ndarray | None = None,
    new_waves: np.ndarray | None = None,
) -> dict:
    """The shift report of ``new`` against ``ref``: every statistic, its threshold, the
    verdict and the reasons for it. JSON-serialisable. ``ref_waves`` / ``new_waves``: the
    catalogue wavelengths of *all* the reference and new candidates for the wavelength
    statistic, which needs neither pixels nor the model, so it need not be limited to the
    samples (default: the samples' own ``waves``)."""
    if len(ref) < MIN_SAMPLE or len(new) < MIN_SAMPLE:
        raise DataError(
            f"compare: need at least {MIN_SAMPLE} candidates on each side, got "
            f"{len(ref)} (reference) and {len(new)} (new)"
        )
    if ref.embeddings.shape[1] != new.embeddings.shape[1]:
        raise DataError(
            f"compare: embeddings of different models ({ref.embeddings.shape[1]} vs "
            f"{new.embeddings.shape[1]} features): describe both samples with the same model"
        )
    th = (thresholds or DEFAULT_THRESHOLDS).scaled(len(new), len(ref))
    inputs = {}
    for k in INPUT_STATS:
        inputs[k] = {
            "ks": ks_distance(ref.stats[k], new.stats[k]),
            "median_ref": float(np.nanmedian(ref.stats[k])),
            "median_new": float(np.nanmedian(new.stats[k])),
            "threshold": float(th.ks_input.get(k, 1.0)),
        }
    auc, p_auc = domain_classifier_auc(ref.embeddings, new.embeddings, n_perm=n_perm_auc, seed=seed)
    mmd, p_mmd = mmd_test(ref.embeddings, new.embeddings, n_perm=n_perm_mmd, seed=seed)
    rf_ref = float((ref.scores >= 0.5).mean())
    rf_new = float((new.scores >= 0.5).mean())
    report = {
        "n_ref": len(ref),
        "n_new": len(new),
        "inputs": inputs,
        "representation": {
            "domain_auc": auc,
            "domain_auc_p": p_auc,
            "domain_auc_threshold": th.auc,
            "mmd2": mmd,
            "mmd2_p": p_mmd,
            "mmd2_threshold": th.mmd,
        },
        "scores": {
            "ks": ks_distance(ref.scores, new.scores),
            "ks_threshold": th.score_ks,
            "real_frac_ref": rf_ref,
            "real_frac_new": rf_new,
            "real_frac_threshold": th.real_frac,
            "median_ref": float(np.median(ref.scores)),
            "median_new": float(np.median(new.scores)),
        },
        "thresholds": th.to_dict(),
    }
    ref_w = ref.waves if ref_waves is None else np.asarray(ref_waves, np.float64)
    new_w = new.waves if new_waves is None else np.asarray(new_waves, np.float64)
    if ref_w is not None and new_w is not None:
        report["wavelengths"] = wave_spikes(ref_w, new_w) | {
            "n_ref": int(len(ref_w)),
            "n_new": int(len(new_w)),
            "threshold": th.wave_spike_z if math.isfinite(th.wave_spike_z) else None,
        }
    report["verdict"], report["reasons"] = judge(report, th)
    return report


def judge(report: dict, th: Thresholds) -> tuple[str, list[str]]:
    """(verdict, reasons) from a report's statistics and (already scaled) thresholds."""
    reasons: list[str] = []
    far = False
    for k, v in report["inputs"].items():
        if v["ks"] >= v["threshold"]:
            reasons.append(
                f"{k}: KS {v['ks']:.3f} >= {v['threshold']:.3f} (median "
                f"{v['median_ref']:.3g} -> {v['median_new']:.3g})"
            )
            far |= v["ks"] >= max(th.ks_far, 2 * v["threshold"])
    r = report["representation"]
    if r["domain_auc"] >= r["domain_auc_threshold"] and r["domain_auc_p"] < th.alpha:
        reasons.append(
            f"domain classifier AUC {r['domain_auc']:.3f} >= {r['domain_auc_threshold']:.3f} "
            f"(p = {r['domain_auc_p']:.3f})"
        )
        far |= r["domain_auc"] >= th.auc_far
    if r["mmd2"] >= r["mmd2_threshold"] and r["mmd2_p"] < th.alpha:
        reasons.append(
            f"embedding MMD^2 {r['mmd2']:.4f} >= {r['mmd2_threshold']:.4f} (p = {r['mmd2_p']:.3f})"
        )
    s = report["scores"]
    if s["ks"] >= s["ks_threshold"]:
        reasons.append(f"score distribution: KS {s['ks']:.3f} >= {s['ks_threshold']:.3f}")
    d = abs(s["real_frac_new"] - s["real_frac_ref"])
    if d >= s["real_frac_threshold"]:
        reasons.append(
            f"predicted-real fraction {s['real_frac_ref']:.3f} -> {s['real_frac_new']:.3f}"
        )
    w = report.get("wavelengths")
    if w and w.get("threshold") is not None and w["z"] >= w["threshold"]:
        reasons.append(
            f"line wavelengths: a spike at {w['wave']:.0f} A (z {w['z']:.1f} >= "
            f"{w['threshold']:.1f}) the training data did not have: a sky line or artefact?"
        )
    if not reasons:
        return "in distribution", []
    return ("far" if far else "shifted"), reasons


__all__ = [
    "DEFAULT_THRESHOLDS",
    "INPUT_STATS",
    "MIN_SAMPLE",
    "VERDICTS",
    "Sample",
    "Thresholds",
    "compare",
    "describe",
    "domain_classifier_auc",
    "input_statistics",
    "judge",
    "ks_distance",
    "mmd_test",
    "wave_spikes",
]
