"""Dawid-Skene EM for binary labels, with regime-dependent skills, gold and the CNN.

Model. Candidate i in S/N regime r(i) is real with prior pi_r. Volunteer j in regime r
answers with sensitivity s_jr and specificity c_jr (their 2x2 confusion matrix). Votes are
independent given the truth. The CNN is one more annotator: its score, binned into B bins,
is a categorical answer with its own per-regime confusion P(bin | class, r).

EM (MAP, with the Beta priors of :mod:`mlcore.aggregation.skills`):
  E-step, in log-odds for stability (products of many small probabilities never form):
      L_i = logit(pi_r) + sum_{votes v on i} llr_j(v) + llr_model(bin_i),   T_i = sigmoid(L_i)
      llr for a yes = log s - log(1-c); for a no = log(1-s) - log c.
      Gold candidates are clamped to their truth.
  M-step: soft counts per (volunteer, regime) from T at each vote -> Beta posteriors
      (skills); pi_r = (sum T + a) / (n_r + a + b) over voted candidates; model bin
      frequencies weighted by T and 1 - T plus a Dirichlet(1) pseudo-count per bin.
Each iteration is two gathers and two ``np.bincount`` calls over the votes (plus O(N)
candidate work): no dense volunteer x candidate array ever exists.

Initialisation: with gold, skills come from the gold votes alone ("gold seeds each
volunteer's skill") followed by an E-step; without gold, T = fraction of yes votes
(the classic start, which also fixes the label-switching symmetry on the honest side).

The model confusion is fitted on candidates that have votes or gold only, so the crowd
calibrates the CNN rather than the CNN confirming itself on the unvoted millions; the CNN
still contributes to every scored candidate's posterior. If the CNN was trained on these same
labels its evidence is not independent of the votes: feed scores from a model that did not
see the candidate (held-out fold), or accept some over-confidence.
"""

from __future__ import annotations

import numpy as np

from mlcore.aggregation.gold import GoldLike, gold_arrays
from mlcore.aggregation.skills import (
    SkillPrior,
    VoteIndex,
    _logit,
    _sigmoid,
    skills_from_counts,
)
from mlcore.aggregation.votes import AggregateResult, ModelConfusion, VolunteerSkills, VoteTable

DEFAULT_MODEL_EDGES = (0.1, 0.3, 0.5, 0.7, 0.9)  # inner edges -> 6 score bins


def _model_bins(scores: np.ndarray, edges: np.ndarray, n: int) -> np.ndarray:
    """Bin index per candidate, -1 where the CNN has no score (NaN)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.shape != (n,):
        raise ValueError(f"model_scores must have one entry per candidate ({n})")
    ok = np.isfinite(scores)
    if ok.any() and (scores[ok].min() < 0 or scores[ok].max() > 1):
        raise ValueError("model_scores must be probabilities in [0, 1] (NaN = not scored)")
    b = np.searchsorted(edges, np.where(ok, scores, 0.0), side="right")
    return np.where(ok, b, -1).astype(np.intp)


def _fit_model(
    key: np.ndarray, fit: np.ndarray, t: np.ndarray, n_keys: int, n_reg: int, edges: np.ndarray
) -> ModelConfusion:
    """Per-regime categorical confusion of the binned CNN score (Dirichlet(1) prior)."""
    cr = np.bincount(key[fit], weights=t[fit], minlength=n_keys).reshape(n_reg, -1)
    cf = np.bincount(key[fit], weights=1.0 - t[fit], minlength=n_keys).reshape(n_reg, -1)
    pr = (cr + 1.0) / (cr + 1.0).sum(axis=1, keepdims=True)
    pf = (cf + 1.0) / (cf + 1.0).sum(axis=1, keepdims=True)
    return ModelConfusion(edges, pr, pf, cr, cf)


def model_llr(
    model: ModelConfusion, model_scores: np.ndarray, regime: np.ndarray | None = None
) -> np.ndarray:
    """Per-candidate log-odds evidence of the CNN score under a learned confusion (0 if NaN).

    Use it to seed :class:`OnlineSwap` with the CNN as an annotator.
    """
    scores = np.asarray(model_scores, dtype=np.float64)
    n = scores.size
    bins = _model_bins(scores, model.edges, n)
    reg = np.zeros(n, dtype=np.intp) if regime is None else np.asarray(regime, dtype=np.intp)
    return np.where(bins >= 0, model.llr[reg, np.maximum(bins, 0)], 0.0)


def _params(skills: VolunteerSkills, pi: np.ndarray, model: ModelConfusion | None) -> np.ndarray:
    parts = [skills.sensitivity.ravel(), skills.specificity.ravel(), pi]
    if model is not None:
        parts += [model.p_bin_given_real.ravel(), model.p_bin_given_fake.ravel()]
    return np.concatenate(parts)


def dawid_skene(
    votes: VoteTable,
    *,
    regime: np.ndarray | None = None,
    prior: SkillPrior | None = None,
    gold: GoldLike = None,
    model_scores: np.ndarray | None = None,
    model_edges: tuple[float, ...] = DEFAULT_MODEL_EDGES,
    max_iter: int = 100,
    tol: float = 1e-4,
) -> AggregateResult:
    """Skill-weighted posterior P(real) per candidate by Dawid-Skene EM.

    ``regime`` (N,) int: per-candidate S/N regime (see :func:`regime_index`); skills and
    class priors are then per regime. ``gold``: ``{candidate: truth}`` or
    ``(indices, truths)``. ``model_scores`` (N,) CNN P(real), NaN where unscored: the CNN
    becomes an annotator with a learned per-regime confusion over ``model_edges`` bins.
    Stops when no parameter (skill, class prior, CNN bin probability) moves by more than
    ``tol`` in an iteration, or after ``max_iter``. Parameters rather than posteriors: a
    candidate sitting at P = 0.5 keeps moving long after every label and skill is settled.
    Candidates with no votes get the class prior (times the CNN evidence, if scored).
    """
    prior = prior or SkillPrior()
    idx = VoteIndex(votes, regime)
    n, n_reg = votes.n_candidates, idx.n_regimes
    gmask, gtruth = gold_arrays(gold, n)
    observed = (idx.n_votes > 0) | gmask
    n_obs = np.bincount(idx.regime[observed], minlength=n_reg)
    a_pi, b_pi = prior.class_prior

    model_key = fit_model = None
    edges = np.asarray(model_edges, dtype=np.float64)
    if model_scores is not None:
        bins = _model_bins(model_scores, edges, n)
        n_bins = edges.size + 1
        scored = bins >= 0
        model_key = np.where(scored, idx.regime * n_bins + bins, 0)
        fit_model = observed & scored

    def m_step(t: np.ndarray, vote_weight: np.ndarray | None = None):
        counts = idx.soft_counts(idx.at_votes(t), vote_weight)
        skills = skills_from_counts(*counts, idx.cell_votes, prior)
        pi = (np.bincount(idx.regime[observed], weights=t[observed], minlength=n_reg) + a_pi) / (
            n_obs + a_pi + b_pi
        )
        model = None
        if model_key is not None:
            model = _fit_model(model_key, fit_model, t, n_reg * n_bins, n_reg, edges)
        return skills, pi, model

    def e_step(skills: VolunteerSkills, pi: np.ndarray, model: ModelConfusion | None):
        log_odds = _logit(pi)[idx.regime] + idx.candidate_llr(skills)
        if model is not None:
            log_odds += np.where(scored, model.llr.reshape(-1)[model_key], 0.0)
        t = _sigmoid(log_odds)
        t[gmask] = gtruth[gmask]
        return t

    if gmask.any():
        # Seed skills from the gold votes alone (T = truth there, weight 0 elsewhere).
        on_gold = gmask[votes.candidate].astype(np.float64)
        t0 = np.where(gmask, gtruth, 0.5)
        skills, pi, model = m_step(t0, on_gold)
        if model_key is not None:  # the CNN has no gold-only estimate yet: leave it out
            model = None
        t = e_step(skills, pi, model)
    else:
        yes = np.bincount(votes.candidate, weights=votes.label, minlength=n)
        t = np.where(idx.n_votes > 0, yes / np.maximum(idx.n_votes, 1), 0.5)

    converged, it, params = False, 0, None
    for it in range(1, max_iter + 1):  # noqa: B007 - `it` is reported
        skills, pi, model = m_step(t)
        t = e_step(skills, pi, model)
        new = _params(skills, pi, model)
        if params is not None and float(np.max(np.abs(new - params))) < tol:
            converged = True
            break
        params = new
    return AggregateResult(
        method="dawid_skene" + ("+regime" if n_reg > 1 else "") + ("+cnn" if model else ""),
        posterior=t,
        n_votes=idx.n_votes.astype(np.int32),
        skills=skills,
        class_prior=pi,
        iterations=it,
        converged=converged,
        model=model,
    )
