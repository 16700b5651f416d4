"""Expected information of one more vote."""

from __future__ import annotations

import numpy as np

from mlcore.aggregation import VoteTable, dawid_skene, expected_information


def brute_force(p, s, c):
    """Enumerate the two outcomes of the next vote."""
    h = lambda x: 0.0 if x in (0.0, 1.0) else -(x * np.log2(x) + (1 - x) * np.log2(1 - x))  # noqa: E731
    q = p * s + (1 - p) * (1 - c)
    p1, p0 = p * s / q, p * (1 - s) / (1 - q)
    gain = h(p) - q * h(p1) - (1 - q) * h(p0)
    change = q * abs(p1 - p) + (1 - q) * abs(p0 - p)
    flip = q * ((p1 > 0.5) != (p > 0.5)) + (1 - q) * ((p0 > 0.5) != (p > 0.5))
    return gain, change, flip


def test_matches_the_definition():
    p = np.array([0.02, 0.3, 0.45, 0.55, 0.9])
    m = expected_information(p, sensitivity=0.8, specificity=0.7)
    for k, pk in enumerate(p):
        g, ch, fl = brute_force(pk, 0.8, 0.7)
        assert np.isclose(m.info_gain[k], g, atol=1e-9)
        assert np.isclose(m.expected_change[k], ch)
        assert np.isclose(m.flip_probability[k], fl)


def test_zero_when_settled_or_when_the_volunteer_is_uninformative():
    m = expected_information(np.array([0.0, 1.0]), sensitivity=0.9, specificity=0.9)
    assert np.allclose(m.info_gain, 0, atol=1e-9) and np.allclose(m.expected_change, 0)
    spam = expected_information(np.array([0.3, 0.5]), sensitivity=0.6, specificity=0.4)
    assert np.allclose(spam.info_gain, 0, atol=1e-12) and np.allclose(spam.flip_probability, 0)


def test_most_uncertain_candidates_rank_first_and_regimes_use_their_own_skill():
    p = np.array([0.5, 0.5, 0.8, 0.99])
    reg = np.array([0, 1, 1, 1])
    m = expected_information(
        p, sensitivity=np.array([0.6, 0.9]), specificity=np.array([0.6, 0.9]), regime=reg
    )
    # A high-S/N vote (better volunteers) is worth more than a low-S/N one at the same P.
    assert m.info_gain[1] > m.info_gain[0]
    assert np.all(np.diff(m.info_gain[1:]) < 0)


def test_works_from_a_result_with_typical_volunteers():
    rng = np.random.default_rng(0)
    c, v = rng.integers(0, 300, 1500), rng.integers(0, 30, 1500)
    truth = rng.random(300) < 0.5
    lab = np.where(rng.random(1500) < 0.85, truth[c], ~truth[c]).astype(int)
    r = dawid_skene(VoteTable.from_arrays(c, v, lab, n_candidates=300))
    s, sp = r.skills.typical()
    m = expected_information(r.posterior, sensitivity=s, specificity=sp, regime=np.zeros(300, int))
    assert m.info_gain.shape == (300,)
    uncertain = r.confidence < 0.7
    assert m.info_gain[uncertain].min() > m.info_gain[r.confidence > 0.99].max()
