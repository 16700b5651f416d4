"""How much would one more vote change a candidate's label? (value of the next vote)

With posterior p = P(real) and a typical next volunteer of sensitivity s and specificity c
(per regime; e.g. :meth:`VolunteerSkills.typical`, the vote-weighted mean, which is exactly
the channel of a volunteer whose identity is not known in advance):
    P(yes) q = p s + (1 - p)(1 - c)
    after yes p1 = p s / q,   after no p0 = p (1 - s) / (1 - q)
    information gain  I = H(p) - q H(p1) - (1 - q) H(p0)   (bits; the mutual information
                          between the label and the next vote)
    expected change   E|p' - p| = 2 q (p1 - p)     (the posterior is a martingale)
    flip probability  P(label(p') != label(p))
All three are 0 for a settled candidate (p = 0 or 1) and for an uninformative volunteer
(s + c = 1), largest near p = 0.5. Vectorised over candidates: O(N).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_EPS = 1e-12


def _entropy_bits(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1 - _EPS)
    return -(p * np.log2(p) + (1 - p) * np.log2(1 - p))


@dataclass(frozen=True)
class InformationMeasure:
    info_gain: np.ndarray  # (N,) bits
    expected_change: np.ndarray  # (N,) expected |change of P(real)|
    flip_probability: np.ndarray  # (N,) probability the label changes


def expected_information(
    posterior: np.ndarray,
    *,
    sensitivity: float | np.ndarray,
    specificity: float | np.ndarray,
    regime: np.ndarray | None = None,
) -> InformationMeasure:
    """Value of one more vote per candidate.

    ``sensitivity`` / ``specificity``: scalars, or arrays indexed by ``regime`` (R,) when a
    regime array is given, or per-candidate arrays (N,).
    """
    p = np.clip(np.asarray(posterior, dtype=np.float64), 0.0, 1.0)
    s = np.asarray(sensitivity, dtype=np.float64)
    c = np.asarray(specificity, dtype=np.float64)
    if regime is not None:
        reg = np.asarray(regime, dtype=np.intp)
        s, c = s[reg], c[reg]
    q = p * s + (1 - p) * (1 - c)
    with np.errstate(divide="ignore", invalid="ignore"):
        p1 = np.where(q > 0, p * s / q, p)
        p0 = np.where(q < 1, p * (1 - s) / (1 - q), p)
    gain = _entropy_bits(p) - q * _entropy_bits(p1) - (1 - q) * _entropy_bits(p0)
    now = p > 0.5
    flip = q * ((p1 > 0.5) != now) + (1 - q) * ((p0 > 0.5) != now)
    return InformationMeasure(
        info_gain=np.maximum(gain, 0.0),
        expected_change=q * np.abs(p1 - p) + (1 - q) * np.abs(p0 - p),
        flip_probability=flip,
    )
