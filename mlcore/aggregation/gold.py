"""Gold-standard answers: candidates whose truth is known (expert-vetted or injected)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

GoldLike = Mapping[int, int] | tuple[np.ndarray, np.ndarray] | None


def gold_arrays(gold: GoldLike, n_candidates: int) -> tuple[np.ndarray, np.ndarray]:
    """Normalise gold to (mask (N,) bool, truth (N,) float64 with 0/1 where masked).

    Accepts ``{candidate: truth}`` or ``(candidate_indices, truth_labels)``.
    """
    mask = np.zeros(n_candidates, dtype=bool)
    truth = np.zeros(n_candidates, dtype=np.float64)
    if gold is None:
        return mask, truth
    if isinstance(gold, Mapping):
        idx = np.fromiter(gold.keys(), dtype=np.intp, count=len(gold))
        lab = np.fromiter(gold.values(), dtype=np.int64, count=len(gold))
    else:
        idx, lab = (np.asarray(a) for a in gold)
        idx = idx.astype(np.intp)
    if idx.shape != lab.shape:
        raise ValueError("gold candidate indices and truth labels must have the same length")
    if idx.size and (idx.min() < 0 or idx.max() >= n_candidates):
        raise ValueError(f"gold candidate indices must lie in 0..{n_candidates - 1}")
    if not np.isin(lab, (0, 1)).all():
        raise ValueError("gold truth labels must be 0 (not real) or 1 (real)")
    mask[idx] = True
    truth[idx] = lab
    return mask, truth
