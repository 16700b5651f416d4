"""Training loop for :class:`~mlcore.cnn.model.LineCNN`, readable top to bottom.

Array-based: ``train(cutouts, targets, sn)`` takes (N, 5, 9, 100) cutouts (numpy array or
memmap, float16/32), length-N targets in [0, 1] (ground truth 0/1, or aggregated volunteer
posteriors as soft targets) and the catalogue ``sn``; optional per-sample ``weights`` carry
label confidence. Same code on CUDA and CPU: AMP and channels_last switch on only on CUDA.

Models built with ``CNNConfig.artefact_kinds`` also learn the artefact type from
``kind_targets`` (N,) kind indices (-1: no answer; join them by detectid with
:func:`mlcore.cnn.artefacts.join_kind_targets`) weighted by ``kind_weights`` (the answers'
shares): the loss adds ``TrainConfig.kind_loss_weight`` times their weighted cross-entropy.
Early stopping and calibration still use the real/not-real loss alone.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from mlcore.cnn.artefacts import NO_KIND, check_kind_targets, kind_loss, kind_report
from mlcore.cnn.augment import RawAugment, augment_raw
from mlcore.cnn.data import (
    augment,
    balanced_weights,
    iter_batches,
    normalise,
    regime_index,
    stratified_split,
)
from mlcore.cnn.evaluation import balanced_accuracy, fit_calibration
from mlcore.cnn.model import CNNConfig, EnsembleCNN, LineCNN, count_parameters

# Progress goes to this logger (INFO): a worker's log, a command's stderr, or nowhere.
logger = logging.getLogger(__name__)

KEEP = ("best", "last")  # TrainConfig.keep


@dataclass
class TrainConfig:
    epochs: int = 30  # upper bound; early stopping usually ends sooner
    batch_size: int = 256
    lr: float = 3e-3
    weight_decay: float = 1e-4
    # Epochs without a better validation loss before stopping, counted from the middle of
    # the one-cycle schedule at the earliest: in its first half the learning rate is high
    # and the validation loss wanders (bench/RESULTS.md, learning curve: stopping there cost
    # 2 points of high-S/N balanced accuracy at 10k labels).
    patience: int = 5
    # Which weights to keep: "best" (lowest validation loss) or "last" (the end of the
    # one-cycle schedule, or where early stopping ended it).
    keep: str = "best"
    min_epoch_samples: int = 8192  # tiny sets: an "epoch" cycles the data to this many
    val_frac: float = 0.15  # used when no val_idx is given
    seed: int = 0
    max_shift: int = 2  # px (2 A each) of random wavelength shift
    # 0: shifts uniform on -max_shift..max_shift (the recipe before bench_augment); > 0:
    # round(N(0, shift_sigma_px)) clipped to +-max_shift. 0.491 px is the line finder's
    # centroid error for real lines at S/N 4.8-5.5 (bench/centroid.json)
    shift_sigma_px: float = 0.491
    flip_p: float = 0.5  # probability of a flip along the spatial axis
    # Instrument-variation augmentations on the raw cutouts before normalisation
    # (mlcore.cnn.augment.RawAugment; 0 = off; bench/bench_augment.py measures each): noise
    # level x U(1, aug_noise_max), correlated noise, PSF / trace blur, fibre throughput
    # scatter, sky residuals away from the line, per-fibre wavelength calibration offsets
    # (px), cosmic-ray hits per cutout. On by default: only the PSF blur and the throughput
    # scatter, which held up on the shifted scenarios without costing in-domain accuracy
    # (docs/shift.md, "Robustness training"); the others did not.
    aug_noise_max: float = 0.0
    aug_corr_noise: float = 0.0
    aug_psf: float = 1.5
    aug_throughput: float = 0.15
    aug_sky: float = 0.0
    aug_calib: float = 0.0
    aug_cosmic: float = 0.0
    balance: bool = True  # class-balanced loss within each S/N regime
    device: str | None = None  # None: CUDA when available, else CPU
    amp: bool = True  # mixed precision, CUDA only
    max_time_s: float | None = None  # wall-clock cap on the loop
    num_threads: int | None = None  # torch CPU threads; None leaves torch's default
    # >1: a deep ensemble of this many members (seeds seed, seed+1, ...) on one split;
    # members more than max(member_tolerance, 3 standard errors of the best one's)
    # below the best one's validation balanced accuracy are dropped (a member that failed
    # to train would otherwise poison BALD; bench_uncertainty saw one 16 points below the
    # rest). The standard-error term keeps a small validation set from dropping good ones.
    members: int = 1
    member_tolerance: float = 0.10
    # Factor on the artefact-type head's cross-entropy (models with CNNConfig.artefact_kinds
    # only): an auxiliary task, kept below the real/not-real loss so it cannot dominate.
    kind_loss_weight: float = 0.3
    # False (default): the artefact-type head learns on the hidden layer with its gradient
    # stopped there, so the real/not-real network trains exactly as it would without the
    # head (joint training cost it ~1 point of balanced accuracy, bench_artefact_head.py);
    # True: the head's loss also shapes the shared layers.
    kind_joint: bool = False

    def to_dict(self) -> dict:
        return asdict(self)

    def raw_augment(self) -> RawAugment:
        return RawAugment(
            noise_max=self.aug_noise_max,
            corr_noise=self.aug_corr_noise,
            psf=self.aug_psf,
            throughput=self.aug_throughput,
            sky=self.aug_sky,
            calib=self.aug_calib,
            cosmic=self.aug_cosmic,
        )


@dataclass
class TrainResult:
    model: LineCNN | EnsembleCNN
    history: list[dict] = field(default_factory=list)
    best_epoch: int = -1  # lowest validation loss
    kept_epoch: int = -1  # whose weights the model holds (TrainConfig.keep)
    train_time_s: float = 0.0
    train_idx: np.ndarray | None = None
    val_idx: np.ndarray | None = None
    val_logits: np.ndarray | None = None  # uncalibrated, best model
    temperature: float = 1.0
    prior_shift: tuple[float, float] = (0.0, 0.0)  # per regime (low, high); see model.py
    n_parameters: int = 0
    device: str = "cpu"
    members: list[dict] = field(default_factory=list)  # ensembles: one summary per member
    # artefact-type head on the validation rows with an answer (artefacts.kind_report);
    # None for models without the head
    kind_eval: dict | None = None


def pick_device(name: str | None = None) -> torch.device:
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int) -> None:
    np.random.seed(seed)
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)


def normalise_rows(cutouts, idx: np.ndarray, batch: int = 2048) -> torch.Tensor:
    """Normalised float16 cache of rows ``idx`` (sorted), read batch by batch from a memmap."""
    out = torch.empty((len(idx), *cutouts.shape[1:]), dtype=torch.float16)
    for a, b in iter_batches(len(idx), batch):
        raw = np.asarray(cutouts[idx[a:b]], dtype=np.float32)
        out[a:b] = normalise(torch.from_numpy(raw))[0].to(torch.float16)
    return out


@torch.no_grad()
def predict_kind_probs(
    model: LineCNN | EnsembleCNN,
    x_norm: torch.Tensor,
    spec: torch.Tensor | None = None,
    batch_size: int = 1024,
) -> np.ndarray:
    """(N, K) artefact-type probabilities (no dropout) for already-normalised inputs."""
    device = next(model.parameters()).device
    model.eval()
    out = []
    for a, b in iter_batches(len(x_norm), batch_size):
        x = x_norm[a:b].to(device).float()
        s = None if spec is None else spec[a:b].to(device).float()
        out.append(model.kind_probs_from_features(model.features(x, s)).cpu())
    k = len(model.config.artefact_kinds)
    return torch.cat(out).numpy() if out else np.zeros((0, k), np.float32)


def _kind_arrays(kind_targets, kind_weights, n: int, mcfg: CNNConfig):
    """-> (index (N,) int64, weight (N,) float32) or (None, None); checks they fit the model."""
    n_kinds = len(mcfg.artefact_kinds)
    if kind_targets is None:
        if n_kinds:
            raise ValueError("a model with an artefact-type head needs kind_targets (-1: none)")
        return None, None
    if not n_kinds:
        raise ValueError("kind_targets need a model with CNNConfig.artefact_kinds")
    index = np.asarray(kind_targets, np.int64)
    weight = (
        (index != NO_KIND).astype(np.float32)
        if kind_weights is None
        else np.asarray(kind_weights, np.float32)
    )
    check_kind_targets(index, weight, n, n_kinds)
    return index, np.where(index != NO_KIND, weight, 0.0).astype(np.float32)


@torch.no_grad()
def predict_logits(
    model: LineCNN,
    x_norm: torch.Tensor,
    spec: torch.Tensor | None = None,
    batch_size: int = 1024,
    device: torch.device | None = None,
) -> np.ndarray:
    """Deterministic (eval-mode) logits for already-normalised inputs -> (N,) float32."""
    device = device or next(model.parameters()).device
    model.eval()
    cl = torch.channels_last if device.type == "cuda" else torch.contiguous_format
    out = []
    for a, b in iter_batches(len(x_norm), batch_size):
        x = x_norm[a:b].to(device, non_blocking=True).float().contiguous(memory_format=cl)
        s = None if spec is None else spec[a:b].to(device).float()
        with torch.autocast(device.type, enabled=device.type == "cuda"):
            out.append(model(x, s).float().cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, np.float32)


def should_stop(epoch: int, best_epoch: int, cfg: TrainConfig) -> bool:
    """Early stopping after ``epoch`` (0-based): ``patience`` epochs without a better
    validation loss, counted from the schedule's midpoint at the earliest."""
    return epoch - max(best_epoch, cfg.epochs // 2) >= cfg.patience


def _calibrate(model, val_logits: np.ndarray, val_targets, val_sn) -> None:
    """Fit the temperature and the per-regime prior shift on validation (unweighted: the
    labels' own class mix) and store both in the model's buffers."""
    temperature, shift = fit_calibration(val_logits, np.asarray(val_targets, np.float32), val_sn)
    model.temperature.fill_(temperature)
    model.prior_shift.copy_(torch.as_tensor(shift, dtype=model.prior_shift.dtype))


def _weighted_bce(logits: torch.Tensor, t: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    bce = F.binary_cross_entropy_with_logits(logits, t, reduction="none")
    return (bce * w).sum() / w.sum().clamp_min(1e-8)  # a batch of zero-weight labels -> 0


def train(
    cutouts,
    targets: np.ndarray,
    sn: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    spec: np.ndarray | None = None,
    train_idx: np.ndarray | None = None,
    val_idx: np.ndarray | None = None,
    model_config: CNNConfig | None = None,
    config: TrainConfig | None = None,
    on_epoch: Callable[[dict, int], None] | None = None,
    init: LineCNN | EnsembleCNN | None = None,
    kind_targets: np.ndarray | None = None,
    kind_weights: np.ndarray | None = None,
) -> TrainResult:
    """Train a LineCNN (``config.members`` > 1: an :class:`EnsembleCNN` of them); see
    :func:`train_one` for the arguments. ``init``: fine-tune from this model's weights
    instead of a fresh start (each ensemble member from the matching member of an
    ensemble with at least as many, or every member from a single net)."""
    cfg = config or TrainConfig()
    if cfg.members < 1:
        raise ValueError(f"TrainConfig.members must be at least 1, not {cfg.members}")
    inits = _member_inits(init, cfg.members)
    kw = dict(
        weights=weights, spec=spec, model_config=model_config, kind_targets=kind_targets,
        kind_weights=kind_weights,
    )  # fmt: skip
    if cfg.members == 1:
        return train_one(cutouts, targets, sn, **kw, train_idx=train_idx, val_idx=val_idx,
                         config=cfg, on_epoch=on_epoch, init=inits[0])  # fmt: skip
    total = cfg.members * cfg.epochs
    results: list[TrainResult] = []
    for k in range(cfg.members):
        logger.info("ensemble member %d/%d (seed %d)", k + 1, cfg.members, cfg.seed + k)

        def member_epoch(rec: dict, _n: int, k: int = k) -> None:
            if on_epoch is not None:  # progress over the whole ensemble
                on_epoch({**rec, "epoch": k * cfg.epochs + rec["epoch"]}, total)

        res = train_one(
            cutouts, targets, sn, **kw, train_idx=train_idx, val_idx=val_idx,
            config=dataclasses.replace(cfg, seed=cfg.seed + k, members=1),
            on_epoch=member_epoch, init=inits[k],
        )  # fmt: skip
        train_idx, val_idx = res.train_idx, res.val_idx  # every member on the first's split
        results.append(res)
    out = _assemble(results, cfg, targets, sn)
    if out.model.has_kind_head and len(results) > 1:  # judge the averaged head, not one member
        index, _ = _kind_arrays(kind_targets, kind_weights, len(targets), out.model.config)
        va = out.val_idx
        s_va = None if out.model.config.spec_len == 0 else torch.as_tensor(
            np.asarray(spec[va], dtype=np.float32)
        )  # fmt: skip
        probs = predict_kind_probs(out.model, normalise_rows(cutouts, va), s_va)
        first = results[0].kind_eval or {}
        out.kind_eval = {
            **kind_report(probs, index[va], out.model.config.artefact_kinds),
            **{k: first[k] for k in ("n_train_answers", "loss_weight") if k in first},
        }
    return out


def _member_inits(init, members: int) -> list:
    if init is None:
        return [None] * members
    if isinstance(init, EnsembleCNN):
        if len(init.members) < members:
            raise ValueError(
                f"cannot fine-tune {members} ensemble members from an ensemble of "
                f"{len(init.members)}: train from scratch, or with at most that many members"
            )
        return list(init.members[:members])
    return [init] * members


def _assemble(results: list[TrainResult], cfg: TrainConfig, targets, sn) -> TrainResult:
    """Members -> one EnsembleCNN with a temperature fitted on its mean validation logit."""
    first = results[0]
    y = np.asarray(targets, np.float32)[first.val_idx] >= 0.5
    baccs = [balanced_accuracy(y, r.val_logits >= 0) for r in results]
    if np.isfinite(baccs).all():
        best = max(baccs)
        allowed = max(cfg.member_tolerance, 3 * _bacc_standard_error(best, y))
        keep = [b >= best - allowed for b in baccs]
    else:  # validation holds one class only: nothing to judge members by, keep them all
        keep = [True] * len(results)
    summary = [
        {"seed": cfg.seed + k, "best_epoch": r.best_epoch, "kept_epoch": r.kept_epoch,
         "val_bacc": round(float(b), 4), "kept": bool(kk), "train_time_s": round(r.train_time_s, 1)}
        for k, (r, b, kk) in enumerate(zip(results, baccs, keep, strict=True))
    ]  # fmt: skip
    for s in summary:
        if not s["kept"]:
            logger.warning(
                "member seed %s dropped: validation balanced accuracy %s is more than %.3f "
                "below the best member's %.4f", s["seed"], s["val_bacc"], allowed, best,
            )  # fmt: skip
    kept = [r for r, kk in zip(results, keep, strict=True) if kk]
    if len(kept) == 1:  # one survivor: it is the model, with its own calibration
        model, val_logits = kept[0].model, kept[0].val_logits
    else:
        model = EnsembleCNN([r.model for r in kept]).to(first.device)
        val_logits = np.mean([r.val_logits for r in kept], axis=0).astype(np.float32)
        va = first.val_idx
        _calibrate(model, val_logits, np.asarray(targets)[va], np.asarray(sn)[va])
    model.eval()
    history = [{**h, "member": k} for k, r in enumerate(results) for h in r.history]
    return TrainResult(
        model=model,
        history=history,
        best_epoch=first.best_epoch,
        kept_epoch=first.kept_epoch,
        train_time_s=sum(r.train_time_s for r in results),
        train_idx=first.train_idx,
        val_idx=first.val_idx,
        val_logits=val_logits,
        temperature=float(model.temperature),
        prior_shift=tuple(model.prior_shift.tolist()),
        n_parameters=count_parameters(model),
        device=first.device,
        members=summary,
        kind_eval=kept[0].kind_eval if len(kept) == 1 else None,
    )


def _bacc_standard_error(bacc: float, y: np.ndarray) -> float:
    """Binomial standard error of a balanced accuracy ``bacc`` on labels ``y`` (each class
    taken as scoring ``bacc``); 0.5 when a class is missing (nothing can be judged)."""
    n1, n0 = int(y.sum()), int((~y).sum())
    if not n1 or not n0:
        return 0.5
    v = bacc * (1 - bacc)
    return 0.5 * math.sqrt(v / n1 + v / n0)


def _load_init(model: LineCNN, init: LineCNN, mcfg: CNNConfig) -> None:
    """Start from ``init``'s weights. The artefact-type head may come or go (answers reach
    the minimum between two retrains): a new head starts fresh, a dropped one is left out."""

    def body(c: CNNConfig) -> dict:
        return {**c.to_dict(), "artefact_kinds": ()}

    if body(init.config) != body(mcfg):
        raise ValueError(
            "cannot fine-tune: the starting model's architecture "
            f"{init.config.to_dict()} differs from this training's {mcfg.to_dict()}"
        )
    same_head = init.config.artefact_kinds == mcfg.artefact_kinds
    state = {
        k: v.detach().cpu()
        for k, v in init.state_dict().items()
        if same_head or not k.startswith("fc_kind.")
    }
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or any(not k.startswith("fc_kind.") for k in missing):
        raise ValueError(f"cannot fine-tune: weights missing {missing}, unexpected {unexpected}")


def train_one(
    cutouts,
    targets: np.ndarray,
    sn: np.ndarray,
    *,
    weights: np.ndarray | None = None,
    spec: np.ndarray | None = None,
    train_idx: np.ndarray | None = None,
    val_idx: np.ndarray | None = None,
    model_config: CNNConfig | None = None,
    config: TrainConfig | None = None,
    on_epoch: Callable[[dict, int], None] | None = None,
    init: LineCNN | None = None,
    kind_targets: np.ndarray | None = None,
    kind_weights: np.ndarray | None = None,
) -> TrainResult:
    """Train a LineCNN; early-stop on validation loss; fit a temperature on validation.

    ``cutouts`` (N, 5, 9, 100) raw (un-normalised) array-like; ``targets`` (N,) in [0, 1];
    ``sn`` (N,); ``weights`` (N,) optional label-confidence weights (multiplied into the
    class-balance weights); ``spec`` (N, 2, L) optional 1D windows from
    :func:`mlcore.cnn.data.spec_windows` (needs ``model_config.spec_len == L``).
    Rows outside ``train_idx`` and ``val_idx`` are never read, so a test set can live in the
    same array. Without indices the rows are split stratified by regime and class.
    ``init``: start from this net's weights (fine-tuning; same architecture), with the same
    schedule; its temperature and prior shift are fitted again at the end.
    ``kind_targets`` (N,) int, -1 where a row has no artefact-type answer, and optional
    ``kind_weights`` (N,) (the answers' shares; default 1): needed exactly when
    ``model_config.artefact_kinds`` is set; build them by detectid with
    :func:`mlcore.cnn.artefacts.join_kind_targets`.
    """
    cfg = config or TrainConfig()
    if cfg.keep not in KEEP:
        raise ValueError(f"TrainConfig.keep must be 'best' or 'last', not {cfg.keep!r}")
    mcfg = model_config or CNNConfig()
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    on_cuda = device.type == "cuda"
    cl = torch.channels_last if on_cuda else torch.contiguous_format

    targets = np.clip(np.asarray(targets, dtype=np.float32), 0.0, 1.0)  # NaN stays NaN
    sn = np.asarray(sn, dtype=np.float32)
    kind_idx, kind_w = _kind_arrays(kind_targets, kind_weights, len(targets), mcfg)
    if train_idx is None or val_idx is None:
        lab = np.flatnonzero(np.isfinite(targets))  # unlabelled rows (NaN) are left out
        strata = regime_index(sn[lab]) * 2 + (targets[lab] >= 0.5)
        val_idx, train_idx = (lab[i] for i in stratified_split(strata, (cfg.val_frac,), cfg.seed))
    train_idx, val_idx = np.sort(train_idx), np.sort(val_idx)
    used = np.concatenate([train_idx, val_idx])
    if not np.isfinite(targets[used]).all():
        raise ValueError("targets must be finite on the train and validation rows")

    def sample_weights(idx: np.ndarray) -> torch.Tensor:
        w = balanced_weights(targets[idx], sn[idx]) if cfg.balance else np.ones(len(idx))
        if weights is not None:
            w = w * np.asarray(weights, dtype=np.float32)[idx]
        return torch.as_tensor(w, dtype=torch.float32)

    t0 = time.perf_counter()
    raw_aug = cfg.raw_augment()  # validates the strengths
    if raw_aug.active():  # augmented in raw units, so every batch is normalised afresh
        x_tr = torch.as_tensor(np.asarray(cutouts[train_idx], dtype=np.float16))
        x_va = normalise_rows(cutouts, val_idx)
    else:
        x_tr, x_va = normalise_rows(cutouts, train_idx), normalise_rows(cutouts, val_idx)
    s_tr = s_va = None
    if mcfg.spec_len > 0:
        if spec is None:
            raise ValueError("model_config.spec_len > 0 needs spec windows")
        s_tr = torch.as_tensor(np.asarray(spec[train_idx], dtype=np.float32))
        s_va = torch.as_tensor(np.asarray(spec[val_idx], dtype=np.float32))
    if on_cuda and (x_tr.numel() + x_va.numel()) * 2 < 0.25 * torch.cuda.mem_get_info()[0]:
        x_tr, x_va = x_tr.to(device), x_va.to(device)  # whole float16 cache on the GPU
    t_tr, t_va = torch.as_tensor(targets[train_idx]), torch.as_tensor(targets[val_idx])
    w_tr, w_va = sample_weights(train_idx), sample_weights(val_idx)
    reg_va = regime_index(sn[val_idx])
    with_kind = kind_idx is not None
    if with_kind:
        k_tr, kw_tr = torch.as_tensor(kind_idx[train_idx]), torch.as_tensor(kind_w[train_idx])
        logger.info(
            "artefact-type head: %d train / %d validation rows with an answer",
            int((kind_idx[train_idx] != NO_KIND).sum()), int((kind_idx[val_idx] != NO_KIND).sum()),
        )  # fmt: skip

    model = LineCNN(mcfg)
    if init is not None:
        _load_init(model, init, mcfg)
    model = model.to(device).to(memory_format=cl)
    n_params = count_parameters(model)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    n_tr = len(train_idx)
    epoch_len = max(n_tr, cfg.min_epoch_samples)
    steps_per_epoch = math.ceil(epoch_len / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
    scaler = torch.amp.GradScaler("cuda", enabled=on_cuda and cfg.amp)
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    logger.info("training %d params on %s: %d train / %d val", n_params, device, n_tr, len(val_idx))

    best = (math.inf, -1, None)
    history = []
    for epoch in range(cfg.epochs):
        model.train()
        n_cycles = math.ceil(epoch_len / n_tr)
        order = np.concatenate([rng.permutation(n_tr) for _ in range(n_cycles)])[:epoch_len]
        tot, seen = 0.0, 0
        for a, b in iter_batches(epoch_len, cfg.batch_size):
            bi = torch.as_tensor(order[a:b], device=x_tr.device)
            x = x_tr[bi].to(device, non_blocking=True).float()
            s = None if s_tr is None else s_tr[bi.cpu()].to(device)
            if raw_aug.active():
                x = normalise(augment_raw(x, raw_aug, gen))[0]
            x, s = augment(
                x, cfg.max_shift, cfg.flip_p, gen, spec=s, shift_sigma=cfg.shift_sigma_px
            )
            x = x.contiguous(memory_format=cl)
            t, w = t_tr[bi.cpu()].to(device), w_tr[bi.cpu()].to(device)
            with torch.autocast(device.type, enabled=on_cuda and cfg.amp):
                if with_kind:
                    logit, k_logits = model.forward_with_kind(x, s, joint=cfg.kind_joint)
                    bi_c = bi.cpu()
                    loss = _weighted_bce(logit.float(), t, w) + cfg.kind_loss_weight * kind_loss(
                        k_logits, k_tr[bi_c].to(device), kw_tr[bi_c].to(device)
                    )
                else:
                    loss = _weighted_bce(model(x, s).float(), t, w)
            opt.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
            sched.step()
            tot += loss.item() * (b - a)
            seen += b - a

        logits = predict_logits(model, x_va, s_va, device=device)
        val_loss = _weighted_bce(torch.from_numpy(logits), t_va, w_va).item()
        pred, y = logits >= 0, t_va.numpy() >= 0.5
        rec = {
            "epoch": epoch,
            "train_loss": tot / max(seen, 1),
            "val_loss": val_loss,
            "val_bacc_low": balanced_accuracy(y[reg_va == 0], pred[reg_va == 0]),
            "val_bacc_high": balanced_accuracy(y[reg_va == 1], pred[reg_va == 1]),
            "time_s": time.perf_counter() - t0,
        }
        history.append(rec)
        if on_epoch is not None:  # progress for whoever runs us (the console's task rows)
            on_epoch(rec, cfg.epochs)
        logger.info(
            "epoch %3d train %.4f val %.4f bacc low %.3f high %.3f (%.0fs)", epoch,
            rec["train_loss"], val_loss, rec["val_bacc_low"], rec["val_bacc_high"], rec["time_s"],
        )  # fmt: skip
        if val_loss < best[0]:
            best = (val_loss, epoch, copy.deepcopy(model.state_dict()))
        elif should_stop(epoch, best[1], cfg):
            logger.info("early stop: best epoch %d", best[1])
            break
        if cfg.max_time_s is not None and time.perf_counter() - t0 > cfg.max_time_s:
            logger.info("time cap reached")
            break

    if cfg.keep == "best":
        model.load_state_dict(best[2])
    val_logits = predict_logits(model, x_va, s_va, device=device)
    _calibrate(model, val_logits, t_va.numpy(), np.asarray(sn)[val_idx])
    model.eval()
    kind_eval = None
    if with_kind:  # validation never chose the head's weights (early stopping is on BCE)
        probs = predict_kind_probs(model, x_va, s_va)
        kind_eval = kind_report(probs, kind_idx[val_idx], mcfg.artefact_kinds)
        kind_eval["n_train_answers"] = int((kind_idx[train_idx] != NO_KIND).sum())
        kind_eval["loss_weight"] = cfg.kind_loss_weight
    return TrainResult(
        model=model,
        history=history,
        best_epoch=best[1],
        kept_epoch=best[1] if cfg.keep == "best" else len(history) - 1,
        train_time_s=time.perf_counter() - t0,
        train_idx=train_idx,
        val_idx=val_idx,
        val_logits=val_logits,
        temperature=float(model.temperature),
        prior_shift=tuple(model.prior_shift.tolist()),
        n_parameters=n_params,
        device=str(device),
        kind_eval=kind_eval,
    )
