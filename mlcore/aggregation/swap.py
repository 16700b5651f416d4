"""Online SWAP-style aggregation (as Space Warps did): every vote updates one candidate.

Each candidate keeps its log-odds L = logit P(real). A vote y from a volunteer whose current
skill in the candidate's regime is (s, c) adds its log-likelihood ratio:
    yes: L += log s - log(1 - c)        no: L += log(1 - s) - log c
which is Bayes' rule in log space (additive, stable, no renormalisation). Work per vote is
O(1), so the retirement rule can be checked right after every vote.

Skills are Beta posteriors, as in batch Dawid-Skene. They learn from gold answers (a vote
on a gold candidate is a labelled trial: the truth is known, so the volunteer's sensitivity
or specificity counts move by one), optionally from current posteriors (a soft count with the
candidate's P(real) *before* the vote, so a vote never validates itself), and can be reset
from a batch run with :meth:`OnlineSwap.from_result` (e.g. a nightly Dawid-Skene). With
skills frozen at the batch estimates, replaying the votes gives exactly the batch E-step:
online and batch agree in the limit.

The scalar functions :func:`vote_llr`, :func:`swap_update` and :func:`skill_update` are what
a web service needs per vote when it stores L per candidate and four Beta parameters per
(volunteer, regime); :class:`OnlineSwap` holds the same state in arrays for simulations.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from mlcore.aggregation.gold import GoldLike, gold_arrays
from mlcore.aggregation.retirement import RetirementRule
from mlcore.aggregation.votes import AggregateResult, VolunteerSkills

_EPS = 1e-6
DEFAULT_POPULATION = (0.75, 0.75)  # prior (sensitivity, specificity) before any evidence [E]


def _clip(p: float) -> float:
    return min(max(p, _EPS), 1.0 - _EPS)


def vote_llr(sensitivity: float, specificity: float, label: int) -> float:
    """log P(vote | real) - log P(vote | not real) for one binary vote."""
    s, c = _clip(sensitivity), _clip(specificity)
    return math.log(s) - math.log1p(-c) if label else math.log1p(-s) - math.log(c)


def swap_update(log_odds: float, sensitivity: float, specificity: float, label: int) -> float:
    """The candidate's new log-odds after one vote (Bayes' rule in log space)."""
    return log_odds + vote_llr(sensitivity, specificity, label)


def posterior_of(log_odds: float) -> float:
    """P(real) from log-odds, without overflow."""
    return 0.5 * (1.0 + math.tanh(0.5 * log_odds))


def log_odds_of(p: float) -> float:
    p = _clip(p)
    return math.log(p) - math.log1p(-p)


def skill_update(
    sens_ab: tuple[float, float], spec_ab: tuple[float, float], p_real: float, label: int
) -> tuple[tuple[float, float], tuple[float, float]]:
    """New Beta parameters of (sensitivity, specificity) after one vote.

    ``p_real`` is 1 or 0 for a gold candidate, else the soft label P(real) to learn from.
    A real candidate (weight p) counts a success for sensitivity if the vote said real; a
    fake one (weight 1 - p) counts a success for specificity if the vote said not real.
    """
    (sa, sb), (ca, cb) = sens_ab, spec_ab
    q = 1.0 - p_real
    if label:
        return (sa + p_real, sb), (ca, cb + q)
    return (sa, sb + p_real), (ca + q, cb)


@dataclass(frozen=True)
class VoteOutcome:
    posterior: float
    n_votes: int
    state: str  # 'active' | 'retired' | 'expert'


class OnlineSwap:
    """Array-backed online aggregation with per-vote retirement decisions.

    State: ``log_odds`` (N,), ``n_votes`` (N,), ``state`` (N,) codes of :mod:`retirement`,
    and Beta parameters ``sens_a, sens_b, spec_a, spec_b`` (V, R).
    """

    def __init__(
        self,
        n_candidates: int,
        n_volunteers: int,
        *,
        regime: np.ndarray | None = None,
        n_regimes: int | None = None,
        class_prior: float | np.ndarray = 0.5,
        population: tuple[float, float] = DEFAULT_POPULATION,
        prior_strength: float = 4.0,
        rule: RetirementRule | None = None,
        gold: GoldLike = None,
        model_llr: np.ndarray | None = None,
        learn_from_posterior: bool = False,
    ) -> None:
        self.regime = (
            np.zeros(n_candidates, dtype=np.intp)
            if regime is None
            else np.asarray(regime, dtype=np.intp)
        )
        if self.regime.shape != (n_candidates,):
            raise ValueError("regime must have one entry per candidate")
        n_reg = max(int(self.regime.max()) + 1 if n_candidates else 1, n_regimes or 1)
        pi = np.broadcast_to(np.asarray(class_prior, dtype=np.float64), (n_reg,))
        pi = np.clip(pi, _EPS, 1 - _EPS)
        self.log_odds = (np.log(pi) - np.log1p(-pi))[self.regime]
        if model_llr is not None:  # the CNN's evidence enters like one more vote
            self.log_odds = self.log_odds + np.nan_to_num(np.asarray(model_llr, dtype=float))
        self.n_votes = np.zeros(n_candidates, dtype=np.int32)
        self.state = np.zeros(n_candidates, dtype=np.int8)
        shape = (n_volunteers, n_reg)
        s0, c0 = population
        self.sens_a = np.full(shape, prior_strength * s0)
        self.sens_b = np.full(shape, prior_strength * (1 - s0))
        self.spec_a = np.full(shape, prior_strength * c0)
        self.spec_b = np.full(shape, prior_strength * (1 - c0))
        self.volunteer_votes = np.zeros(shape, dtype=np.int64)
        self.gold_mask, self.gold_truth = gold_arrays(gold, n_candidates)
        self.rule = rule or RetirementRule()
        self.learn_from_posterior = learn_from_posterior

    @classmethod
    def from_result(
        cls,
        result: AggregateResult,
        *,
        regime: np.ndarray | None = None,
        rule: RetirementRule | None = None,
        gold: GoldLike = None,
        model_llr: np.ndarray | None = None,
        learn_from_posterior: bool = False,
    ) -> OnlineSwap:
        """Start from a batch run's skills and class priors (candidates start at the prior).

        Pass the same ``regime`` the batch run used. Posteriors are not copied: replay the
        votes (or keep the batch posteriors and carry on) as suits the caller.
        """
        sk = result.skills
        n_vol = sk.sens_alpha.shape[0]
        online = cls(
            result.posterior.size,
            n_vol,
            regime=regime,
            n_regimes=sk.sens_alpha.shape[1],
            class_prior=result.class_prior,
            rule=rule,
            gold=gold,
            model_llr=model_llr,
            learn_from_posterior=learn_from_posterior,
        )
        if sk.sens_alpha.shape != online.sens_a.shape:
            raise ValueError("the result's skills have a different number of regimes")
        online.sens_a, online.sens_b = sk.sens_alpha.copy(), sk.sens_beta.copy()
        online.spec_a, online.spec_b = sk.spec_alpha.copy(), sk.spec_beta.copy()
        return online

    def refresh(self, result: AggregateResult) -> None:
        """Adopt a batch run's skills, class priors and posteriors (e.g. a nightly EM).

        The batch run must cover every vote applied so far (it replaces their evidence).
        States are kept: a retired candidate is not reopened, later votes only refine it.
        Unvoted candidates move to the batch class prior (and CNN evidence, if it had any).
        """
        sk = result.skills
        if sk.sens_alpha.shape != self.sens_a.shape:
            raise ValueError("the result's skills have a different shape (volunteers, regimes)")
        self.sens_a, self.sens_b = sk.sens_alpha.copy(), sk.sens_beta.copy()
        self.spec_a, self.spec_b = sk.spec_alpha.copy(), sk.spec_beta.copy()
        p = np.clip(result.posterior, _EPS, 1 - _EPS)
        lo = np.log(p) - np.log1p(-p)
        self.log_odds = np.where(self.gold_mask, self.log_odds, lo)

    @property
    def posterior(self) -> np.ndarray:
        p = 0.5 * (1.0 + np.tanh(0.5 * self.log_odds))
        return np.where(self.gold_mask, self.gold_truth, p)

    @property
    def skills(self) -> VolunteerSkills:
        return VolunteerSkills(
            self.sens_a, self.sens_b, self.spec_a, self.spec_b, self.volunteer_votes
        )

    def update(self, candidate: int, volunteer: int, label: int) -> VoteOutcome:
        """Apply one vote; return the candidate's posterior, vote count and state."""
        c, j, y = int(candidate), int(volunteer), int(label)
        if y not in (0, 1):
            raise ValueError("label must be 0 or 1 ('not sure' votes are not aggregated)")
        r = self.regime[c]
        self.n_votes[c] += 1
        self.volunteer_votes[j, r] += 1
        n = int(self.n_votes[c])
        if self.gold_mask[c]:  # a labelled trial: learn the skill, the truth is known
            truth = float(self.gold_truth[c])
            self._learn(j, r, truth, y)
            return VoteOutcome(truth, n, "active")
        sa, sb = self.sens_a[j, r], self.sens_b[j, r]
        ca, cb = self.spec_a[j, r], self.spec_b[j, r]
        lo = self.log_odds[c]
        if self.learn_from_posterior:
            self._learn(j, r, posterior_of(lo), y)
        lo = swap_update(lo, sa / (sa + sb), ca / (ca + cb), y)
        self.log_odds[c] = lo
        p = posterior_of(lo)
        if self.state[c] == 0:  # retired / expert are final: late votes only refine P
            code = self.rule.decide_one(p, n)
            self.state[c] = ("active", "retired", "expert").index(code)
        return VoteOutcome(p, n, ("active", "retired", "expert")[self.state[c]])

    def update_many(
        self, candidates: np.ndarray, volunteers: np.ndarray, labels: np.ndarray
    ) -> np.ndarray:
        """Apply votes in order (each sees the skills left by the ones before); posteriors."""
        out = np.empty(len(candidates))
        for k, (c, j, y) in enumerate(zip(candidates, volunteers, labels, strict=True)):
            out[k] = self.update(c, j, y).posterior
        return out

    def _learn(self, j: int, r: int, p_real: float, y: int) -> None:
        (sa, sb), (ca, cb) = skill_update(
            (self.sens_a[j, r], self.sens_b[j, r]),
            (self.spec_a[j, r], self.spec_b[j, r]),
            p_real,
            y,
        )
        self.sens_a[j, r], self.sens_b[j, r] = sa, sb
        self.spec_a[j, r], self.spec_b[j, r] = ca, cb
