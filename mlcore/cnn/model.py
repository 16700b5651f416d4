"""The line classifier: a small CNN on the 2D spectral cutouts of one candidate.

Input is the normalised (B, 5, 9, 100) stack from :func:`mlcore.survey.stack_cutouts`
(summed image, then the 4 highest-weight fibers; rows are the spatial direction on the CCD,
columns wavelength with the line near column 50), optionally plus a (B, 2, L) window of the
1D spectrum around the line. Output is one logit for "a real emission line sits at the
centre". A model built with ``CNNConfig.artefact_kinds`` also has an artefact-type head
(``fc_kind``: K logits from the same hidden layer), trained on level-3 volunteers' answers to
"which artefact is it?"; without it (the default, and every older checkpoint) the model is
exactly the one-output network.

Dropout lives only in the head, after the convolutional trunk. That makes Monte-Carlo
dropout cheap: scoring runs the trunk once and the head T times (``forward_mc``), so T=10
costs little more than T=1. The trunk has BatchNorm, which stays in eval mode while
sampling.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class CNNConfig:
    in_channels: int = 5  # summed image + 4 fibers
    rows: int = 9  # spatial
    cols: int = 100  # wavelength
    width: int = 12  # channels of the first conv; later blocks use 2x and 3x
    hidden: int = 64  # width of the hidden layer of the head
    dropout: float = 0.3  # head dropout, also the MC-dropout rate when scoring
    spec_len: int = 0  # length of the optional 1D-spectrum window; 0 = no 1D branch
    spec_channels: int = 2  # S/N per pixel, flux scaled by its robust sigma
    # Names of the artefact types of the optional type head ("cosmic", "sky", ...); empty:
    # no head. Older checkpoints have no such key and load without one.
    artefact_kinds: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # a card or checkpoint read back gives a list; a tuple keeps the config hashable
        self.artefact_kinds = tuple(str(k) for k in self.artefact_kinds)
        if len(set(self.artefact_kinds)) != len(self.artefact_kinds):
            raise ValueError(f"artefact_kinds must be distinct, not {self.artefact_kinds}")

    def to_dict(self) -> dict:
        return asdict(self)


def _conv_bn(c_in: int, c_out: int, kernel: tuple[int, int]) -> nn.Sequential:
    pad = (kernel[0] // 2, kernel[1] // 2)
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, padding=pad, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class LineCNN(nn.Module):
    def __init__(self, config: CNNConfig | None = None) -> None:
        super().__init__()
        self.config = cfg = config or CNNConfig()
        w = cfg.width
        # Full resolution first: cosmic rays and sky residuals are 1-3 px sharp, so the
        # first layer sees them before any pooling. Wider in wavelength than in space.
        self.trunk = nn.Sequential(
            _conv_bn(cfg.in_channels, w, (3, 5)),  # (B, w, 9, 100)
            nn.MaxPool2d((1, 2)),  # (B, w, 9, 50)
            _conv_bn(w, 2 * w, (3, 3)),  # (B, 2w, 9, 50)
            nn.MaxPool2d((2, 2)),  # (B, 2w, 4, 25)
            _conv_bn(2 * w, 3 * w, (3, 3)),  # (B, 3w, 4, 25)
        )
        # Pool to 5 wavelength bins, keeping where along the spectrum things are (the line
        # is in the middle bin); avg for extended signal, max for sharp hits.
        self.pool_bins = 5
        n_feat = 2 * 3 * w * self.pool_bins
        if cfg.spec_len > 0:
            s = w
            self.spec_trunk = nn.Sequential(
                nn.Conv1d(cfg.spec_channels, s, 7, padding=3, bias=False),  # (B, s, L)
                nn.BatchNorm1d(s),
                nn.ReLU(inplace=True),
                nn.MaxPool1d(2),  # (B, s, L/2)
                nn.Conv1d(s, 2 * s, 5, padding=2, bias=False),  # (B, 2s, L/2)
                nn.BatchNorm1d(2 * s),
                nn.ReLU(inplace=True),
                nn.AdaptiveMaxPool1d(self.pool_bins),  # (B, 2s, 5)
            )
            n_feat += 2 * s * self.pool_bins
        else:
            self.spec_trunk = None
        self.fc1 = nn.Linear(n_feat, cfg.hidden)
        self.fc2 = nn.Linear(cfg.hidden, 1)
        # Created after fc2 and with the global random state restored after its
        # initialisation, so a seed gives the same trunk, real/not-real head and dropout
        # draws with or without it (a detached head then leaves that network bit for bit
        # as without it); None when there are no kinds, so old state dicts load as is.
        n_kinds = len(cfg.artefact_kinds)
        self.fc_kind = None
        if n_kinds:
            with torch.random.fork_rng(devices=[]):
                self.fc_kind = nn.Linear(cfg.hidden, n_kinds)
        # Temperature for calibrated probabilities, fitted on validation after training,
        # and the per-regime (low, high) logit offsets that restore the labels' class mix
        # (see evaluation.fit_prior_shift); buffers so they travel with the state dict.
        self.register_buffer("temperature", torch.ones(()))
        self.register_buffer("prior_shift", torch.zeros(2))

    @property
    def feature_dim(self) -> int:
        return self.fc1.in_features

    def features(self, x: torch.Tensor, spec: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 5, 9, 100) [+ (B, C, L)] -> (B, n_feat): the deterministic part."""
        h = self.trunk(x)  # (B, 3w, 4, 25)
        h_avg = F.adaptive_avg_pool2d(h, (1, self.pool_bins)).flatten(1)  # (B, 3w*5)
        h_max = F.adaptive_max_pool2d(h, (1, self.pool_bins)).flatten(1)  # (B, 3w*5)
        feats = [h_avg, h_max]
        if self.spec_trunk is not None:
            if spec is None:
                raise ValueError("this model was built with a 1D-spectrum branch: pass spec")
            feats.append(self.spec_trunk(spec).flatten(1))  # (B, 2s*5)
        return torch.cat(feats, dim=1)

    def hidden(
        self, f: torch.Tensor, masks: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """(B, n_feat) -> (B, hidden), after both dropouts (or the explicit ``masks``)."""
        p = self.config.dropout
        if masks is None:
            f = F.dropout(f, p, self.training)
            h = F.relu(self.fc1(f))
            return F.dropout(h, p, self.training)
        h = F.relu(self.fc1(f * masks[0]))
        return h * masks[1]

    def head(
        self, f: torch.Tensor, masks: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> torch.Tensor:
        """(B, n_feat) -> (B,) logits. ``masks`` are explicit dropout masks (MC scoring)."""
        return self.fc2(self.hidden(f, masks)).squeeze(-1)

    @property
    def has_kind_head(self) -> bool:
        return self.fc_kind is not None

    def forward_with_kind(
        self, x: torch.Tensor, spec: torch.Tensor | None = None, *, joint: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, ...) -> ((B,) real/not-real logits, (B, K) artefact-type logits), one hidden
        layer (one dropout draw) for both: what training optimises. ``joint`` False: the
        artefact-type logits see the hidden layer detached, so their loss trains ``fc_kind``
        only and the real/not-real network learns exactly as without the head."""
        if self.fc_kind is None:
            raise ValueError("this model has no artefact-type head (CNNConfig.artefact_kinds)")
        h = self.hidden(self.features(x, spec))
        return self.fc2(h).squeeze(-1), self.fc_kind(h if joint else h.detach())

    @torch.no_grad()
    def kind_probs_from_features(self, f: torch.Tensor) -> torch.Tensor:
        """(B, n_feat) -> (B, K) softmax of the artefact-type head, no dropout (uncalibrated:
        the probabilities the head was trained to give on the volunteers' answers)."""
        if self.fc_kind is None:
            raise ValueError("this model has no artefact-type head (CNNConfig.artefact_kinds)")
        h = F.relu(self.fc1(f))
        return torch.softmax(self.fc_kind(h).float(), dim=-1)

    def forward(self, x: torch.Tensor, spec: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 5, 9, 100) -> (B,) logits (uncalibrated: divide by ``temperature``)."""
        return self.head(self.features(x, spec))

    @torch.no_grad()
    def forward_mc(
        self,
        x: torch.Tensor,
        spec: torch.Tensor | None = None,
        n_samples: int = 10,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(B, ...) -> (T, B) logits under T dropout masks; trunk run once.

        Masks come from ``generator`` so scores are reproducible for a seed. With T=1 or
        dropout 0 this is the deterministic forward pass.
        """
        return self.mc_from_features(self.features(x, spec), n_samples, generator)

    @torch.no_grad()
    def mc_from_features(
        self, f: torch.Tensor, n_samples: int = 10, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(B, n_feat) features -> (T, B) logits: the head under T dropout masks."""
        p = self.config.dropout
        if n_samples <= 1 or p == 0.0:
            return self.head(f, masks=(torch.ones_like(f[:1]), 1.0)).unsqueeze(0)
        B, n_f = f.shape
        keep = 1.0 - p
        m1 = (torch.rand(n_samples, B, n_f, generator=generator, device=f.device) < keep) / keep
        m2 = torch.rand(n_samples, B, self.config.hidden, generator=generator, device=f.device)
        m2 = (m2 < keep) / keep
        out = self.head(f.unsqueeze(0), masks=(m1.to(f.dtype), m2.to(f.dtype)))  # (T, B)
        return out


class EnsembleCNN(nn.Module):
    """K LineCNNs trained on the same labels from different seeds, used as one model.

    Small label sets make single retrains noisy (about a point of low-S/N balanced accuracy
    from the seed alone); averaging the members' logits removes most of that and is the
    larger gain where labels are few (``bench/bench_ensemble.py``). The interface is
    LineCNN's, so scoring, the gate, attribution and exports take either:
    ``forward`` is the mean member logit (one ``temperature`` is fitted on it),
    ``forward_mc`` stacks T dropout samples from every member, so BALD sees both the
    members' disagreement and each member's dropout spread, and ``features`` concatenates
    the members' features.
    """

    def __init__(self, members: list[LineCNN]) -> None:
        super().__init__()
        if not members:
            raise ValueError("an ensemble needs at least one member")
        configs = {tuple(sorted(m.config.to_dict().items())) for m in members}
        if len(configs) > 1:
            raise ValueError("ensemble members must share one CNNConfig")
        self.members = nn.ModuleList(members)
        self.config = members[0].config
        self.register_buffer("temperature", torch.ones(()))
        self.register_buffer("prior_shift", torch.zeros(2))

    @property
    def feature_dim(self) -> int:
        return sum(m.feature_dim for m in self.members)

    def features(self, x: torch.Tensor, spec: torch.Tensor | None = None) -> torch.Tensor:
        return torch.cat([m.features(x, spec) for m in self.members], dim=1)

    @property
    def has_kind_head(self) -> bool:
        return self.members[0].fc_kind is not None

    @torch.no_grad()
    def kind_probs_from_features(self, f: torch.Tensor) -> torch.Tensor:
        """(B, sum of n_feat) -> (B, K): the members' artefact-type probabilities averaged."""
        parts = torch.split(f, [m.feature_dim for m in self.members], dim=1)
        return torch.stack(
            [m.kind_probs_from_features(fk) for m, fk in zip(self.members, parts, strict=True)]
        ).mean(0)

    def forward(self, x: torch.Tensor, spec: torch.Tensor | None = None) -> torch.Tensor:
        """(B, ...) -> (B,) mean member logit (uncalibrated: divide by ``temperature``)."""
        return torch.stack([m(x, spec) for m in self.members]).mean(0)

    @torch.no_grad()
    def forward_mc(
        self,
        x: torch.Tensor,
        spec: torch.Tensor | None = None,
        n_samples: int = 10,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """(B, ...) -> (K*T, B) logits, T dropout samples per member; with T=1 the
        deterministic ensemble logit, (1, B)."""
        if n_samples <= 1:
            return self.forward(x, spec).unsqueeze(0)
        return torch.cat([m.forward_mc(x, spec, n_samples, generator) for m in self.members])

    @torch.no_grad()
    def mc_from_features(
        self, f: torch.Tensor, n_samples: int = 10, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """(B, sum of n_feat) ``features`` -> what ``forward_mc`` gives, same RNG order."""
        parts = torch.split(f, [m.feature_dim for m in self.members], dim=1)
        if n_samples <= 1:
            return torch.stack(
                [m.head(fk) for m, fk in zip(self.members, parts, strict=True)]
            ).mean(0)[None]
        return torch.cat(
            [
                m.mc_from_features(fk, n_samples, generator)
                for m, fk in zip(self.members, parts, strict=True)
            ]
        )


class _SliceMaxPool2d(nn.Module):
    """``MaxPool2d(k)`` with stride = kernel and no padding, as the maximum of k_h * k_w
    strided views: the same values (a maximum is exact), several times faster than
    oneDNN's channels_last max-pooling for these small kernels (bench_scoring.py)."""

    def __init__(self, kernel: tuple[int, int]) -> None:
        super().__init__()
        self.kh, self.kw = kernel

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        kh, kw = self.kh, self.kw
        H, W = h.shape[2] // kh * kh, h.shape[3] // kw * kw  # floor, as MaxPool2d does
        out = h[:, :, 0:H:kh, 0:W:kw]
        for i in range(kh):
            for j in range(kw):
                if i or j:
                    out = torch.maximum(out, h[:, :, i:H:kh, j:W:kw])
        return out


class _BinMaxPool1d(nn.Module):
    """``AdaptiveMaxPool1d(bins)`` as a reshape and a max when the length divides evenly
    (then the adaptive windows are exactly equal blocks); otherwise the adaptive op."""

    def __init__(self, bins: int) -> None:
        super().__init__()
        self.bins = bins

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        B, C, L = h.shape
        if L % self.bins:
            return F.adaptive_max_pool1d(h, self.bins)
        return h.reshape(B, C, self.bins, L // self.bins).amax(-1)


def _fast_pool(m: nn.Module) -> nn.Module:
    """The exact, faster equivalent of a pooling layer, or the layer itself."""
    if isinstance(m, nn.MaxPool2d):
        k = m.kernel_size if isinstance(m.kernel_size, tuple) else (m.kernel_size,) * 2
        st = m.stride if isinstance(m.stride, tuple) else (m.stride,) * 2
        if k == st and m.padding in (0, (0, 0)) and m.dilation in (1, (1, 1)) and not m.ceil_mode:
            return _SliceMaxPool2d(k)
    if isinstance(m, nn.AdaptiveMaxPool1d) and isinstance(m.output_size, int):
        if not m.return_indices:
            return _BinMaxPool1d(m.output_size)
    return m


def _fold_bn(conv: nn.Module, bn: nn.Module) -> nn.Module:
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    return fuse_conv_bn_eval(conv, bn)


def inference_copy(model: nn.Module) -> nn.Module:
    """A copy of a LineCNN or EnsembleCNN for fast CPU inference, same outputs to float
    rounding: every eval-mode BatchNorm folded into the convolution before it, weights in
    channels_last (oneDNN's fast layout; NCHW max-pooling is several times slower on CPU),
    and max-pooling done as maxima of strided views (exact). ``features`` and the heads are
    the original's; feed it channels_last input.
    """
    import copy

    fast = copy.deepcopy(model).eval()
    nets = fast.members if isinstance(fast, EnsembleCNN) else [fast]
    for net in nets:
        for k, seq in enumerate(net.trunk):
            if isinstance(seq, nn.Sequential) and isinstance(seq[1], nn.BatchNorm2d):
                seq[0] = _fold_bn(seq[0], seq[1])
                seq[1] = nn.Identity()
            else:
                net.trunk[k] = _fast_pool(seq)
        if net.spec_trunk is not None:
            st = net.spec_trunk
            for i in range(len(st) - 1):
                if isinstance(st[i], nn.Conv1d) and isinstance(st[i + 1], nn.BatchNorm1d):
                    st[i] = _fold_bn(st[i], st[i + 1])
                    st[i + 1] = nn.Identity()
            for i in range(len(st)):
                st[i] = _fast_pool(st[i])
    return fast.to(memory_format=torch.channels_last)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
