"""Majority vote: the baseline every other method is compared against."""

from __future__ import annotations

import numpy as np

from mlcore.aggregation.skills import SkillPrior, VoteIndex, skills_from_counts
from mlcore.aggregation.votes import AggregateResult, VoteTable


def majority_vote(
    votes: VoteTable, *, regime: np.ndarray | None = None, prior: SkillPrior | None = None
) -> AggregateResult:
    """Posterior = fraction of 'real' votes (0.5 with no votes); label = posterior > 0.5.

    Ties (and unvoted candidates) therefore label 'not real'. Skills are each volunteer's
    agreement with the majority label (ties count half), per regime when ``regime`` is
    given, with the same Beta priors as Dawid-Skene: a cheap, biased skill estimate that is
    useful as a baseline and for seeding.
    """
    idx = VoteIndex(votes, regime)
    n = idx.n_votes
    yes = np.bincount(votes.candidate, weights=votes.label, minlength=votes.n_candidates)
    post = np.where(n > 0, yes / np.maximum(n, 1), 0.5)
    hard = np.where(post > 0.5, 1.0, np.where(post < 0.5, 0.0, 0.5))
    counts = idx.soft_counts(idx.at_votes(hard))
    skills = skills_from_counts(*counts, idx.cell_votes, prior or SkillPrior())
    return AggregateResult(
        method="majority",
        posterior=post,
        n_votes=n.astype(np.int32),
        skills=skills,
        class_prior=np.full(idx.n_regimes, 0.5),
    )
