"""Evidence that a cheap crowd of unproven voters cannot supply (sybil resistance).

A voter is *proven* once gold answers measured their skill (:func:`is_proven`; experts
always are). Two rules keep unproven voters -- new or anonymous, so free to create in bulk --
from settling a label on their own:

1. **Cap.** The log-odds the unproven votes on one candidate add *together* is clipped to
   ``[-cap, +cap]`` (:func:`capped_log_odds`). A thousand sybils move a posterior no further
   than a couple of honest newcomers.
2. **Support.** A confident posterior retires a candidate only when the proven evidence
   alone points the same way (:func:`proven_support`): net positive proven log-odds for
   "real", net negative for "not real". Otherwise the candidate stays in the queue (or goes
   to the experts at the vote cap).

Pure numpy / floats: used by the live consensus after each vote and by the batch run.
"""

from __future__ import annotations

import numpy as np


def is_proven(n_gold, n_gold_correct, *, min_gold: int, min_accuracy: float):
    """True where at least ``min_gold`` gold answers were given, ``min_accuracy`` of them
    right ('not sure' counts as an answer that is not right). Scalars or arrays."""
    n_gold = np.asarray(n_gold)
    ok = (n_gold >= min_gold) & (np.asarray(n_gold_correct) >= min_accuracy * n_gold)
    return bool(ok) if ok.ndim == 0 else ok


def capped_log_odds(
    prior_log_odds: float, proven_llr: float, unproven_llr: float, cap: float
) -> float:
    """Posterior log-odds: prior + proven LLRs + the unproven LLRs' sum clipped to +-cap."""
    return prior_log_odds + proven_llr + max(-cap, min(cap, unproven_llr))


def proven_support(posterior: float, proven_llr: float) -> bool:
    """Does the proven evidence point the way ``posterior`` leans? (Retirement needs it.)"""
    if posterior >= 0.5:
        return proven_llr > 0
    return proven_llr < 0


def proven_net_votes(
    candidate: np.ndarray, label: np.ndarray, proven: np.ndarray, n_candidates: int
) -> np.ndarray:
    """Per candidate: proven yes votes minus proven no votes (the batch run's support)."""
    sign = np.where(np.asarray(label) == 1, 1, -1) * np.asarray(proven, bool)
    return np.bincount(candidate, weights=sign, minlength=n_candidates)
