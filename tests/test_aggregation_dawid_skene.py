"""Dawid-Skene EM: recovers planted confusion matrices and labels, down-weights spammers,
agrees with majority vote among equals, uses regimes, gold and the CNN as an annotator."""

from __future__ import annotations

import numpy as np

from mlcore.aggregation import (
    SkillPrior,
    VoteTable,
    dawid_skene,
    majority_vote,
    model_llr,
)


def planted(
    n_cand=4000,
    n_vol=200,
    votes_per=7,
    sens=None,
    spec=None,
    regime_gap=0.0,
    purity=(0.6, 0.6),
    seed=0,
):
    """Synthetic campaign: per-volunteer (sens, spec) at high S/N, lower by gap at low S/N."""
    rng = np.random.default_rng(seed)
    reg = (rng.random(n_cand) < 0.5).astype(int)
    truth = rng.random(n_cand) < np.asarray(purity)[reg]
    s = rng.beta(12, 2.5, n_vol) if sens is None else np.asarray(sens, float)
    c = rng.beta(12, 3, n_vol) if spec is None else np.asarray(spec, float)
    cand = np.repeat(np.arange(n_cand), votes_per)
    vol = np.concatenate([rng.choice(n_vol, votes_per, replace=False) for _ in range(n_cand)])
    s_true = np.stack([s - regime_gap, s], axis=1)  # (V, R)
    c_true = np.stack([c - regime_gap, c], axis=1)
    r_v = reg[cand]
    p_yes = np.where(truth[cand], s_true[vol, r_v], 1 - c_true[vol, r_v])
    lab = (rng.random(cand.size) < p_yes).astype(int)
    vt = VoteTable.from_arrays(cand, vol, lab, n_candidates=n_cand, n_volunteers=n_vol)
    return vt, truth, reg, s_true, c_true


def oracle_skills(vt, truth, reg):
    """(V, R) sensitivity and specificity counted against the true labels."""
    n_reg = int(reg.max()) + 1
    cell = vt.volunteer * n_reg + reg[vt.candidate]
    t = truth[vt.candidate]
    m = vt.n_volunteers * n_reg

    def rate(sel, hit):
        n = np.bincount(cell[sel], minlength=m)
        return (np.bincount(cell[sel], weights=hit[sel], minlength=m) / np.maximum(n, 1)).reshape(
            -1, n_reg
        )

    return rate(t, vt.label == 1), rate(~t, vt.label == 0)


def bayes_accuracy(vt, truth, reg, s, c, purity):
    """Accuracy of the exact posterior with the planted skills and priors (the ceiling)."""
    r_v = reg[vt.candidate]
    sv, cv = s[vt.volunteer, r_v], c[vt.volunteer, r_v]
    w = np.where(vt.label == 1, np.log(sv / (1 - cv)), np.log((1 - sv) / cv))
    pi = np.asarray(purity)[reg]
    lo = np.log(pi / (1 - pi)) + np.bincount(vt.candidate, weights=w, minlength=truth.size)
    return np.mean((lo > 0) == truth)


def test_recovers_planted_confusion_matrices_and_labels():
    vt, truth, reg, s, c = planted()
    r = dawid_skene(vt)
    assert r.converged
    # As close to the planted matrices as counting against the true labels gets.
    s_or, c_or = oracle_skills(vt, truth, np.zeros_like(reg))
    err_s = np.mean(np.abs(r.skills.sensitivity[:, 0] - s[:, 1]))
    err_c = np.mean(np.abs(r.skills.specificity[:, 0] - c[:, 1]))
    assert err_s < np.mean(np.abs(s_or[:, 0] - s[:, 1])) + 0.005 and err_s < 0.04
    assert err_c < np.mean(np.abs(c_or[:, 0] - c[:, 1])) + 0.005 and err_c < 0.05
    acc_ds = np.mean(r.label == truth)
    assert acc_ds > bayes_accuracy(vt, truth, reg, s, c, (0.6, 0.6)) - 0.005
    assert acc_ds >= np.mean(majority_vote(vt).label == truth)
    assert abs(r.class_prior[0] - truth.mean()) < 0.02


def test_regime_dependent_skills_are_recovered_and_help_at_low_sn():
    vt, truth, reg, s, c = planted(regime_gap=0.15, purity=(0.5, 0.9), seed=1)
    r = dawid_skene(vt, regime=reg)
    assert r.skills.sensitivity.shape == (200, 2)
    s_or, c_or = oracle_skills(vt, truth, reg)
    weak = dawid_skene(vt, regime=reg, prior=SkillPrior(strength=0.5, regime_strength=0.5))
    for est, true, orc, est_weak in (
        (r.skills.sensitivity, s, s_or, weak.skills.sensitivity),
        (r.skills.specificity, c, c_or, weak.skills.specificity),
    ):
        err = np.mean(np.abs(est - true), axis=0)
        # Near counting against the truth (low S/N labels are themselves uncertain) ...
        assert np.all(err < np.mean(np.abs(orc - true), axis=0) + 0.02), err
        # ... and the hierarchical prior (borrowing from the other regime) helps.
        assert np.mean(err) < np.mean(np.abs(est_weak - true))
    # Planted low-S/N skills are lower; the estimate sees the gap.
    gap = np.mean(r.skills.sensitivity[:, 1] - r.skills.sensitivity[:, 0])
    assert 0.1 < gap < 0.2
    real_frac = [truth[reg == k].mean() for k in (0, 1)]
    np.testing.assert_allclose(r.class_prior, real_frac, atol=0.05)
    # Against one skill per volunteer: better calibrated at low S/N (log loss, a proper
    # score) and at least as accurate overall.
    blind = dawid_skene(vt)
    low = reg == 0

    def log_loss(p):
        p = np.clip(p[low], 1e-9, 1 - 1e-9)
        return -np.mean(np.where(truth[low], np.log(p), np.log1p(-p)))

    assert log_loss(r.posterior) < log_loss(blind.posterior) - 0.005
    assert np.mean(r.label == truth) >= np.mean(blind.label == truth)


def test_spammers_get_near_zero_weight_and_do_not_move_posteriors():
    rng = np.random.default_rng(2)
    n_vol = 100
    s, c = rng.beta(12, 2.5, n_vol), rng.beta(12, 3, n_vol)
    spam = np.arange(n_vol) < 10
    yes_rate = rng.uniform(0.3, 0.7, n_vol)
    s[spam], c[spam] = yes_rate[spam], 1 - yes_rate[spam]  # answer ignores the truth
    s[0], c[0] = 1.0, 0.0  # always-yes
    vt, truth, *_ = planted(n_cand=6000, n_vol=n_vol, votes_per=9, sens=s, spec=c, seed=3)
    r = dawid_skene(vt)
    w = r.skills.weight[:, 0]
    assert np.all(np.abs(w[spam]) < 0.12)
    assert np.mean(np.abs(w[spam])) < 0.05
    assert np.median(w[~spam]) > 0.6
    # The evidence of a spammer's vote is small next to an honest one's.
    from mlcore.aggregation.skills import vote_llr_table

    llr = np.abs(vote_llr_table(r.skills)[:, 0, :]).max(axis=1)
    assert np.median(llr[spam]) < 0.15 * np.median(llr[~spam])


def test_majority_and_dawid_skene_agree_when_volunteers_are_equally_good():
    n_vol = 60
    vt, truth, *_ = planted(
        n_vol=n_vol,
        votes_per=5,
        sens=np.full(n_vol, 0.8),
        spec=np.full(n_vol, 0.8),
        purity=(0.5, 0.5),
        seed=4,
    )
    agree = np.mean(dawid_skene(vt).label == majority_vote(vt).label)
    assert agree > 0.995


def test_few_votes_are_not_declared_perfect():
    # Volunteer 0 has 3 correct votes only; the prior keeps them well short of perfect.
    vt, truth, *_ = planted(seed=5)
    extra_c = np.array([0, 1, 2])
    lab = truth[extra_c].astype(int)
    vt2 = VoteTable.from_arrays(
        np.concatenate([vt.candidate, extra_c]),
        np.concatenate([vt.volunteer, [200, 200, 200]]),
        np.concatenate([vt.label, lab]),
        n_candidates=vt.n_candidates,
        n_volunteers=201,
    )
    sk = dawid_skene(vt2).skills
    assert sk.sensitivity[200, 0] < 0.95 and sk.specificity[200, 0] < 0.95
    assert sk.sensitivity_std[200, 0] > 3 * np.median(sk.sensitivity_std[:200, 0])
    weaker = dawid_skene(vt2, prior=SkillPrior(strength=0.5)).skills
    assert weaker.sensitivity[200, 0] > sk.sensitivity[200, 0]  # the prior is what holds it


def test_gold_seeds_skills_and_rescues_an_adversarial_majority():
    # 70% of volunteers answer the opposite of the truth most of the time: without gold,
    # EM starting from majority vote locks onto the flipped solution; gold breaks it.
    n_vol = 50
    rng = np.random.default_rng(6)
    adv = rng.random(n_vol) < 0.7
    s = np.where(adv, 0.25, 0.9)
    vt, truth, *_ = planted(n_cand=3000, n_vol=n_vol, votes_per=7, sens=s, spec=s, seed=6)
    gold_idx = np.arange(300)
    gold = (gold_idx, truth[gold_idx].astype(int))
    no_gold = dawid_skene(vt)
    with_gold = dawid_skene(vt, gold=gold)
    rest = np.arange(300, 3000)
    assert np.mean(no_gold.label[rest] == truth[rest]) < 0.5
    assert np.mean(with_gold.label[rest] == truth[rest]) > 0.95
    assert np.all(with_gold.posterior[gold_idx] == truth[gold_idx])  # clamped
    assert np.all(with_gold.skills.sensitivity[adv, 0] < 0.5)


def test_cnn_is_an_annotator_with_a_learned_confusion_per_regime():
    vt, truth, reg, *_ = planted(n_cand=5000, votes_per=3, seed=7)
    rng = np.random.default_rng(7)
    # A CNN that is sharp at high S/N and weak at low S/N.
    sep = np.where(reg == 1, 3.0, 0.8)
    scores = 1 / (1 + np.exp(-(sep * (2 * truth - 1) + rng.normal(0, 1, truth.size))))
    crowd = dawid_skene(vt, regime=reg)
    both = dawid_skene(vt, regime=reg, model_scores=scores)
    assert both.model is not None and both.method.endswith("+cnn")
    # Evidence of the top bin is much stronger at high than at low S/N.
    assert both.model.llr[1, -1] > both.model.llr[0, -1] + 1.0
    assert np.mean(both.label == truth) > np.mean(crowd.label == truth) + 0.01
    # The per-candidate evidence helper reproduces the EM's use of the model.
    llr = model_llr(both.model, scores, reg)
    assert llr.shape == (5000,) and np.all(np.sign(llr[scores > 0.9]) > 0)


def test_unvoted_candidates_get_the_class_prior_and_nan_scores_are_ignored():
    vt, truth, reg, *_ = planted(n_cand=500, seed=8)
    bigger = VoteTable.from_arrays(
        vt.candidate, vt.volunteer, vt.label, n_candidates=510, n_volunteers=vt.n_volunteers
    )
    reg2 = np.concatenate([reg, np.zeros(10, int)])
    scores = np.full(510, np.nan)
    r = dawid_skene(bigger, regime=reg2, model_scores=scores)
    np.testing.assert_allclose(r.posterior[500:], r.class_prior[0])
    assert r.n_votes[500:].sum() == 0
