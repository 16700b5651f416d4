"""Simulated volunteer population: kinds, heavy-tailed activity, skill vs S/N, fatigue."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore.volunteers import (
    ALWAYS_YES,
    HONEST,
    RANDOM,
    VolunteerParams,
    VolunteerPopulation,
    simulate_votes,
)


@pytest.fixture(scope="module")
def pop():
    return VolunteerPopulation.sample(5000, seed=1)


def test_population_mix_and_determinism(pop):
    assert abs(np.mean(pop.kind == RANDOM) - 0.03) < 0.01
    assert 0 < np.sum(pop.kind == ALWAYS_YES) < 0.01 * len(pop)
    again = VolunteerPopulation.sample(5000, seed=1)
    assert np.array_equal(pop.sensitivity, again.sensitivity)
    assert not np.array_equal(pop.sensitivity, VolunteerPopulation.sample(5000, 2).sensitivity)


def test_activity_is_heavy_tailed(pop):
    share = np.sort(pop.activity)[::-1]
    assert share[: len(pop) // 10].sum() > 0.5  # top 10% cast most votes
    assert share[0] > 50 * np.median(share)


def test_honest_skill_falls_towards_low_sn_and_with_fatigue(pop):
    j = np.flatnonzero(pop.kind == HONEST)
    s_hi, c_hi = pop.true_skill(j, np.full(j.size, 8.0))
    s_lo, c_lo = pop.true_skill(j, np.full(j.size, 4.9))
    # Discrimination (distance from a coin flip) shrinks for everyone at low S/N.
    assert np.all(np.abs(s_lo - 0.5) <= np.abs(s_hi - 0.5)) and np.mean(s_hi - s_lo) > 0.1
    assert np.all(np.abs(c_lo - 0.5) <= np.abs(c_hi - 0.5))
    s_tired, _ = pop.true_skill(j, np.full(j.size, 8.0), session_position=300)
    assert np.mean(s_hi - s_tired) > 0.05


def test_spammers_ignore_the_truth_and_always_yes_says_yes(pop):
    rng = np.random.default_rng(0)
    r = np.flatnonzero(pop.kind == RANDOM)[:5]
    vol = np.repeat(r, 4000)
    truth = np.tile(np.arange(4000) % 2 == 0, r.size)
    y = pop.respond(vol, truth, np.full(vol.size, 8.0), rng)
    for k in r:
        m = vol == k
        assert abs(y[m & truth].mean() - y[m & ~truth].mean()) < 0.06
    a = np.flatnonzero(pop.kind == ALWAYS_YES)[:1]
    assert pop.respond(np.repeat(a, 100), np.zeros(100, bool), np.full(100, 6.0), rng).all()


def test_vote_stream_is_unique_per_pair_and_honours_activity(pop):
    rng = np.random.default_rng(3)
    n = 3000
    truth = rng.random(n) < 0.7
    sn = rng.uniform(4.8, 9.0, n)
    sv = simulate_votes(pop, truth, sn, n_votes=40000, seed=4)
    assert sv.candidate.size == 40000
    key = sv.candidate * len(pop) + sv.volunteer
    assert np.unique(key).size == key.size
    counts = np.bincount(sv.volunteer, minlength=len(pop))
    assert np.sort(counts)[::-1][:500].sum() > 0.5 * counts.sum()
    assert counts.max() <= n
    assert np.all(sv.session_position < pop.session_length[sv.volunteer])
    correct = sv.label == truth[sv.candidate]
    assert correct[sn[sv.candidate] > 7].mean() > correct[sn[sv.candidate] < 5.2].mean() + 0.05


def test_parameters_are_configurable():
    p = VolunteerParams(random_fraction=0.2, always_yes_fraction=0.0, fatigue_max=0.0)
    pop = VolunteerPopulation.sample(4000, seed=5, params=p)
    assert abs(np.mean(pop.kind == RANDOM) - 0.2) < 0.02
    j = np.flatnonzero(pop.kind == HONEST)[:10]
    a, _ = pop.true_skill(j, np.full(10, 8.0), 0)
    b, _ = pop.true_skill(j, np.full(10, 8.0), 500)
    assert np.allclose(a, b)
