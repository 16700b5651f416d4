"""The artefact-type head's targets, loss and held-out report.

Level-3 volunteers name the artefact a 'no' was (cosmic ray, sky residual, ...); the
platform turns their answers into one target per candidate (the most named kind and its
share). Here those targets are joined to the training rows BY DETECTID (never by position:
the answers come from another table, in another order), the head's loss is a share-weighted
cross-entropy over the rows that have an answer only, and the head is judged on the
validation rows that have one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

NO_KIND = -1  # kind index of a row without an answer
MIN_EVAL_ROWS = 20  # fewer held-out rows with an answer: the head's accuracy is not measured


@dataclass
class KindTargets:
    """Kind targets aligned to the training rows."""

    index: np.ndarray  # (N,) int64: index into ``kinds``, NO_KIND where no answer
    weight: np.ndarray  # (N,) float32: the answer's share (0 where no answer)
    kinds: tuple[str, ...]
    unmatched: list[int] = field(default_factory=list)  # answered detectids not in the rows

    @property
    def n_matched(self) -> int:
        return int((self.index != NO_KIND).sum())


def join_kind_targets(
    detectid: np.ndarray,
    answers: dict[int, tuple[str, float]],
    kinds: tuple[str, ...],
) -> KindTargets:
    """Align ``answers`` {detectid: (kind, share)} to the rows whose ids are ``detectid``.

    Answers for a detectid not among the rows are left out and listed in ``unmatched``
    (logged); a kind outside ``kinds`` or a share outside (0, 1] is an error.
    """
    detectid = np.asarray(detectid).astype(np.int64)
    if len(np.unique(detectid)) != len(detectid):
        raise ValueError("detectid must be unique across the training rows to join answers")
    pos = {int(d): i for i, d in enumerate(detectid)}
    code = {k: i for i, k in enumerate(kinds)}
    index = np.full(len(detectid), NO_KIND, np.int64)
    weight = np.zeros(len(detectid), np.float32)
    unmatched = []
    for d, (kind, share) in answers.items():
        if kind not in code:
            raise ValueError(f"artefact kind {kind!r} of detectid {d} is not one of {kinds}")
        if not 0.0 < float(share) <= 1.0:
            raise ValueError(f"the share of detectid {d}'s answer must be in (0, 1], not {share}")
        i = pos.get(int(d))
        if i is None:
            unmatched.append(int(d))
            continue
        index[i], weight[i] = code[kind], float(share)
    if unmatched:
        logger.info(
            "%d artefact-type answers are for candidates not in the training rows (e.g. "
            "detectid %s): left out", len(unmatched), sorted(unmatched)[:5],
        )  # fmt: skip
    return KindTargets(index, weight, tuple(kinds), sorted(unmatched))


def check_kind_targets(index: np.ndarray, weight: np.ndarray, n_rows: int, n_kinds: int) -> None:
    if index.shape != (n_rows,) or weight.shape != (n_rows,):
        raise ValueError(
            f"kind targets and weights must be ({n_rows},), aligned to the rows; "
            f"got {index.shape} and {weight.shape}"
        )
    if ((index < NO_KIND) | (index >= n_kinds)).any():
        raise ValueError(f"kind targets must be -1 (no answer) or in 0..{n_kinds - 1}")
    if (weight < 0).any() or not np.isfinite(weight).all():
        raise ValueError("kind weights must be finite and non-negative")


def kind_loss(logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Share-weighted cross-entropy over the rows with an answer (``target`` >= 0), averaged
    over their weights: rows without one contribute nothing (0 when the batch has none)."""
    has = target >= 0
    ce = F.cross_entropy(logits.float(), target.clamp_min(0), reduction="none")
    w = weight * has
    return (ce * w).sum() / w.sum().clamp_min(1e-8)


def kind_report(
    probs: np.ndarray, index: np.ndarray, kinds: tuple[str, ...], min_rows: int = MIN_EVAL_ROWS
) -> dict:
    """Accuracy and confusion matrix of the head on held-out rows: ``probs`` (M, K) and
    ``index`` (M,) with NO_KIND for rows without an answer (left out).

    The confusion matrix is rows = the answer, columns = the head's kind. "Not measured"
    (accuracy None) below ``min_rows`` rows with an answer."""
    has = np.asarray(index) != NO_KIND
    y, n = np.asarray(index)[has], int(has.sum())
    out: dict = {"kinds": list(kinds), "n_eval": n, "min_eval": min_rows}
    if n < min_rows:
        out.update(
            measured=False,
            accuracy=None,
            confusion=None,
            note=f"not measured: {n} held-out rows with an answer (at least {min_rows} needed)",
        )
        return out
    pred = np.asarray(probs)[has].argmax(1)
    conf = np.zeros((len(kinds), len(kinds)), np.int64)
    np.add.at(conf, (y, pred), 1)
    majority = np.bincount(y, minlength=len(kinds)).max() / n
    out.update(
        measured=True,
        accuracy=round(float((pred == y).mean()), 4),
        majority_baseline=round(float(majority), 4),  # always answering the commonest kind
        confusion=conf.tolist(),
    )
    return out
