"""Retirement rules trigger exactly at their thresholds, vectorised and per vote alike."""

from __future__ import annotations

import numpy as np
import pytest

from mlcore.aggregation import ACTIVE, EXPERT, RETIRED, STATES, FixedCountRule, RetirementRule

RULE = RetirementRule(p_real_hi=0.95, p_real_lo=0.05, min_votes=3, max_votes=8)


@pytest.mark.parametrize(
    ("p", "n", "state"),
    [
        (0.95, 3, "retired"),  # inclusive at the upper threshold
        (np.nextafter(0.95, 0), 3, "active"),
        (0.05, 3, "retired"),  # inclusive at the lower threshold
        (np.nextafter(0.05, 1), 3, "active"),
        (0.99, 2, "active"),  # confident but below min_votes
        (0.5, 7, "active"),
        (0.5, 8, "expert"),  # max_votes reached, still uncertain
        (0.97, 8, "retired"),  # confidence wins over the cap
        (0.01, 20, "retired"),
    ],
)
def test_thresholds_are_exact(p, n, state):
    assert RULE.decide_one(p, n) == state
    assert STATES[int(RULE.decide(np.array([p]), np.array([n]))[0])] == state


def test_vectorised_matches_scalar_on_a_grid():
    p = np.linspace(0, 1, 101)
    n = np.arange(0, 12)
    pp, nn = np.meshgrid(p, n)
    codes = RULE.decide(pp.ravel(), nn.ravel())
    scalar = [
        STATES.index(RULE.decide_one(a, b)) for a, b in zip(pp.ravel(), nn.ravel(), strict=True)
    ]
    assert codes.tolist() == scalar
    assert {ACTIVE, RETIRED, EXPERT} == set(codes.tolist())


def test_bad_rules_are_rejected():
    with pytest.raises(ValueError):
        RetirementRule(p_real_hi=0.4)
    with pytest.raises(ValueError):
        RetirementRule(min_votes=5, max_votes=4)


def test_fixed_count_rule_ignores_the_posterior():
    rule = FixedCountRule(10)
    assert rule.decide_one(0.99, 9) == "active" and rule.decide_one(0.5, 10) == "retired"
