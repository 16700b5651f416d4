"""Sparse vote storage and the result types every aggregation method returns.

Votes are flat arrays, one entry per vote: ``candidate`` (0..n_candidates-1), ``volunteer``
(0..n_volunteers-1) and ``label`` (1 = real line, 0 = not real). Nothing here ever builds a
dense volunteer x candidate array: every per-candidate or per-volunteer sum is an
``np.bincount`` over the vote arrays, so work is proportional to the number of votes.

'Not sure' answers (:data:`NOT_SURE`) are recorded by the site but carry no evidence about
the label, so :meth:`VoteTable.from_arrays` drops them before any aggregation: they neither
count as votes nor move a posterior nor a volunteer's skill.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlcore.survey import REGIME_NAMES, regime_index  # noqa: F401 - re-exported

NOT_SURE = -1  # label code the site stores for "not sure"; excluded from aggregation
REAL, NOT_REAL = 1, 0
REGIME_LOW, REGIME_HIGH = 0, 1
N_REGIMES = 2


@dataclass(frozen=True)
class VoteTable:
    """All binary votes of a campaign as parallel arrays (one entry per vote).

    Build it with :meth:`from_arrays`, which validates and drops 'not sure' votes. The
    arrays are stored as ``intp`` because ``np.bincount`` converts to it on every call.
    """

    candidate: np.ndarray  # (n_votes,) intp
    volunteer: np.ndarray  # (n_votes,) intp
    label: np.ndarray  # (n_votes,) int8, 0/1
    n_candidates: int
    n_volunteers: int

    @classmethod
    def from_arrays(
        cls,
        candidate: np.ndarray,
        volunteer: np.ndarray,
        label: np.ndarray,
        *,
        n_candidates: int | None = None,
        n_volunteers: int | None = None,
    ) -> VoteTable:
        """Validate, drop :data:`NOT_SURE` votes, and store.

        ``n_candidates`` / ``n_volunteers`` default to one more than the largest index; pass
        them so that candidates or volunteers with no votes still get a row in the results.
        Raises ``ValueError`` naming the problem (length mismatch, negative index, index out
        of range, label other than 0/1/NOT_SURE).
        """
        c = np.asarray(candidate)
        v = np.asarray(volunteer)
        y = np.asarray(label)
        if not (c.shape == v.shape == y.shape and c.ndim == 1):
            raise ValueError(
                f"candidate, volunteer, label must be 1-D and the same length; got shapes "
                f"{c.shape}, {v.shape}, {y.shape}"
            )
        for name, a in (("candidate", c), ("volunteer", v), ("label", y)):
            if a.size and not np.issubdtype(a.dtype, np.integer) and a.dtype != bool:
                raise ValueError(f"{name} must hold integers, got dtype {a.dtype}")
        y = y.astype(np.int8)
        bad = ~np.isin(y, (NOT_REAL, REAL, NOT_SURE))
        if bad.any():
            raise ValueError(
                f"label must be 0 (not real), 1 (real) or {NOT_SURE} (not sure); "
                f"found {np.unique(y[bad])[:5].tolist()}"
            )
        # Sizes from all indices, 'not sure' included: those candidates still exist.
        n_c = int(c.max()) + 1 if n_candidates is None and c.size else int(n_candidates or 0)
        n_v = int(v.max()) + 1 if n_volunteers is None and v.size else int(n_volunteers or 0)
        keep = y != NOT_SURE
        c, v, y = c[keep].astype(np.intp), v[keep].astype(np.intp), y[keep]
        for name, a, n in (("candidate", c, n_c), ("volunteer", v, n_v)):
            if a.size and (a.min() < 0 or a.max() >= n):
                raise ValueError(f"{name} indices must lie in 0..{n - 1}")
        return cls(c, v, y, n_c, n_v)

    def __len__(self) -> int:
        return int(self.label.size)

    def votes_per_candidate(self) -> np.ndarray:
        return np.bincount(self.candidate, minlength=self.n_candidates).astype(np.int32)

    def votes_per_volunteer(self) -> np.ndarray:
        return np.bincount(self.volunteer, minlength=self.n_volunteers).astype(np.int32)

    def sorted_by_candidate(self) -> VoteTable:
        """The same votes grouped by candidate (stable): EM then gathers sequentially."""
        order = np.argsort(self.candidate, kind="stable")
        return VoteTable(
            self.candidate[order],
            self.volunteer[order],
            self.label[order],
            self.n_candidates,
            self.n_volunteers,
        )

    def deduplicated(self) -> VoteTable:
        """Keep only the last vote of each (candidate, volunteer) pair (a changed answer).

        The site enforces one vote per pair; this is for raw streams. Costs a sort.
        """
        key = self.candidate * np.int64(max(self.n_volunteers, 1)) + self.volunteer
        # np.unique on the reversed key array returns the first occurrence = the last vote.
        _, first_rev = np.unique(key[::-1], return_index=True)
        keep = np.sort(key.size - 1 - first_rev)
        return VoteTable(
            self.candidate[keep],
            self.volunteer[keep],
            self.label[keep],
            self.n_candidates,
            self.n_volunteers,
        )


def beta_std(alpha: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """Standard deviation of Beta(alpha, beta)."""
    s = alpha + beta
    return np.sqrt(alpha * beta / (s * s * (s + 1.0)))


@dataclass(frozen=True)
class VolunteerSkills:
    """Per-volunteer, per-regime skill as Beta posteriors.

    ``sensitivity[j, r]`` = P(vote real | real, regime r), ``specificity[j, r]`` =
    P(vote not real | not real, regime r); both are Beta posterior means, with the Beta
    parameters kept so a caller can store them (e.g. to seed :class:`OnlineSwap`) and the
    posterior standard deviation as the uncertainty. With no regime given R = 1.
    ``n_votes[j, r]`` counts the volunteer's (non-'not sure') votes in that regime.
    """

    sens_alpha: np.ndarray  # (V, R)
    sens_beta: np.ndarray  # (V, R)
    spec_alpha: np.ndarray  # (V, R)
    spec_beta: np.ndarray  # (V, R)
    n_votes: np.ndarray  # (V, R) int

    @property
    def sensitivity(self) -> np.ndarray:
        return self.sens_alpha / (self.sens_alpha + self.sens_beta)

    @property
    def specificity(self) -> np.ndarray:
        return self.spec_alpha / (self.spec_alpha + self.spec_beta)

    @property
    def sensitivity_std(self) -> np.ndarray:
        return beta_std(self.sens_alpha, self.sens_beta)

    @property
    def specificity_std(self) -> np.ndarray:
        return beta_std(self.spec_alpha, self.spec_beta)

    @property
    def weight(self) -> np.ndarray:
        """Youden's J = sensitivity + specificity - 1, in [-1, 1].

        0 for anyone whose answer does not depend on the truth (random clickers, always-yes):
        their votes then carry a log-likelihood ratio of exactly 0 and move no posterior.
        """
        return self.sensitivity + self.specificity - 1.0

    def typical(self) -> tuple[np.ndarray, np.ndarray]:
        """Vote-weighted mean (sensitivity, specificity) per regime: 'a typical next vote'."""
        w = self.n_votes.astype(np.float64)
        tot = np.maximum(w.sum(axis=0), 1.0)
        return (w * self.sensitivity).sum(axis=0) / tot, (w * self.specificity).sum(axis=0) / tot


@dataclass(frozen=True)
class ModelConfusion:
    """The CNN as an annotator: its score binned, one categorical confusion per regime.

    ``p_bin_given_real[r, b]`` = P(score in bin b | real, regime r) and likewise for not
    real; ``edges`` are the inner bin edges on the score. ``llr[r, b]`` is the evidence one
    binned score adds to a candidate's log-odds.
    """

    edges: np.ndarray  # (B-1,)
    p_bin_given_real: np.ndarray  # (R, B)
    p_bin_given_fake: np.ndarray  # (R, B)
    counts_real: np.ndarray  # (R, B) soft counts the estimate rests on
    counts_fake: np.ndarray  # (R, B)

    @property
    def llr(self) -> np.ndarray:
        return np.log(self.p_bin_given_real) - np.log(self.p_bin_given_fake)


@dataclass(frozen=True)
class AggregateResult:
    """Per-candidate labels and per-volunteer skills from one aggregation run.

    ``posterior`` = P(real) per candidate; ``label`` = 1 where posterior > 0.5;
    ``confidence`` = max(P, 1 - P); ``n_votes`` = binary votes per candidate.
    ``class_prior[r]`` = P(real) in regime r as estimated (0.5 for majority vote).
    """

    method: str
    posterior: np.ndarray  # (N,) float64
    n_votes: np.ndarray  # (N,) int32
    skills: VolunteerSkills
    class_prior: np.ndarray  # (R,)
    iterations: int = 0
    converged: bool = True
    model: ModelConfusion | None = None

    @property
    def label(self) -> np.ndarray:
        return (self.posterior > 0.5).astype(np.int8)

    @property
    def confidence(self) -> np.ndarray:
        return np.maximum(self.posterior, 1.0 - self.posterior)

    @property
    def log_odds(self) -> np.ndarray:
        p = np.clip(self.posterior, 1e-300, 1.0 - 1e-16)
        return np.log(p) - np.log1p(-p)
