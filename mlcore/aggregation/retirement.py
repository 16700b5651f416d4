"""Retirement rules, evaluated on one candidate after each vote (no scan of the catalogue).

A candidate is *retired* once it has at least ``min_votes`` votes and its posterior is
confident: P(real) >= ``p_real_hi`` or P(real) <= ``p_real_lo`` (both inclusive). It goes
to the *expert* queue once it has ``max_votes`` votes and is still not confident. Otherwise
it stays *active*. Confidence wins over the cap: a candidate confident at its last allowed
vote is retired, not sent to an expert.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ACTIVE, RETIRED, EXPERT = 0, 1, 2
STATES = ("active", "retired", "expert")


@dataclass(frozen=True)
class RetirementRule:
    """Configurable thresholds; :meth:`decide` is vectorised, :meth:`decide_one` per vote."""

    p_real_hi: float = 0.95
    p_real_lo: float = 0.05
    min_votes: int = 2
    max_votes: int = 15

    def __post_init__(self) -> None:
        if not 0.0 <= self.p_real_lo < 0.5 < self.p_real_hi <= 1.0:
            raise ValueError("need 0 <= p_real_lo < 0.5 < p_real_hi <= 1")
        if not 0 <= self.min_votes <= self.max_votes:
            raise ValueError("need 0 <= min_votes <= max_votes")

    def decide(self, posterior: np.ndarray, n_votes: np.ndarray) -> np.ndarray:
        """State codes (ACTIVE / RETIRED / EXPERT) for arrays of candidates."""
        p = np.asarray(posterior)
        n = np.asarray(n_votes)
        confident = (p >= self.p_real_hi) | (p <= self.p_real_lo)
        out = np.full(np.broadcast(p, n).shape, ACTIVE, dtype=np.int8)
        out[n >= self.max_votes] = EXPERT
        out[confident & (n >= self.min_votes)] = RETIRED
        return out

    def decide_one(self, posterior: float, n_votes: int) -> str:
        """'active' | 'retired' | 'expert' for one candidate, right after its latest vote."""
        if n_votes >= self.min_votes and (
            posterior >= self.p_real_hi or posterior <= self.p_real_lo
        ):
            return "retired"
        if n_votes >= self.max_votes:
            return "expert"
        return "active"


@dataclass(frozen=True)
class FixedCountRule:
    """The classic baseline: retire after exactly ``n_votes`` votes, whatever they say."""

    n_votes: int = 10

    def decide(self, posterior: np.ndarray, n_votes: np.ndarray) -> np.ndarray:
        n = np.asarray(n_votes)
        return np.where(n >= self.n_votes, RETIRED, ACTIVE).astype(np.int8)

    def decide_one(self, posterior: float, n_votes: int) -> str:
        return "retired" if n_votes >= self.n_votes else "active"
