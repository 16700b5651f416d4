"""Stream a whole catalogue through the model with MC-dropout uncertainty.

Reads (N, 5, 9, 100) cutouts from any sliceable array (numpy, np.memmap float16 from the
cutout store, h5py dataset) batch by batch and casts each batch to float32, so memory is
bounded by ``batch_size`` whatever N is. Per candidate it returns, all float32:

    prob            mean over T dropout samples of sigmoid(logit_t / temperature): P(real)
                    at even odds in the candidate's S/N regime (evaluation.fit_calibration);
                    evaluation.apply_prior_shift turns it into P at the labels' class mix
    entropy         H[prob], total predictive entropy (nats)
    expected_entropy  mean_t H[p_t] (aleatoric part)
    bald            entropy - expected_entropy: mutual information between the label and
                    the weights, the BALD acquisition score (epistemic part)
    std             standard deviation of p_t over the T samples
    masked_frac     fraction of non-finite input pixels (set to 0 by the NaN policy)

With ``kinds=True`` (models with an artefact-type head only) the result also holds
``kind_prob`` (B, K): the head's softmax over ``model.config.artefact_kinds``, deterministic
(no dropout), from the same features. The default output, and the work done for it, is
unchanged.

Dropout masks come from a seeded generator, so scores are reproducible. The trunk runs once
per batch and only the head is sampled T times (see model.py), which is why T=10 costs
little more than T=1. On the CPU the normalisation runs in numpy (selection instead of
``nanmedian``) and the trunk through a BatchNorm-folded channels_last copy in chunks of 128
rows (``bench/bench_scoring.py``: several times faster); ``score_batch_reference`` keeps the
plain torch path (used on GPUs), which gives the same scores to float rounding.
"""

from __future__ import annotations

import itertools
import weakref
from collections.abc import Iterator

import numpy as np
import torch

from mlcore.cnn.data import iter_batches, normalise, normalise_numpy, normalise_torch, spec_windows
from mlcore.cnn.model import EnsembleCNN, LineCNN, inference_copy
from mlcore.cnn.training import pick_device
from mlcore.survey import LINE_COL

SCORE_FIELDS = ("prob", "entropy", "expected_entropy", "bald", "std", "masked_frac")
KIND_FIELD = "kind_prob"  # (N, K), with kinds=True
# Precision of the convolutional trunks on the CPU. bfloat16 runs them on AMX / AVX512-BF16
# (about 2x faster there); the normalisation, the dropout draws and the head stay float32,
# so only the features are rounded (probabilities move by about 1e-3: bench_scoring.py).
PRECISIONS = ("float32", "bfloat16")


def _binary_entropy(p: torch.Tensor) -> torch.Tensor:
    p = p.clamp(1e-7, 1 - 1e-7)
    return -(p * p.log() + (1 - p) * (1 - p).log())


_CPU_CHUNK = 128  # rows per normalise + trunk call on the CPU: they stay in cache
_FAST_CPU: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _fingerprint(model: torch.nn.Module) -> tuple:
    """Changes whenever any weight or buffer is replaced or modified in place (None for
    inference-mode tensors, which have no version counter: then no caching)."""
    try:
        return tuple(
            (t.data_ptr(), t._version) for t in itertools.chain(model.parameters(), model.buffers())
        )
    except RuntimeError:
        return None


def cpu_bfloat16_native() -> bool:
    """True when oneDNN runs bfloat16 convolutions natively on this CPU (AVX512-BF16 or
    AMX); elsewhere bfloat16 would be emulated and slower than float32."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def check_precision(precision: str, device: torch.device | str = "cpu") -> None:
    """Refuse an unknown precision, or bfloat16 on a CPU without native support."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision == "bfloat16" and torch.device(device).type == "cpu" and not cpu_bfloat16_native():
        raise ValueError("this CPU has no native bfloat16 (AVX512-BF16 or AMX): score with float32")


def fast_cpu_model(model: torch.nn.Module, precision: str = "float32") -> torch.nn.Module:
    """``model.inference_copy`` (BatchNorm folded, channels_last), in ``precision``,
    cached per model and precision until the model's weights change."""
    key = _fingerprint(model)
    hits = _FAST_CPU.get(model)
    if hits is None or key is None or hits[0] != key:
        hits = (key, {})
        _FAST_CPU[model] = hits
    if precision not in hits[1]:
        copy = inference_copy(model)
        hits[1][precision] = copy if precision == "float32" else copy.to(torch.bfloat16)
    return hits[1][precision]


def _logits_cpu(model, raw: np.ndarray, s, n_samples, generator, precision="float32", feats=None):
    """-> ((T, B) logits, (B,) masked_frac) on the CPU. Normalisation and trunk run in
    chunks of ``_CPU_CHUNK`` rows (numpy selection, then the folded channels_last copy), so
    a chunk's pixels and activations stay in cache; then the head's T dropout samples run
    for the whole batch at once, so the generator is drawn exactly as ``forward_mc`` does.
    With ``precision="bfloat16"`` only the trunks run in bfloat16; features come back as
    float32 before the head. ``feats``: a list that receives the (B, n_feat) features."""
    fast = fast_cpu_model(model, precision)
    dtype = torch.bfloat16 if precision == "bfloat16" else torch.float32
    feats_out, feats, masked = feats, [], []
    for a in range(0, len(raw), _CPU_CHUNK):
        z, m = normalise_numpy(raw[a : a + _CPU_CHUNK])
        x = torch.from_numpy(z).to(dtype).contiguous(memory_format=torch.channels_last)
        sa = None if s is None else s[a : a + _CPU_CHUNK].to(dtype)
        feats.append(fast.features(x, sa).float())
        masked.append(torch.from_numpy(m))
    if not feats:  # an empty batch
        z, m = normalise_numpy(raw)
        feats, masked = [model.features(torch.from_numpy(z), s)], [torch.from_numpy(m)]
    f, masked_frac = torch.cat(feats), torch.cat(masked)
    if feats_out is not None:
        feats_out.append(f)
    if n_samples <= 1 or model.config.dropout == 0.0:
        return model.mc_from_features(f, n_samples, generator), masked_frac
    nets = model.members if isinstance(model, EnsembleCNN) else [model]
    parts = torch.split(f, [m.feature_dim for m in nets], dim=1)
    logits = [_mc_head(m, fk, n_samples, generator) for m, fk in zip(nets, parts, strict=True)]
    return torch.cat(logits), masked_frac


@torch.no_grad()
def _mc_head(net: LineCNN, f: torch.Tensor, n_samples: int, generator) -> torch.Tensor:
    """``net.mc_from_features`` with the same draws from ``generator`` and the same values
    (up to the sign of zeros), cheaper: the uniforms are drawn sample by sample and
    ``_CPU_CHUNK`` rows at a time into reused buffers (the same stream: a CPU generator
    fills tensors element by element, in order), so each piece stays in cache and nothing
    is allocated per piece, and each buffer of uniforms is turned into the masked input in
    place (``lt_`` gives 1.0 / 0.0, then a multiply: ten times cheaper than ``where`` on a
    bool mask); no (T, B, n_feat) tensor is ever made."""
    B, n_f = f.shape
    hidden = net.config.hidden
    keep = 1.0 - net.config.dropout
    scale = torch.ones((), dtype=torch.bool) / keep  # the kept units' factor, as masks have it
    fs = f * scale
    h = torch.empty(n_samples, B, hidden, dtype=f.dtype)
    c = min(_CPU_CHUNK, B)
    r = torch.empty(c, n_f)
    w1t, b1 = net.fc1.weight.t(), net.fc1.bias
    for t in range(n_samples):  # the order forward_mc draws m1 in: sample, row, unit
        for a in range(0, B, _CPU_CHUNK):
            n = min(_CPU_CHUNK, B - a)
            x = r[:n].uniform_(generator=generator)
            x.lt_(keep).mul_(fs[a : a + n])  # kept: f / keep, dropped: 0
            torch.addmm(b1, x, w1t, out=h[t, a : a + n])  # fc1
    h.relu_()
    r2 = torch.empty(c, hidden)
    for t in range(n_samples):  # then m2, in the same order
        for a in range(0, B, _CPU_CHUNK):
            n = min(_CPU_CHUNK, B - a)
            m2 = r2[:n].uniform_(generator=generator)
            h[t, a : a + n].mul_(m2.lt_(keep).mul_(scale))  # m2 = (u < keep) / keep
    return net.fc2(h).squeeze(-1)


def _check_kinds(model, kinds: bool) -> None:
    if kinds and not model.has_kind_head:
        raise ValueError(
            "kinds=True: this model has no artefact-type head (it was trained without "
            "artefact-type answers); score without kinds"
        )


@torch.inference_mode()
def score_batch(
    model: LineCNN,
    raw: np.ndarray | torch.Tensor,
    *,
    spec: np.ndarray | torch.Tensor | None = None,
    n_samples: int = 10,
    generator: torch.Generator | None = None,
    calibrated: bool = True,
    precision: str = "float32",
    kinds: bool = False,
) -> dict[str, np.ndarray]:
    """Score one batch of raw (B, 5, 9, 100) cutouts (any float dtype, NaNs allowed).

    On the CPU the cutouts are normalised in numpy (:func:`mlcore.cnn.data.normalise_numpy`)
    and the network runs as :func:`fast_cpu_model`; in float32 the values equal
    :func:`score_batch_reference`'s to float rounding, with the same dropout masks.
    ``precision="bfloat16"`` (CPUs with native bfloat16 only) runs the trunks in bfloat16.
    On a GPU the reference path runs under float16 autocast whatever ``precision`` says.
    ``kinds``: also return ``kind_prob`` (models with an artefact-type head only).
    """
    device = next(model.parameters()).device
    check_precision(precision, device)
    _check_kinds(model, kinds)
    if device.type != "cpu":
        return score_batch_reference(
            model, raw, spec=spec, n_samples=n_samples, generator=generator,
            calibrated=calibrated, kinds=kinds,
        )  # fmt: skip
    model.eval()
    if torch.is_tensor(raw):
        raw = raw.detach().cpu().numpy() if raw.dtype != torch.bfloat16 else raw.float().numpy()
    s = None if spec is None else torch.as_tensor(np.asarray(spec, np.float32))
    temp = model.temperature.float() if calibrated else torch.ones(())
    if not kinds:
        logits, masked = _logits_cpu(model, np.asarray(raw), s, n_samples, generator, precision)
        return _summarise(logits, temp, masked)
    feats: list[torch.Tensor] = []
    logits, masked = _logits_cpu(model, np.asarray(raw), s, n_samples, generator, precision, feats)
    out = _summarise(logits, temp, masked)
    out[KIND_FIELD] = model.kind_probs_from_features(feats[0]).float().numpy()
    return out


def _summarise(logits: torch.Tensor, temp: torch.Tensor, masked: torch.Tensor) -> dict:
    p_t = torch.sigmoid(logits.float() / temp)  # (T, B)
    prob = p_t.mean(0)
    ent = _binary_entropy(prob)
    exp_ent = _binary_entropy(p_t).mean(0)
    out = {
        "prob": prob,
        "entropy": ent,
        "expected_entropy": exp_ent,
        "bald": (ent - exp_ent).clamp_min(0.0),
        "std": p_t.std(0, unbiased=False),
        "masked_frac": masked,
    }
    return {k: v.float().cpu().numpy() for k, v in out.items()}


@torch.inference_mode()
def score_batch_reference(
    model: LineCNN,
    raw: np.ndarray | torch.Tensor,
    *,
    spec: np.ndarray | torch.Tensor | None = None,
    n_samples: int = 10,
    generator: torch.Generator | None = None,
    calibrated: bool = True,
    precision: str = "float32",
    kinds: bool = False,
) -> dict[str, np.ndarray]:
    """The straightforward path, used on GPUs and as the reference on the CPU: torch
    normalisation (``nanmedian``) on the model's device, then ``model.forward_mc``.
    On a GPU it runs under float16 autocast; on the CPU under bfloat16 autocast when
    ``precision="bfloat16"``."""
    device = next(model.parameters()).device
    check_precision(precision, device)
    _check_kinds(model, kinds)
    on_cuda = device.type == "cuda"
    model.eval()
    if not torch.is_tensor(raw):
        raw = np.asarray(raw)
        if raw.dtype not in (np.float16, np.float32):
            raw = raw.astype(np.float32)
        raw = torch.from_numpy(np.array(raw, copy=True))  # own, writable copy of the batch
    # float16 batches travel as float16 (half the host->GPU bytes); the cast to float32
    # happens on the device inside normalise_torch()
    x, masked = normalise_torch(raw.to(device, non_blocking=True))  # (B, 5, 9, 100) float32
    if on_cuda:
        x = x.contiguous(memory_format=torch.channels_last)
    s = None if spec is None else torch.as_tensor(np.asarray(spec, np.float32)).to(device)
    temp = model.temperature.float() if calibrated else torch.ones((), device=device)
    cpu_bf16 = not on_cuda and precision == "bfloat16"
    with torch.autocast(
        device.type, dtype=torch.bfloat16 if cpu_bf16 else None, enabled=on_cuda or cpu_bf16
    ):
        if not kinds:
            logits = model.forward_mc(x, s, n_samples=n_samples, generator=generator)  # (T, B)
        else:  # the same draws as forward_mc: features once, then the sampled head
            f = model.features(x, s)
            logits = model.mc_from_features(f, n_samples, generator)
            kind_prob = model.kind_probs_from_features(f.float())
    out = _summarise(logits, temp, masked)
    if kinds:
        out[KIND_FIELD] = kind_prob.float().cpu().numpy()
    return out


@torch.inference_mode()
def embed_batch(model: LineCNN, raw: np.ndarray, *, spec: np.ndarray | None = None) -> np.ndarray:
    """(B, n_feat) float32 ``LineCNN.features`` of raw (B, 5, 9, 100) cutouts, normalised
    exactly as scoring does (NaN pixels -> 0): the embedding k-center diversity spreads a
    batch over. ``spec``: (B, 2, spec_len) windows for models with a 1D branch."""
    device = next(model.parameters()).device
    model.eval()
    x, _ = normalise(torch.from_numpy(np.array(raw, dtype=np.float32)).to(device))
    s = None if spec is None else torch.as_tensor(np.asarray(spec, np.float32)).to(device)
    return model.features(x, s).float().cpu().numpy()


def batch_generator(device, seed: int, start: int) -> torch.Generator:
    """The dropout generator of the batch that starts at catalogue row ``start``: anything
    that scores a catalogue in the same batches with this gets :func:`score`'s values."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + start)


def iter_scores(
    model: LineCNN,
    cutouts,
    *,
    spec=None,
    spec1d=None,
    spec1d_err=None,
    wave=None,
    n_samples: int = 10,
    batch_size: int = 4096,
    seed: int = 0,
    calibrated: bool = True,
    start: int = 0,
    stop: int | None = None,
    precision: str = "float32",
    kinds: bool = False,
) -> Iterator[tuple[int, int, dict[str, np.ndarray]]]:
    """Yield (a, b, scores of rows a:b) over rows ``start:stop`` of ``cutouts``.

    For models with a 1D branch pass the line ``wave`` (N,) and either ``spec`` (N, 2, 1036:
    spectrum and error stacked, the cutout store's layout) or ``spec1d`` and ``spec1d_err``
    (N, 1036 each); the windows are cut per batch. Chunked Celery scoring can call this
    with its own start/stop; the generator is seeded per (seed, a) so a row's scores do not
    depend on how the catalogue was chunked, only on the batch boundaries. ``kinds``: also
    ``kind_prob`` (models with an artefact-type head).
    """
    device = next(model.parameters()).device
    _check_kinds(model, kinds)
    stop = len(cutouts) if stop is None else stop
    half = model.config.spec_len // 2
    for a0, b0 in iter_batches(stop - start, batch_size):
        a, b = start + a0, start + b0
        win = None
        if model.config.spec_len > 0:
            if wave is None or (spec is None and (spec1d is None or spec1d_err is None)):
                raise ValueError("this model has a 1D branch: pass wave and spec (or spec1d+err)")
            if spec is not None:
                sp = np.asarray(spec[a:b])  # float16 stays: spec_windows widens the window only
                flux, err = sp[:, 0], sp[:, 1]
            else:
                flux, err = spec1d[a:b], spec1d_err[a:b]
            win = spec_windows(flux, err, np.asarray(wave[a:b]), half)
        gen = batch_generator(device, seed, a)
        yield (
            a,
            b,
            score_batch(
                model,
                cutouts[a:b],
                spec=win,
                n_samples=n_samples,
                generator=gen,
                calibrated=calibrated,
                precision=precision,
                kinds=kinds,
            ),
        )


def score(
    model: LineCNN,
    cutouts,
    *,
    spec=None,
    spec1d=None,
    spec1d_err=None,
    wave=None,
    n_samples: int = 10,
    batch_size: int = 4096,
    seed: int = 0,
    calibrated: bool = True,
    out: dict[str, np.ndarray] | None = None,
    precision: str = "float32",
    kinds: bool = False,
) -> dict[str, np.ndarray]:
    """Score every row of ``cutouts`` -> {field: (N,) float32} for :data:`SCORE_FIELDS`
    (with ``kinds``, also ``kind_prob`` (N, K) for models with an artefact-type head).

    ``out`` may hold preallocated (N,) arrays, e.g. ``np.lib.format.open_memmap`` files, to
    keep even the outputs off the heap for very large catalogues.
    """
    n = len(cutouts)
    _check_kinds(model, kinds)
    if out is None:
        out = {k: np.empty(n, np.float32) for k in SCORE_FIELDS}
    fields = SCORE_FIELDS
    if kinds:
        fields = (*SCORE_FIELDS, KIND_FIELD)
        if KIND_FIELD not in out:
            out[KIND_FIELD] = np.empty((n, len(model.config.artefact_kinds)), np.float32)
    for a, b, res in iter_scores(
        model,
        cutouts,
        spec=spec,
        spec1d=spec1d,
        spec1d_err=spec1d_err,
        wave=wave,
        n_samples=n_samples,
        batch_size=batch_size,
        seed=seed,
        calibrated=calibrated,
        precision=precision,
        kinds=kinds,
    ):
        for k in fields:
            out[k][a:b] = res[k]
    return out


def score_store(model: LineCNN, store, wave=None, **kw) -> dict[str, np.ndarray]:
    """Score a cutout-store batch (anything with ``cutouts``, ``spec``, ``im_wave`` arrays).

    ``wave`` defaults to the wavelength of the nominal line column of each cutout; pass the
    catalogue's ``wave`` when the Candidate rows are at hand.
    """
    if wave is None and model.config.spec_len > 0:
        wave = np.asarray(store.im_wave[:, LINE_COL], np.float64)  # (N,), small
    return score(model, store.cutouts, spec=store.spec, wave=wave, **kw)


def load_for_scoring(path, device: str | None = None) -> LineCNN:
    """Load a checkpoint onto CUDA when available (else CPU), in eval mode."""
    from mlcore.cnn.card import load_checkpoint

    dev = pick_device(device)
    model = load_checkpoint(path, device=str(dev))
    if dev.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    return model
