"""VoteTable: validation, 'not sure' exclusion, dedup, regimes; majority vote baseline."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore.aggregation import NOT_SURE, VoteTable, majority_vote, regime_index


def test_not_sure_votes_are_dropped_before_aggregation():
    vt = VoteTable.from_arrays(
        np.array([0, 0, 0, 1]), np.array([0, 1, 2, 0]), np.array([1, NOT_SURE, 0, NOT_SURE])
    )
    assert len(vt) == 2
    assert vt.votes_per_candidate().tolist() == [2, 0]
    assert vt.n_candidates == 2  # the candidate with only 'not sure' still has a row


@pytest.mark.parametrize(
    ("cand", "vol", "lab", "msg"),
    [
        ([0, 1], [0], [1], "same length"),
        ([0, -1], [0, 0], [1, 1], "candidate indices"),
        ([0, 1], [0, 0], [1, 2], "label must be"),
        ([0.5, 1], [0, 0], [1, 1], "integers"),
    ],
)
def test_bad_votes_are_rejected_with_a_reason(cand, vol, lab, msg):
    with pytest.raises(ValueError, match=msg):
        VoteTable.from_arrays(np.array(cand), np.array(vol), np.array(lab))


def test_index_beyond_declared_size_is_rejected():
    with pytest.raises(ValueError, match="volunteer indices"):
        VoteTable.from_arrays(np.array([0]), np.array([5]), np.array([1]), n_volunteers=3)


def test_deduplicated_keeps_the_last_vote_of_a_pair():
    vt = VoteTable.from_arrays(np.array([0, 1, 0]), np.array([2, 2, 2]), np.array([1, 0, 0]))
    d = vt.deduplicated()
    assert sorted(zip(d.candidate.tolist(), d.label.tolist(), strict=True)) == [(0, 0), (1, 0)]


def test_sorted_by_candidate_gives_the_same_aggregation():
    rng = np.random.default_rng(0)
    c, v = rng.integers(0, 50, 400), rng.integers(0, 20, 400)
    vt = VoteTable.from_arrays(c, v, rng.integers(0, 2, 400), n_candidates=50, n_volunteers=20)
    a, b = majority_vote(vt), majority_vote(vt.sorted_by_candidate())
    np.testing.assert_allclose(a.posterior, b.posterior)
    np.testing.assert_allclose(a.skills.sensitivity, b.skills.sensitivity)


def test_regime_index_matches_survey_boundaries():
    assert regime_index(np.array([4.8, 5.5, 5.5001, 9.0])).tolist() == [0, 0, 1, 1]


def test_majority_vote_fraction_ties_and_unvoted():
    vt = VoteTable.from_arrays(
        np.array([0, 0, 0, 1, 1]),
        np.array([0, 1, 2, 0, 1]),
        np.array([1, 1, 0, 1, 0]),
        n_candidates=3,
    )
    r = majority_vote(vt)
    np.testing.assert_allclose(r.posterior, [2 / 3, 0.5, 0.5])
    assert r.label.tolist() == [1, 0, 0]  # a tie is not a 'real' call
    assert r.n_votes.tolist() == [3, 2, 0]
    np.testing.assert_allclose(r.confidence, [2 / 3, 0.5, 0.5])
