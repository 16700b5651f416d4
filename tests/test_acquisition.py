"""Acquisition: scores, the random share, low-S/N emphasis, diversity, priorities."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore.acquisition import (
    SKY_RESIDUAL_WINDOWS_A,
    AcquisitionConfig,
    bald_from_samples,
    bald_score,
    batch_diversity,
    entropy_score,
    kcenter_greedy,
    margin_score,
    priorities,
    random_score,
    select_batch,
    wavelength_strata,
)
from mlcore.simulator.params import SimParams
from mlcore.survey import regime_of


def catalogue(n=5000, seed=0):
    """Scores and metadata for n candidates: S/N spread over both regimes, wave uniform."""
    rng = np.random.default_rng(seed)
    return {
        "prob": rng.random(n).astype(np.float32),
        "bald": rng.gamma(1.0, 0.05, n).astype(np.float32),
        "sn": rng.uniform(4.8, 8.0, n).astype(np.float32),
        "wave": rng.uniform(3600.0, 5100.0, n).astype(np.float32),
    }


def cfg(**kw):
    base = {
        "strategy": "bald",
        "batch_size": 100,
        "random_fraction": 0.0,
        "low_sn_weight": 1.0,
        "diversity": "none",
        "power": None,  # strict top-k: the order these tests check
    }
    return AcquisitionConfig(**{**base, **kw})


# --- scores ------------------------------------------------------------------------------


def test_uncertainty_scores_peak_at_one_half_and_are_symmetric():
    p = np.array([0.01, 0.2, 0.5, 0.7, 0.99])
    for f in (entropy_score, margin_score):
        s = f(p)
        assert np.argmax(s) == 2
        assert list(np.argsort(-s)) == [2, 3, 1, 4, 0] or list(np.argsort(-s)) == [2, 3, 1, 0, 4]
        assert np.isclose(f(np.array([0.3]))[0], f(np.array([0.7]))[0])
    assert np.isclose(entropy_score(np.array([0.5]))[0], np.log(2))  # nats, as scoring
    assert np.allclose(margin_score(np.array([0.0, 0.25, 0.5, 1.0])), [0.0, 0.5, 1.0, 0.0])


def test_bald_score_keeps_the_order_and_bald_from_samples_matches_the_definition():
    b = np.array([0.3, 0.01, 0.2, -1e-9])
    assert list(np.argsort(-bald_score(b))) == [0, 2, 1, 3]
    assert bald_score(b)[3] == 0.0
    agree = np.full((5, 3), 0.5)  # every member says 0.5: no disagreement, no BALD
    assert np.allclose(bald_from_samples(agree), 0.0)
    split = np.array([[0.01], [0.99]])  # members disagree completely
    h = lambda x: -(x * np.log(x) + (1 - x) * np.log(1 - x))  # noqa: E731
    assert np.isclose(bald_from_samples(split)[0], h(0.5) - h(0.01))


def test_random_score_is_seeded():
    a = random_score(10, np.random.default_rng(3))
    assert np.array_equal(a, random_score(10, np.random.default_rng(3)))
    assert a.shape == (10,) and (a >= 0).all() and (a < 1).all()


@pytest.mark.parametrize("strategy", ["entropy", "margin"])
def test_uncertainty_strategies_pick_the_least_certain(strategy):
    prob = np.array([0.02, 0.5, 0.9, 0.45, 0.99, 0.6])
    n = len(prob)
    res = select_batch(
        prob=prob,
        sn=np.full(n, 6.0),
        wave=np.full(n, 4000.0),
        config=cfg(strategy=strategy, batch_size=3),
    )
    assert list(res.index) == [1, 3, 5]


def test_bald_strategy_follows_bald_not_prob():
    bald = np.array([0.01, 0.3, 0.0, 0.2, 0.05])
    prob = np.array([0.5, 0.01, 0.5, 0.99, 0.5])
    res = select_batch(
        prob=prob, bald=bald, sn=np.full(5, 6.0), wave=np.full(5, 4000.0), config=cfg(batch_size=3)
    )
    assert list(res.index) == [1, 3, 4]
    assert np.all(np.diff(res.score) <= 0) and np.all(np.diff(res.priority) < 0)


# --- power (stochastic) acquisition --------------------------------------------------------


def test_power_acquisition_draws_in_proportion_to_score_to_the_power():
    # Two candidates with score 3 and 1: drawing one, P(first) = 3**b / (3**b + 1).
    prob, sn, wave = np.full(2, 0.5), np.full(2, 6.0), np.full(2, 4000.0)
    bald = np.array([0.3, 0.1])
    for power, expected in ((1.0, 0.75), (2.0, 0.9)):
        first = [
            select_batch(
                prob=prob, bald=bald, sn=sn, wave=wave,
                config=cfg(batch_size=1, power=power, seed=s),
            ).index[0] == 0
            for s in range(2000)
        ]  # fmt: skip
        assert abs(np.mean(first) - expected) < 0.03, (power, np.mean(first))


def test_power_acquisition_spreads_the_batch_but_favours_high_scores():
    c = catalogue(n=20000)
    top = select_batch(**c, config=cfg(batch_size=500))
    drawn = select_batch(**c, config=cfg(batch_size=500, power=1.0, seed=3))
    assert len(set(drawn.index)) == 500
    # not the top-k, but far above a uniform draw in score
    assert len(set(drawn.index) & set(top.index)) < 250
    assert np.median(c["bald"][drawn.index]) > 2 * np.median(c["bald"])
    again = select_batch(**c, config=cfg(batch_size=500, power=1.0, seed=3))
    assert list(again.index) == list(drawn.index)  # seeded
    assert np.all(np.diff(drawn.priority) < 0)


def test_power_acquisition_keeps_eligibility_and_the_random_share():
    c = catalogue(n=3000)
    elig = np.ones(3000, bool)
    elig[::2] = False
    res = select_batch(
        **c, eligible=elig,
        config=cfg(batch_size=200, power=1.0, random_fraction=0.2, diversity="wavelength"),
    )  # fmt: skip
    assert elig[res.index].all() and res.n_random == 40 and res.n_exploit == 160
    zero = {**c, "bald": np.zeros(3000, np.float32)}  # all-zero scores: a uniform draw, no NaN
    assert len(select_batch(**zero, config=cfg(batch_size=50, power=1.0)).index) == 50


# --- carry-over ----------------------------------------------------------------------------


@pytest.mark.parametrize("diversity", ["none", "wavelength"])
def test_carried_candidates_lead_the_batch_in_the_order_given(diversity):
    c = catalogue(n=2000)
    carry = np.array([1500, 7, 901, 42])
    res = select_batch(
        **c, carry=carry,
        config=cfg(batch_size=100, random_fraction=0.1, carry_fraction=0.5, diversity=diversity),
    )  # fmt: skip
    assert res.index[:4].tolist() == carry.tolist() and res.n_carry == 4
    assert (res.reason[:4] == "carry").all() and not (res.reason[4:] == "carry").any()
    assert len(res.index) == 100 and len(set(res.index.tolist())) == 100
    # the shares split what is left: 96 -> 10 random (rounded), 86 exploit
    assert (res.n_random, res.n_exploit) == (10, 86)
    assert np.all(np.diff(priorities(res)[res.index]) < 0)  # carried are served first


def test_carry_is_capped_skips_ineligible_and_repeats_and_zero_turns_it_off():
    c = catalogue(n=1000)
    elig = np.ones(1000, bool)
    elig[5] = False  # e.g. settled since it was passed on
    carry = np.array([5, 3, 3, 8, 9, 10, 11, 12])
    res = select_batch(
        **c, eligible=elig, carry=carry, config=cfg(batch_size=10, carry_fraction=0.3)
    )
    assert res.index[: res.n_carry].tolist() == [3, 8, 9]  # floor(0.3 * 10), 5 and the repeat gone
    none = select_batch(**c, carry=carry, config=cfg(batch_size=10))  # off by default
    assert none.n_carry == 0
    assert none.index.tolist() == select_batch(**c, config=cfg(batch_size=10)).index.tolist()
    whole = select_batch(**c, carry=np.arange(20), config=cfg(batch_size=10, carry_fraction=1.0))
    assert whole.index.tolist() == list(range(10)) and whole.n_exploit == whole.n_random == 0


def test_bad_carry_says_what_is_wrong():
    c = catalogue(n=50)
    with pytest.raises(ValueError, match="carry_fraction must be in"):
        AcquisitionConfig(carry_fraction=1.2)
    with pytest.raises(ValueError, match="outside 0..49"):
        select_batch(**c, carry=np.array([3, 50]), config=cfg())
    with pytest.raises(ValueError, match="1-D array of row indices"):
        select_batch(**c, carry=np.array([0.5]), config=cfg())


# --- shift share (field-aware acquisition, issue #25) --------------------------------------


@pytest.mark.parametrize("diversity", ["none", "wavelength"])
def test_shift_share_goes_to_the_best_ranked_shifted_candidates(diversity):
    c = catalogue(n=2000)
    shifted = np.zeros(2000, bool)
    shifted[1500:] = True  # one field the model has not seen
    config = cfg(batch_size=100, random_fraction=0.1, shift_fraction=0.3, diversity=diversity)
    res = select_batch(**c, shifted=shifted, config=config)
    lead = res.index[:30]
    assert (res.reason[:30] == "shift").all() and not (res.reason[30:] == "shift").any()
    assert shifted[lead].all()
    # the best of the shifted field by the same acquisition score (power sampling is off)
    pool = np.flatnonzero(shifted)
    best = pool[np.argsort(-res.all_scores[pool], kind="stable")[:30]]
    assert sorted(lead.tolist()) == sorted(best.tolist())
    assert len(res.index) == 100 and len(set(res.index.tolist())) == 100
    assert (res.n_random, res.n_exploit) == (7, 63)  # the shares split the 70 left
    assert np.all(np.diff(priorities(res)[res.index]) < 0)  # served right after any carry
    without = select_batch(**c, config=cfg(batch_size=100, random_fraction=0.1))
    assert np.count_nonzero(shifted[without.index]) < 30  # the share is what put them there


def test_shift_share_after_carry_capped_by_the_shifted_pool_and_off_by_default():
    c = catalogue(n=1000)
    shifted = np.zeros(1000, bool)
    shifted[[3, 500, 501]] = True
    carry = np.array([3, 8])
    res = select_batch(
        **c, carry=carry, shifted=shifted,
        config=cfg(batch_size=20, carry_fraction=0.5, shift_fraction=0.5),
    )  # fmt: skip
    assert res.index[:2].tolist() == [3, 8]  # carried first, and 3 is not picked twice
    assert sorted(res.index[2:4].tolist()) == [500, 501]  # only two shifted left
    assert (res.reason[2:4] == "shift").all() and len(res.index) == 20
    off = select_batch(**c, shifted=shifted, config=cfg(batch_size=20))
    assert not (off.reason == "shift").any()
    assert off.index.tolist() == select_batch(**c, config=cfg(batch_size=20)).index.tolist()


def test_bad_shift_input_says_what_is_wrong():
    c = catalogue(n=50)
    with pytest.raises(ValueError, match="shift_fraction must be in"):
        AcquisitionConfig(shift_fraction=-0.1)
    with pytest.raises(ValueError, match="shifted must be a boolean mask"):
        select_batch(**c, shifted=np.zeros(50), config=cfg(shift_fraction=0.5))


# --- random share --------------------------------------------------------------------------


def test_random_share_is_exact_and_spread_through_the_order():
    c = catalogue()
    res = select_batch(**c, config=cfg(batch_size=500, random_fraction=0.1))
    assert res.n_random == 50 and res.n_exploit == 450 and len(set(res.index)) == 500
    exploit_only = select_batch(**c, config=cfg(batch_size=450))
    assert set(res.index[res.reason == "exploit"]) == set(exploit_only.index)
    pos = np.flatnonzero(res.reason == "random")
    assert pos.min() < 50 and pos.max() > 450  # interleaved, not all at the end


def test_random_share_never_rounds_to_zero_unless_configured_zero():
    c = catalogue()
    assert select_batch(**c, config=cfg(batch_size=4, random_fraction=0.1)).n_random == 1
    assert select_batch(**c, config=cfg(batch_size=4, random_fraction=0.0)).n_random == 0
    assert AcquisitionConfig().random_fraction > 0  # the default is never pure exploitation


def test_random_picks_are_uniform_not_by_score():
    c = catalogue(n=20000)
    res = select_batch(**c, config=cfg(batch_size=2000, random_fraction=0.5, seed=1))
    rand = res.index[res.reason == "random"]
    # the exploit share takes the top-1000 BALD; random picks come from everything else
    rest_median = np.median(np.delete(c["bald"], res.index[res.reason == "exploit"]))
    assert abs(np.median(c["bald"][rand]) - rest_median) < 0.2 * rest_median


# --- low-S/N emphasis ----------------------------------------------------------------------


def test_low_sn_weight_moves_the_low_regime_up():
    c = catalogue()
    low = regime_of(c["sn"]) == "low"
    flat = select_batch(**c, config=cfg(batch_size=200, low_sn_weight=1.0))
    heavy = select_batch(**c, config=cfg(batch_size=200, low_sn_weight=3.0))
    assert low[heavy.index].mean() > low[flat.index].mean() + 0.2
    assert np.allclose(
        heavy.score[low[heavy.index]], 3.0 * c["bald"][heavy.index][low[heavy.index]]
    )


def test_low_sn_weight_of_one_leaves_the_order_unchanged():
    c = catalogue()
    res = select_batch(**c, config=cfg(batch_size=300, low_sn_weight=1.0))
    assert np.array_equal(res.index, np.argsort(-c["bald"], kind="stable")[:300])


def test_low_regime_edges_follow_regime_of():
    sn = np.array([4.7, 4.8, 5.5, 5.51, 9.0], np.float32)
    res = select_batch(
        prob=np.full(5, 0.5),
        bald=np.full(5, 0.1),
        sn=sn,
        wave=np.full(5, 4000.0),
        config=cfg(batch_size=5, low_sn_weight=2.0),
    )
    boosted = np.isclose(res.all_scores, 0.2)
    assert list(boosted) == list(regime_of(sn) == "low")


# --- diversity ------------------------------------------------------------------------------


def sky_trap(n_other=4000, n_sky=1000, seed=0):
    """1000 identical top-BALD candidates at the sky line 5200 A among ordinary ones."""
    c = catalogue(n_other + n_sky, seed)
    c["wave"][:n_sky] = 5200.0
    c["bald"][:n_sky] = 1.0
    return c, n_sky


def test_wavelength_cap_stops_a_sky_line_cluster_filling_the_batch():
    c, n_sky = sky_trap()
    plain = select_batch(**c, config=cfg(batch_size=500))
    assert (plain.index < n_sky).sum() == 500  # without diversity: all sky residuals
    res = select_batch(**c, config=cfg(batch_size=500, diversity="wavelength", max_per_bin=20))
    assert (res.index < n_sky).sum() == 20 and res.cap == 20 and not res.cap_relaxed
    assert np.array_equal(res.index[:20], np.arange(20))  # the cluster still ranks first
    d = batch_diversity(c["wave"], res.index)
    assert d["max_stratum_fraction"] <= 20 / 500 + 1e-9 and d["n_strata"] > 50


def test_wavelength_cap_from_fraction_and_sky_window_is_one_stratum():
    c, n_sky = sky_trap()
    c["wave"][: n_sky // 2] = 5195.0  # the window 5194-5205 spans two 20 A bins
    res = select_batch(
        **c, config=cfg(batch_size=400, diversity="wavelength", max_bin_fraction=0.05)
    )
    assert res.cap == 20 and (res.index < n_sky).sum() == 20
    strata = wavelength_strata(c["wave"][res.index])
    assert np.bincount(strata - strata.min()).max() <= 20


def test_wavelength_cap_is_relaxed_only_when_strata_run_out():
    n = 300
    res = select_batch(
        prob=np.full(n, 0.5),
        bald=np.linspace(1, 0, n),
        sn=np.full(n, 6.0),
        wave=np.full(n, 4000.0),
        config=cfg(batch_size=50, diversity="wavelength", max_per_bin=10),
    )
    assert res.cap_relaxed and len(res.index) == 50
    assert np.array_equal(res.index, np.arange(50))  # best first, beyond the cap


def test_sky_windows_match_the_simulator():
    assert SKY_RESIDUAL_WINDOWS_A == SimParams().sky_windows


def test_kcenter_takes_one_from_each_cluster_before_a_second_from_any():
    rng = np.random.default_rng(0)
    n_clusters, per = 8, 50
    centres = rng.normal(0, 50, (n_clusters, 16))
    label = np.repeat(np.arange(n_clusters), per)
    emb = (centres[label] + rng.normal(0, 0.1, (len(label), 16))).astype(np.float32)
    bald = np.where(label == 0, 1.0, 0.5) + rng.uniform(0, 0.01, len(label))  # cluster 0 best
    n = len(label)
    res = select_batch(
        prob=np.full(n, 0.5),
        bald=bald,
        sn=np.full(n, 6.0),
        wave=np.full(n, 4000.0),
        embeddings=emb,
        config=cfg(batch_size=16, diversity="kcenter", pool_factor=25),
    )
    assert res.index[0] == np.argmax(bald)  # starts at the best-scoring candidate
    assert sorted(label[res.index[:n_clusters]]) == list(range(n_clusters))
    assert np.bincount(label[res.index], minlength=n_clusters).max() == 2
    plain = select_batch(
        prob=np.full(n, 0.5),
        bald=bald,
        sn=np.full(n, 6.0),
        wave=np.full(n, 4000.0),
        config=cfg(batch_size=16),
    )
    assert set(label[plain.index]) == {0}  # without diversity: one cluster only


def test_kcenter_greedy_is_farthest_first():
    x = np.array([[0.0, 0], [1, 0], [10, 0], [5, 0], [0, 0.1]])
    assert list(kcenter_greedy(x, 4)) == [0, 2, 3, 1]
    assert len(kcenter_greedy(x, 99)) == 5 and len(set(kcenter_greedy(x, 99))) == 5


def test_kcenter_only_looks_at_the_top_scoring_pool():
    rng = np.random.default_rng(1)
    n = 1000
    emb = rng.normal(size=(n, 4)).astype(np.float32)
    bald = rng.random(n)
    res = select_batch(
        prob=np.full(n, 0.5),
        bald=bald,
        sn=np.full(n, 6.0),
        wave=np.full(n, 4000.0),
        embeddings=emb,
        config=cfg(batch_size=10, diversity="kcenter", pool_factor=5),
    )
    assert set(res.index) <= set(np.argsort(-bald)[:50])


# --- eligibility, determinism, edge cases ---------------------------------------------------


def test_ineligible_candidates_are_never_chosen():
    c = catalogue()
    elig = np.ones(len(c["prob"]), bool)
    elig[np.argsort(-c["bald"])[:100]] = False  # the best ones are already labelled
    elig[::3] = False
    for div in ("none", "wavelength"):
        res = select_batch(
            **c, eligible=elig, config=cfg(batch_size=300, random_fraction=0.2, diversity=div)
        )
        assert elig[res.index].all() and res.n_eligible == elig.sum()


def test_batch_larger_than_eligible_returns_all_eligible():
    c = catalogue(n=100)
    elig = np.zeros(100, bool)
    elig[[3, 7, 50]] = True
    res = select_batch(**c, eligible=elig, config=cfg(batch_size=500, random_fraction=0.1))
    assert sorted(res.index) == [3, 7, 50]
    none = select_batch(**c, eligible=np.zeros(100, bool), config=cfg())
    assert len(none.index) == 0 and priorities(none).max() == 0.0


@pytest.mark.parametrize("diversity", ["none", "wavelength", "kcenter"])
def test_same_seed_same_batch(diversity):
    c = catalogue()
    emb = np.random.default_rng(5).normal(size=(len(c["prob"]), 8))
    conf = cfg(batch_size=200, random_fraction=0.1, diversity=diversity, seed=7)
    a = select_batch(**c, embeddings=emb, config=conf)
    b = select_batch(**c, embeddings=emb, config=conf)
    assert np.array_equal(a.index, b.index) and np.array_equal(a.reason, b.reason)
    other = select_batch(
        **c,
        embeddings=emb,
        config=cfg(batch_size=200, random_fraction=0.1, diversity=diversity, seed=8),
    )
    assert not np.array_equal(a.index[a.reason == "random"], other.index[other.reason == "random"])


@pytest.mark.parametrize("diversity", ["none", "wavelength"])
def test_ties_go_to_the_lower_row(diversity):
    n = 1000
    bald = np.full(n, 0.1)
    bald[[900, 901]] = 0.5
    res = select_batch(
        prob=np.full(n, 0.5),
        bald=bald,
        sn=np.full(n, 6.0),
        wave=3610.0 + 20.0 * np.arange(n),  # one row per stratum
        config=cfg(batch_size=10, diversity=diversity),
    )
    assert list(res.index) == [900, 901, *range(8)]


def test_random_strategy_is_a_seeded_uniform_sample():
    c = catalogue(n=20000)
    res = select_batch(**c, config=cfg(strategy="random", batch_size=2000, seed=3))
    assert abs(np.median(c["bald"][res.index]) - np.median(c["bald"])) < 0.1 * np.median(c["bald"])


# --- priorities ------------------------------------------------------------------------------


def test_priorities_cover_every_candidate_with_the_batch_first():
    c = catalogue()
    elig = np.ones(len(c["prob"]), bool)
    elig[:500] = False
    res = select_batch(**c, eligible=elig, config=cfg(batch_size=100, random_fraction=0.1))
    pr = priorities(res)
    assert pr.shape == c["prob"].shape
    assert np.array_equal(np.argsort(-pr, kind="stable")[:100], res.index)  # batch, in order
    assert np.array_equal(pr[res.index], res.priority)
    assert (pr[~elig] == 0).all() and (pr[elig] > 0).all()  # the queue never runs dry
    rest = np.flatnonzero(elig & ~np.isin(np.arange(len(pr)), res.index))
    by_pr = rest[np.argsort(-pr[rest])]
    assert np.all(np.diff(c["bald"][by_pr]) <= 0)  # the rest by score
    assert pr[res.index].min() > pr[rest].max()


# --- bad inputs ------------------------------------------------------------------------------


def test_bad_inputs_say_what_is_wrong():
    c = catalogue(n=50)
    with pytest.raises(ValueError, match="unknown strategy"):
        AcquisitionConfig(strategy="greedy")
    with pytest.raises(ValueError, match="unknown diversity"):
        AcquisitionConfig(diversity="sky")
    with pytest.raises(ValueError, match="random_fraction"):
        AcquisitionConfig(random_fraction=1.5)
    with pytest.raises(ValueError, match="batch_size"):
        AcquisitionConfig(batch_size=0)
    with pytest.raises(ValueError, match="low_sn_weight"):
        AcquisitionConfig(low_sn_weight=0)
    with pytest.raises(ValueError, match="power must be finite and > 0"):
        AcquisitionConfig(power=0.0)
    with pytest.raises(ValueError, match="wave has 49 values but prob has 50"):
        select_batch(**{**c, "wave": c["wave"][:-1]}, config=cfg())
    with pytest.raises(ValueError, match="eligible"):
        select_batch(**c, eligible=np.ones(50, int), config=cfg())
    with pytest.raises(ValueError, match="needs embeddings"):
        select_batch(**c, config=cfg(diversity="kcenter"))
    with pytest.raises(ValueError, match="embeddings must be"):
        select_batch(**c, embeddings=np.zeros((49, 4)), config=cfg(diversity="kcenter"))
    with pytest.raises(ValueError, match="needs the bald array"):
        select_batch(**{**c, "bald": None}, config=cfg())
    bad = c["bald"].copy()
    bad[4] = np.nan
    with pytest.raises(ValueError, match="not finite for 1 eligible"):
        select_batch(**{**c, "bald": bad}, config=cfg())
    elig = np.ones(50, bool)
    elig[4] = False  # a NaN on an ineligible row is fine
    assert 4 not in select_batch(**{**c, "bald": bad}, eligible=elig, config=cfg()).index
