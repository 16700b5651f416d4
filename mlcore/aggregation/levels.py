"""Levels by shown skill (as Gravity Spy does): the maths, from a volunteer's gold answers.

A volunteer's skill in an S/N regime is two numbers measured on gold standards (candidates
whose answer is known): sensitivity s = P(says yes | real) and specificity c = P(says no |
not real). With k right of n gold answers of one class, the posterior is Beta(a + k,
b + n - k) under a Beta(a, b) prior (uniform by default). 'Not sure' answers are left out:
they say nothing either way.

Promotion needs *evidence* of skill, not a count of answers: the lower credible bound
(``credible`` = 0.9: the 10th percentile) of *both* s and c must reach ``skill``, with at
least ``min_gold`` yes/no gold answers in the regime. A volunteer with many wrong gold
answers is not promoted however many they give; one with 3 right of 3 is not promoted
either (Beta(4, 1)'s 10th percentile is 0.56). Keeping a level needs less: the posterior
*mean* of both must stay at ``skill`` or above (hysteresis), so one slip does not demote,
while a real drop does (the mean follows the answers).

Why 0.7 at 90 %: a random clicker has s + c = 1 (0.5 each if unbiased), and a volunteer who
says 'yes' to everything has c = 0: neither can pass on both. A careful volunteer on clear
gold is right about 9 times in 10; with a uniform prior they pass after 6 of 6 right of each
class, or 10 of 11 (9 of 10 is not enough; ``tests/test_levels.py`` checks these figures).

Levels (regime index 0 = low S/N, 1 = high, :func:`mlcore.survey.regime_index`):
  1: high-S/N candidates only (where a line, or its absence, is clear);
  2: skill shown at high S/N -> the low-S/N candidates (4.8 <= S/N <= 5.5) are unlocked;
  3: skill shown at low S/N too -> the follow-up task naming the artefact type.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LOW, HIGH = 0, 1
MAX_LEVEL = 3
# Level L (2, 3) needs skill shown in these regimes (each one, both classes).
LEVEL_REGIMES: dict[int, tuple[int, ...]] = {2: (HIGH,), 3: (HIGH, LOW)}

_GRID = np.linspace(0.0, 1.0, 4001)[1:-1]  # open interval: log pdf is finite everywhere


@dataclass(frozen=True)
class LevelRule:
    skill: float = 0.7  # both sensitivity and specificity must reach this
    credible: float = 0.9  # promotion: this one-sided credible level (lower bound)
    min_gold: int = 10  # and at least this many yes/no gold answers in the regime
    prior: tuple[float, float] = (1.0, 1.0)  # Beta(a, b) on s and on c

    def __post_init__(self) -> None:
        if not 0.5 <= self.skill < 1.0:
            raise ValueError(f"skill must lie in [0.5, 1), not {self.skill}")
        if not 0.5 <= self.credible < 1.0:
            raise ValueError(f"credible must lie in [0.5, 1), not {self.credible}")
        if self.min_gold < 0:
            raise ValueError(f"min_gold must be >= 0, not {self.min_gold}")
        if min(self.prior) <= 0:
            raise ValueError(f"the Beta prior's parameters must be > 0, not {self.prior}")


def beta_quantile(a: np.ndarray, b: np.ndarray, q: float) -> np.ndarray:
    """The ``q`` quantile of Beta(a, b), elementwise (numerical CDF on a 4,000-point grid:
    to about 3e-4, plenty for a threshold of 0.7)."""
    a = np.atleast_1d(np.asarray(a, np.float64))[..., None]
    b = np.atleast_1d(np.asarray(b, np.float64))[..., None]
    logpdf = (a - 1.0) * np.log(_GRID) + (b - 1.0) * np.log1p(-_GRID)
    pdf = np.exp(logpdf - logpdf.max(axis=-1, keepdims=True))
    cdf = np.cumsum(pdf, axis=-1)
    cdf /= cdf[..., -1:]
    idx = np.minimum((cdf < q).sum(axis=-1), _GRID.size - 1)
    return _GRID[idx]


@dataclass(frozen=True)
class RegimeSkill:
    """Skill shown in one regime, from its gold answers."""

    n_real: int  # yes/no answers on real gold
    n_real_right: int  # of which 'yes'
    n_fake: int  # yes/no answers on not-real gold
    n_fake_right: int  # of which 'no'
    sens_mean: float
    spec_mean: float
    sens_lower: float  # lower credible bound
    spec_lower: float

    @property
    def n_gold(self) -> int:
        return self.n_real + self.n_fake

    @property
    def lower(self) -> float:
        """The weaker of the two lower bounds: what promotion compares with the threshold."""
        return min(self.sens_lower, self.spec_lower)

    @property
    def mean(self) -> float:
        """The weaker of the two posterior means: what keeping a level compares."""
        return min(self.sens_mean, self.spec_mean)


def regime_skills(
    said_yes: np.ndarray, is_real: np.ndarray, regime: np.ndarray, rule: LevelRule = LevelRule()
) -> dict[int, RegimeSkill]:
    """Skill per regime (LOW, HIGH) from one volunteer's yes/no gold answers.

    said_yes, is_real: (n,) bool, one per gold answer ('not sure' left out by the caller);
    regime: (n,) int, 0 low S/N, 1 high.
    """
    said_yes = np.asarray(said_yes, bool)
    is_real = np.asarray(is_real, bool)
    regime = np.asarray(regime, np.int64)
    if not said_yes.shape == is_real.shape == regime.shape or said_yes.ndim != 1:
        raise ValueError("said_yes, is_real and regime must be 1-D arrays of the same length")
    if regime.size and not np.isin(regime, (LOW, HIGH)).all():
        raise ValueError("regime must be 0 (low S/N) or 1 (high S/N)")
    a, b = rule.prior
    out = {}
    for r in (LOW, HIGH):
        m = regime == r
        real, fake = m & is_real, m & ~is_real
        n_real, k_real = int(real.sum()), int((real & said_yes).sum())
        n_fake, k_fake = int(fake.sum()), int((fake & ~said_yes).sum())
        pa = np.array([a + k_real, a + k_fake])
        pb = np.array([b + n_real - k_real, b + n_fake - k_fake])
        lower = beta_quantile(pa, pb, 1.0 - rule.credible)
        mean = pa / (pa + pb)
        out[r] = RegimeSkill(
            n_real, k_real, n_fake, k_fake,
            float(mean[0]), float(mean[1]), float(lower[0]), float(lower[1]),
        )  # fmt: skip
    return out


def shows_skill(s: RegimeSkill, rule: LevelRule) -> bool:
    """Promotion test for one regime: enough gold, and both lower bounds at the threshold."""
    return s.n_gold >= rule.min_gold and s.lower >= rule.skill


def keeps_skill(s: RegimeSkill, rule: LevelRule) -> bool:
    """Keeping test for one regime: both posterior means still at the threshold."""
    return s.mean >= rule.skill


def level_for(skills: dict[int, RegimeSkill], current: int, rule: LevelRule = LevelRule()) -> int:
    """The level a volunteer at ``current`` should be at now.

    Up: the highest level whose regimes all show skill (one step at a time is not needed:
    a volunteer can show both at once). Down: a level above 1 is kept while its regimes all
    keep skill; otherwise the volunteer drops to the highest level below that they keep or
    show."""
    current = int(min(max(current, 1), MAX_LEVEL))
    shown = 1
    for level in (2, 3):
        if all(shows_skill(skills[r], rule) for r in LEVEL_REGIMES[level]):
            shown = level
        else:
            break
    if shown >= current:
        return shown
    for level in range(current, 1, -1):
        if all(keeps_skill(skills[r], rule) for r in LEVEL_REGIMES[level]):
            return max(level, shown)
    return shown
