"""Self-training on the unlabelled catalogue: a model fitted on the labels answers the
candidates nobody labelled; its confident answers join the labels for a second fit.

Why: with ~1,000 labels the CNN is label-starved, while a survey has millions of unlabelled
candidates. On the simulator (``bench/bench_selftrain.py``), the confident answers of a
fitted model are right ~99 % of the time, and a second fit on labels + those answers beats
the first at both S/N regimes.

The rules that keep it honest:
* the pseudo-labels come from rows outside every split: the validation rows (early stopping,
  temperature) and the test rows (the card's figures) are never pseudo-labelled or trained on;
* picks are class-balanced per S/N regime (:func:`mlcore.cnn.domain_adapt.pseudo_labels`), so
  the model's lean towards one class is not fed back as labels;
* the second fit starts where the first did (fresh, an encoder, or the live model), not from
  the first fit's weights, so it is not pulled towards the first fit's mistakes;
* the card records what was added and the first fit's held-out figures next to the second's.

numpy + torch only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mlcore.errors import DataError


@dataclass(frozen=True)
class SelfTrainConfig:
    threshold: float = 0.9  # calibrated probability >= this (real) or <= 1 - this (not real)
    max_per_class: int = 4000  # pseudo-labels per class and S/N regime, the most confident
    max_pool: int = 100_000  # unlabelled rows scored (a seeded random sample beyond that)
    # a pseudo-labelled row's weight in the loss (a labelled row: 1); 0.25 gained at high S/N
    # in 3 of 3 seeds where 1.0 lost in one (bench/selftrain.md)
    weight: float = 0.25
    seed: int = 0

    def __post_init__(self) -> None:
        if not 0.5 < self.threshold < 1.0:
            raise DataError(f"self-training threshold must be in (0.5, 1), not {self.threshold}")
        if self.max_per_class < 1 or self.max_pool < 1:
            raise DataError("self-training max_per_class and max_pool must be at least 1")
        if not 0.0 < self.weight <= 1.0:
            raise DataError(f"self-training weight must be in (0, 1], not {self.weight}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Unlabelled:
    """Candidates with no label, none of them in the labelled rows' splits."""

    cutouts: np.ndarray  # (U, 5, 9, 100) raw, array-like (a memmap is read row by row)
    sn: np.ndarray  # (U,)
    spec: np.ndarray | None = None  # (U, 2, L) 1D windows, as the labelled rows'

    def __post_init__(self) -> None:
        n = len(self.sn)
        if len(self.cutouts) != n or (self.spec is not None and len(self.spec) != n):
            raise DataError(
                f"unlabelled rows: {len(self.cutouts)} cutouts, {n} S/N values"
                + ("" if self.spec is None else f", {len(self.spec)} spectra")
                + " -- they must be the same rows"
            )


def pick(model, unl: Unlabelled, cfg: SelfTrainConfig) -> tuple[np.ndarray, np.ndarray, dict]:
    """Score (up to ``cfg.max_pool`` of) ``unl`` with ``model`` (eval mode, its fitted
    temperature) -> (rows of ``unl`` picked, sorted; their 0/1 labels; a summary)."""
    import torch

    from mlcore.cnn.domain_adapt import pseudo_labels
    from mlcore.cnn.training import normalise_rows, predict_logits

    n = len(unl.sn)
    pool = np.arange(n)
    if n > cfg.max_pool:
        pool = np.sort(np.random.default_rng(cfg.seed).choice(n, cfg.max_pool, replace=False))
    probs = np.empty(len(pool), np.float64)
    t = float(model.temperature)
    for a in range(0, len(pool), 8192):  # normalised in slices: flat memory
        rows = pool[a : a + 8192]
        x = normalise_rows(unl.cutouts, rows)
        s = None if unl.spec is None else torch.as_tensor(np.asarray(unl.spec[rows], np.float32))
        logits = predict_logits(model, x, s).astype(np.float64)
        probs[a : a + len(rows)] = 0.5 * (1.0 + np.tanh(0.5 * logits / t))  # sigmoid, no overflow
    sn = np.asarray(unl.sn, np.float64)[pool]
    chosen = pseudo_labels(probs, sn, threshold=cfg.threshold, max_per_class=cfg.max_per_class)
    labels = (probs[chosen] >= 0.5).astype(np.float32)
    low = sn[chosen] <= 5.5
    info = {
        **cfg.to_dict(),
        "n_scored": int(len(pool)),
        "n_pseudo": int(len(chosen)),
        "n_pseudo_real": {
            "low": int((labels[low] == 1).sum()),
            "high": int((labels[~low] == 1).sum()),
        },
        "n_pseudo_artefact": {
            "low": int((labels[low] == 0).sum()),
            "high": int((labels[~low] == 0).sum()),
        },
    }
    return pool[chosen], labels, info


def extend(
    *,
    cutouts: np.ndarray,
    targets: np.ndarray,
    sn: np.ndarray,
    spec: np.ndarray | None,
    weights: np.ndarray | None,
    kind_index: np.ndarray | None,
    kind_weight: np.ndarray | None,
    unl: Unlabelled,
    rows: np.ndarray,
    labels: np.ndarray,
    weight: float = 1.0,
) -> dict:
    """The labelled arrays with the picked unlabelled rows appended (each weighing
    ``weight``, no artefact-type answer) -> dict of the new arrays; the picked rows are the
    last ``len(rows)``."""
    from mlcore.cnn.artefacts import NO_KIND

    m, p = len(targets), len(rows)
    out = {
        "cutouts": np.concatenate([np.asarray(cutouts), np.asarray(unl.cutouts[rows])]),
        "targets": np.concatenate([np.asarray(targets, np.float32), labels.astype(np.float32)]),
        "sn": np.concatenate([np.asarray(sn, np.float32), np.asarray(unl.sn, np.float32)[rows]]),
        "spec": None,
        "weights": None,
        "kind_index": None,
        "kind_weight": None,
        "pseudo_rows": np.arange(m, m + p),
    }
    if spec is not None:
        if unl.spec is None:
            raise DataError("the labelled rows have 1D spectra and the unlabelled rows none")
        out["spec"] = np.concatenate([np.asarray(spec), np.asarray(unl.spec[rows], spec.dtype)])
    if weights is not None or weight != 1.0:
        w = np.ones(m, np.float32) if weights is None else np.asarray(weights, np.float32)
        out["weights"] = np.concatenate([w, np.full(p, weight, np.float32)])
    if kind_index is not None:
        out["kind_index"] = np.concatenate([kind_index, np.full(p, NO_KIND, kind_index.dtype)])
        out["kind_weight"] = np.concatenate([kind_weight, np.zeros(p, kind_weight.dtype)])
    return out


__all__ = ["SelfTrainConfig", "Unlabelled", "extend", "pick"]
