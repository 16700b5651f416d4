"""Self-supervised pretraining of the LineCNN trunks on unlabelled cutouts.

The catalogue holds far more candidates than anyone will label; this fits the image trunk
(and the 1D-spectrum trunk, when the model has one) on all of them without labels, then
hands back a whole :class:`~mlcore.cnn.model.LineCNN` whose trunks are pretrained and whose
head is fresh, so fine-tuning is the ordinary ``train(..., init=encoder)``.

Two approaches (``PretrainConfig.approach``):

``"contrastive"`` (SimCLR, NT-Xent): two augmented views of each candidate, a small
projection MLP on ``model.features``; each view must pick its twin out of the batch.
The views differ only in what should not change the answer "is there a real line at the
centre":

* extra Gaussian noise, 0-0.5 sigma per pixel in the normalised units (where the noise is
  about 1 sigma by construction): a re-draw of the noise at the measured level is not
  possible without the noiseless signal, so the views add noise instead;
* a wavelength shift of +-1 px, image and 1D window together (the line finder's centroid
  error; larger shifts move the line off the centre the label is about);
* a flip along the spatial rows (no preferred side across a trace; never along wavelength:
  line profiles are asymmetric);
* per-fibre throughput scaling 0.85-1.15 on channels 1-4 (fibre-to-fibre calibration
  error) and an overall flux scaling 0.85-1.15 (flux calibration; kept mild because the
  normalised image is in noise units, so a large scaling would change the S/N the answer
  depends on).

``"masked"`` (masked reconstruction): blocks of wavelength columns (5 px wide, about 30 %
of them) and, with probability 0.3, one fibre channel are set to the background (0); a
small decoder from the trunk's (3w, 4, 25) map (and from the 1D trunk's output) rebuilds
the normalised input, the loss being the mean squared error on the masked pixels. It needs
no augmentation choices, so it is the check on the contrastive one.

numpy/torch only (Django-free). The encoder is written with
:func:`mlcore.cnn.card.write_model_dir` and a card of its own (:func:`build_pretrain_card`):
approach, candidates, epochs, loss curve, seed, data hash.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mlcore.cnn.data import iter_batches
from mlcore.cnn.model import CNNConfig, LineCNN, count_parameters
from mlcore.cnn.training import normalise_rows, pick_device, seed_everything

logger = logging.getLogger(__name__)

APPROACHES = ("contrastive", "masked")
ENCODER_KIND = "pretrained-encoder"


@dataclass
class PretrainConfig:
    approach: str = "contrastive"
    epochs: int = 5
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    temperature: float = 0.2  # NT-Xent
    proj_dim: int = 64  # contrastive projection output
    noise_max: float = 0.5  # extra noise, normalised units (per-pixel sigma is ~1)
    max_shift: int = 1  # px
    flip_p: float = 0.5
    fibre_scale: float = 0.15  # +- per fibre channel
    flux_scale: float = 0.15  # +- overall
    mask_frac: float = 0.3  # masked: share of wavelength columns masked (in blocks)
    mask_block: int = 5
    mask_fibre_p: float = 0.3  # masked: chance one fibre channel is masked whole
    seed: int = 0
    max_time_s: float | None = None  # wall-clock cap on the loop
    num_threads: int | None = None
    device: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PretrainResult:
    model: LineCNN  # trunks pretrained, head fresh (as built)
    history: list[dict] = field(default_factory=list)  # per epoch: loss, time_s
    pretrain_time_s: float = 0.0
    n_candidates: int = 0
    config: PretrainConfig = field(default_factory=PretrainConfig)


# --- views ----------------------------------------------------------------------------------


def _shift(x: torch.Tensor, s: torch.Tensor, dim_len: int) -> torch.Tensor:
    """Shift the last axis of x by per-sample s px, edges replicated (as data.augment)."""
    idx = (torch.arange(dim_len, device=x.device)[None, :] - s[:, None]).clamp(0, dim_len - 1)
    shape = (len(s),) + (1,) * (x.dim() - 2) + (dim_len,)
    return torch.gather(x, x.dim() - 1, idx.view(shape).expand_as(x))


def contrastive_view(
    x: torch.Tensor, spec: torch.Tensor | None, cfg: PretrainConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """One random view of a normalised batch (see the module docstring for the choices)."""
    B, C, _, W = x.shape
    dev = x.device

    def u(*shape):
        return torch.rand(*shape, generator=gen, device=dev)

    gain = 1 + cfg.flux_scale * (2 * u(B, 1, 1, 1) - 1)
    fib = torch.ones(B, C, 1, 1, device=dev)
    fib[:, 1:] = 1 + cfg.fibre_scale * (2 * u(B, C - 1, 1, 1) - 1)
    x = x * gain * fib
    x = x + cfg.noise_max * u(B, 1, 1, 1) * torch.randn(x.shape, generator=gen, device=dev)
    if cfg.max_shift > 0:
        s = torch.randint(-cfg.max_shift, cfg.max_shift + 1, (B,), generator=gen, device=dev)
        x = _shift(x, s, W)
        if spec is not None:
            spec = _shift(spec, s, spec.shape[-1])
    if cfg.flip_p > 0:
        flip = u(B) < cfg.flip_p
        x = torch.where(flip[:, None, None, None], x.flip(2), x)
    if spec is not None:
        spec = spec * gain.view(B, 1, 1)
        spec = spec + cfg.noise_max * u(B, 1, 1) * torch.randn(
            spec.shape, generator=gen, device=dev
        )
    return x, spec


def _column_mask(B: int, W: int, cfg: PretrainConfig, gen: torch.Generator, dev) -> torch.Tensor:
    """(B, W) bool: blocks of ``mask_block`` columns, each masked with p = ``mask_frac``."""
    n_blocks = math.ceil(W / cfg.mask_block)
    blocks = torch.rand(B, n_blocks, generator=gen, device=dev) < cfg.mask_frac
    return blocks.repeat_interleave(cfg.mask_block, dim=1)[:, :W]


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """SimCLR's loss: each of the 2B embeddings must pick its twin among the other 2B-1."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    n = len(z1)
    sim.fill_diagonal_(float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


# --- heads used only while pretraining -------------------------------------------------------


class _Projection(nn.Module):
    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, 128), nn.ReLU(inplace=True), nn.Linear(128, d_out))

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return self.net(f)


class _Decoder(nn.Module):
    """Trunk map (B, 3w, 4, 25) -> (B, 5, 9, 100); 1D trunk (B, 2s, 5) -> (B, 2, L)."""

    def __init__(self, cfg: CNNConfig) -> None:
        super().__init__()
        w = cfg.width
        self.rows, self.cols = cfg.rows, cfg.cols
        self.img = nn.Sequential(
            nn.Conv2d(3 * w, 32, 1), nn.ReLU(inplace=True), nn.Conv2d(32, 32, 3, padding=1)
        )
        self.img_out = nn.Conv2d(32, cfg.in_channels, 3, padding=1)
        self.spec = None
        if cfg.spec_len > 0:  # the 1D trunk pools to 5 bins: a linear map back
            self.spec = nn.Linear(2 * w * 5, cfg.spec_channels * cfg.spec_len)
            self.spec_shape = (cfg.spec_channels, cfg.spec_len)

    def forward(self, h: torch.Tensor, hs: torch.Tensor | None):
        y = F.relu(self.img(h))
        y = F.interpolate(y, size=(self.rows, self.cols), mode="bilinear", align_corners=False)
        y = self.img_out(y)
        ys = None
        if self.spec is not None and hs is not None:
            ys = self.spec(hs.flatten(1)).view(len(hs), *self.spec_shape)
        return y, ys


def _masked_loss(model: LineCNN, dec: _Decoder, x, s, cfg: PretrainConfig, gen) -> torch.Tensor:
    B, C, _, W = x.shape
    dev = x.device
    cols = _column_mask(B, W, cfg, gen, dev)  # (B, W)
    m = cols[:, None, None, :].expand(B, C, x.shape[2], W).clone()
    fibre = torch.rand(B, generator=gen, device=dev) < cfg.mask_fibre_p
    which = torch.randint(1, C, (B,), generator=gen, device=dev)
    m[fibre, which[fibre]] = True
    x_in = x.masked_fill(m, 0.0)
    h = model.trunk(x_in)
    hs = s_in = ms = None
    if s is not None and model.spec_trunk is not None:
        L = s.shape[-1]
        ms = _column_mask(B, L, cfg, gen, dev)[:, None, :].expand_as(s)
        s_in = s.masked_fill(ms, 0.0)
        hs = model.spec_trunk(s_in)
    y, ys = dec(h, hs)
    loss = ((y - x) ** 2)[m].mean() if m.any() else (y - x).pow(2).mean()
    if ys is not None:
        loss = loss + 0.5 * (((ys - s) ** 2)[ms].mean() if ms.any() else (ys - s).pow(2).mean())
    return loss


# --- the loop ---------------------------------------------------------------------------------


def pretrain(
    cutouts,
    *,
    spec: np.ndarray | None = None,
    idx: np.ndarray | None = None,
    model_config: CNNConfig | None = None,
    config: PretrainConfig | None = None,
    on_epoch: Callable[[dict, int], None] | None = None,
    x_norm: torch.Tensor | None = None,
) -> PretrainResult:
    """Pretrain a LineCNN's trunks on rows ``idx`` (default all) of raw ``cutouts``.

    ``spec``: the (N, 2, L) 1D windows when ``model_config.spec_len == L``. No labels are
    read. ``x_norm``: the already-normalised float16 rows (``normalise_rows``) to skip that
    step. Returns the model (trunks trained, head as initialised) and the loss per epoch.
    """
    cfg = config or PretrainConfig()
    if cfg.approach not in APPROACHES:
        raise ValueError(
            f"PretrainConfig.approach must be one of {APPROACHES}, not {cfg.approach!r}"
        )
    mcfg = model_config or CNNConfig()
    if mcfg.spec_len > 0 and spec is None:
        raise ValueError("model_config.spec_len > 0 needs spec windows")
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    idx = np.arange(len(cutouts)) if idx is None else np.sort(np.asarray(idx))
    if len(idx) < 2:
        raise ValueError("pretraining needs at least 2 candidates")
    t0 = time.perf_counter()
    x_all = normalise_rows(cutouts, idx) if x_norm is None else x_norm
    s_all = None
    if mcfg.spec_len > 0:
        s_all = torch.as_tensor(np.asarray(spec[idx], dtype=np.float32))

    model = LineCNN(mcfg).to(device)
    fresh_head = {k: v.clone() for k, v in model.state_dict().items() if _is_head(k)}
    if cfg.approach == "contrastive":
        aux: nn.Module = _Projection(model.feature_dim, cfg.proj_dim).to(device)
    else:
        aux = _Decoder(mcfg).to(device)
    params = [p for n, p in model.named_parameters() if not _is_head(n)] + list(aux.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    n = len(idx)
    steps_per_epoch = n // cfg.batch_size or 1  # drop the ragged last batch (NT-Xent)
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.15
    )
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)
    history: list[dict] = []
    logger.info("pretraining (%s) on %d candidates, %s", cfg.approach, n, device)
    stop = False
    for epoch in range(cfg.epochs):
        model.train()
        aux.train()
        order = rng.permutation(n)
        tot, seen = 0.0, 0
        bs = min(cfg.batch_size, n)
        for a, b in list(iter_batches(steps_per_epoch * bs, bs)):
            bi = torch.as_tensor(order[a:b])
            x = x_all[bi].to(device).float()
            s = None if s_all is None else s_all[bi].to(device)
            if cfg.approach == "contrastive":
                x1, s1 = contrastive_view(x, s, cfg, gen)
                x2, s2 = contrastive_view(x, s, cfg, gen)
                f = model.features(torch.cat([x1, x2]), None if s is None else torch.cat([s1, s2]))
                z = aux(f)
                loss = nt_xent(z[: len(x)], z[len(x) :], cfg.temperature)
            else:
                loss = _masked_loss(model, aux, x, s, cfg, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * (b - a)
            seen += b - a
            if cfg.max_time_s is not None and time.perf_counter() - t0 > cfg.max_time_s:
                stop = True
                break
        rec = {"epoch": epoch, "loss": tot / max(seen, 1), "time_s": time.perf_counter() - t0}
        history.append(rec)
        if on_epoch is not None:
            on_epoch(rec, cfg.epochs)
        logger.info("pretrain epoch %d loss %.4f (%.0fs)", epoch, rec["loss"], rec["time_s"])
        if stop:
            logger.info("time cap reached")
            break
    # The head was never in the optimiser, but be explicit: fine-tuning starts from a fresh
    # head (weight decay does not touch parameters outside the optimiser either).
    model.load_state_dict({**model.state_dict(), **fresh_head})
    model.eval()
    return PretrainResult(
        model=model.cpu(),
        history=history,
        pretrain_time_s=time.perf_counter() - t0,
        n_candidates=n,
        config=cfg,
    )


def _is_head(name: str) -> bool:
    """The parts fine-tuning trains from scratch: the head and the calibration buffers."""
    return name.split(".")[0] in ("fc1", "fc2", "temperature", "prior_shift")


def trunk_state(model: LineCNN) -> dict[str, torch.Tensor]:
    """The pretrained part of a LineCNN's state (trunk, 1D trunk, their BatchNorm stats)."""
    return {k: v for k, v in model.state_dict().items() if not _is_head(k)}


def build_pretrain_card(
    result: PretrainResult, *, data_hash: str, data_source: str, extra: dict | None = None
) -> dict:
    """The encoder's card: what it was pretrained on and how (JSON-ready)."""
    from mlcore.cnn.card import CARD_SCHEMA, code_version

    cfg = result.config
    card = {
        "schema": CARD_SCHEMA,
        "kind": ENCODER_KIND,
        "model": "LineCNN",
        "members": 1,
        "created_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code_version": code_version(),
        "torch_version": torch.__version__,
        "approach": cfg.approach,
        "data_hash": data_hash,
        "data_source": data_source,
        "label_source": "none (self-supervised)",
        "n_candidates": int(result.n_candidates),
        "epochs": len(result.history),
        "loss_curve": [round(float(h["loss"]), 5) for h in result.history],
        "seed": int(cfg.seed),
        "pretrain_time_s": round(float(result.pretrain_time_s), 2),
        "pretrain_config": cfg.to_dict(),
        "n_parameters": count_parameters(result.model),
        "model_config": result.model.config.to_dict(),
        "head": "fresh (not trained): fine-tune with train(..., init=this model)",
        "input": "(N,5,9,100) summed image + 4 fibers, normalised by mlcore.cnn.data.normalise",
    }
    card.update(extra or {})
    return card


def with_fresh_head(model: LineCNN, seed: int) -> LineCNN:
    """A copy of ``model`` whose head is re-initialised from ``seed`` (trunks kept), so
    fine-tuning runs with different seeds differ in their head's start as scratch runs do."""
    import copy

    out = copy.deepcopy(model)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        out.fc1.reset_parameters()
        out.fc2.reset_parameters()
    return out
