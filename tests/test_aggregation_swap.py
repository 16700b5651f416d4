"""Online SWAP: per-vote Bayes updates, gold-learned skills, agreement with batch EM."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlcore.aggregation import (
    OnlineSwap,
    RetirementRule,
    SkillPrior,
    VoteTable,
    dawid_skene,
    posterior_of,
    skill_update,
    swap_update,
    vote_llr,
)


def campaign(n_cand=3000, n_vol=80, votes_per=6, seed=0):
    rng = np.random.default_rng(seed)
    reg = (rng.random(n_cand) < 0.5).astype(int)
    truth = rng.random(n_cand) < np.where(reg == 1, 0.85, 0.55)
    s, c = rng.beta(10, 2.5, n_vol), rng.beta(10, 3, n_vol)
    gap = np.where(reg == 1, 0.0, 0.12)
    cand = np.repeat(np.arange(n_cand), votes_per)
    vol = np.concatenate([rng.choice(n_vol, votes_per, replace=False) for _ in range(n_cand)])
    order = rng.permutation(cand.size)  # a time-ordered stream, candidates interleaved
    cand, vol = cand[order], vol[order]
    p_yes = np.where(truth[cand], s[vol] - gap[cand], 1 - c[vol] + gap[cand])
    lab = (rng.random(cand.size) < p_yes).astype(int)
    vt = VoteTable.from_arrays(cand, vol, lab, n_candidates=n_cand, n_volunteers=n_vol)
    return vt, truth, reg


def test_scalar_update_is_bayes_rule():
    p0, s, c = 0.3, 0.8, 0.7
    lo = swap_update(math.log(p0 / (1 - p0)), s, c, 1)
    expect = p0 * s / (p0 * s + (1 - p0) * (1 - c))
    assert posterior_of(lo) == pytest.approx(expect, rel=1e-12)
    assert vote_llr(0.6, 0.4, 1) == pytest.approx(0.0)  # s = 1 - c: no evidence
    assert vote_llr(0.6, 0.4, 0) == pytest.approx(0.0)


def test_skill_update_counts_gold_trials():
    (sa, sb), (ca, cb) = skill_update((1.0, 1.0), (1.0, 1.0), 1.0, 1)
    assert (sa, sb, ca, cb) == (2.0, 1.0, 1.0, 1.0)  # real, said real: sensitivity success
    (sa, sb), (ca, cb) = skill_update((1.0, 1.0), (1.0, 1.0), 0.0, 1)
    assert (sa, sb, ca, cb) == (1.0, 1.0, 1.0, 2.0)  # fake, said real: specificity failure


def test_online_with_batch_skills_reproduces_the_batch_posterior():
    vt, truth, reg = campaign()
    batch = dawid_skene(vt, regime=reg)
    online = OnlineSwap.from_result(batch, regime=reg)
    online.update_many(vt.candidate, vt.volunteer, vt.label)
    np.testing.assert_allclose(online.posterior, batch.posterior, rtol=0, atol=1e-9)
    assert np.array_equal(online.n_votes, batch.n_votes)


def test_gold_learned_online_skills_equal_batch_skills_from_gold():
    vt, truth, reg = campaign(seed=1)
    gold = (np.arange(vt.n_candidates), truth.astype(int))  # everything is gold
    prior = SkillPrior(population=(0.75, 0.75), strength=4.0)
    online = OnlineSwap(
        vt.n_candidates, vt.n_volunteers, regime=reg, population=(0.75, 0.75), gold=gold
    )
    online.update_many(vt.candidate, vt.volunteer, vt.label)
    # Batch with one regime-independent prior: the regime prior strength does not apply
    # to a (V, 2) table here, so compare per regime against the gold-clamped single-regime
    # estimate computed on that regime's votes alone.
    for r in (0, 1):
        keep = reg[vt.candidate] == r
        sub = VoteTable.from_arrays(
            vt.candidate[keep],
            vt.volunteer[keep],
            vt.label[keep],
            n_candidates=vt.n_candidates,
            n_volunteers=vt.n_volunteers,
        )
        batch = dawid_skene(sub, prior=prior, gold=gold)
        np.testing.assert_allclose(online.skills.sensitivity[:, r], batch.skills.sensitivity[:, 0])
        np.testing.assert_allclose(online.skills.specificity[:, r], batch.skills.specificity[:, 0])


def test_online_learning_converges_towards_batch_labels():
    """With skills learned from gold only, online labels approach the batch labels as the
    gold set grows (skills are then known better); a refresh makes them identical."""
    vt, truth, reg = campaign(n_cand=4000, seed=2)
    agree = []
    for n_gold in (200, 1000):
        gold_idx = np.arange(n_gold)
        gold = (gold_idx, truth[gold_idx].astype(int))
        pi = np.array([truth[gold_idx][reg[gold_idx] == r].mean() for r in (0, 1)])
        # Stream the gold votes first (volunteers' training), then the rest.
        first = np.argsort(~np.isin(vt.candidate, gold_idx), kind="stable")
        online = OnlineSwap(vt.n_candidates, vt.n_volunteers, regime=reg, gold=gold, class_prior=pi)
        online.update_many(vt.candidate[first], vt.volunteer[first], vt.label[first])
        batch = dawid_skene(vt, regime=reg, gold=gold)
        rest = np.arange(n_gold, 4000)
        agree.append(np.mean((online.posterior[rest] > 0.5) == (batch.posterior[rest] > 0.5)))
    assert agree[1] > agree[0] and agree[1] > 0.95
    online.refresh(batch)
    np.testing.assert_allclose(online.posterior[rest], batch.posterior[rest], atol=1e-6)


def test_update_reports_retirement_exactly_when_the_posterior_crosses():
    rule = RetirementRule(p_real_hi=0.95, p_real_lo=0.05, min_votes=2, max_votes=4)
    online = OnlineSwap(3, 1, class_prior=0.5, population=(0.9, 0.9), prior_strength=1e6, rule=rule)
    # Each yes multiplies the odds by 9: 0.9 after one vote (min_votes not met), 0.988 after 2.
    first = online.update(0, 0, 1)
    assert first.state == "active" and first.posterior == pytest.approx(0.9)
    second = online.update(0, 0, 1)
    assert second.state == "retired" and second.n_votes == 2
    # Alternating votes never get confident: expert queue at the 4th vote, not before.
    states = [online.update(1, 0, y).state for y in (1, 0, 1, 0)]
    assert states == ["active", "active", "active", "expert"]


def test_gold_votes_train_skills_but_keep_gold_posterior():
    online = OnlineSwap(2, 1, gold={0: 1}, population=(0.75, 0.75), prior_strength=4.0)
    out = online.update(0, 0, 0)  # a miss on a real gold candidate
    assert out.posterior == 1.0
    assert online.skills.sensitivity[0, 0] == pytest.approx(3.0 / 5.0)
    assert online.log_odds[1] == 0.0  # other candidates untouched


def test_not_sure_label_is_refused():
    with pytest.raises(ValueError, match="not sure"):
        OnlineSwap(1, 1).update(0, 0, -1)
