"""Simulated volunteers for in-silico campaigns (``shared/SIMULATOR.md``, "Volunteers").

Kinds of volunteer (fractions configurable, [E] = estimate):
- honest: sensitivity and specificity at high S/N drawn from Beta distributions; their
  discrimination (distance from a coin flip) shrinks towards the 4.8 threshold, down to a
  per-volunteer fraction ``low_sn_retention`` at sn = 4.8 and full from ``sn_full`` up;
- random clicker (a few percent): says "real" with a fixed personal rate, whatever is shown;
- always-yes (rare): says "real" to everything.
Activity is heavy-tailed (lognormal weights: a few volunteers cast most votes). Fatigue:
within a session, an honest volunteer's discrimination decays with the number of votes
already cast in it, losing up to ``fatigue_max`` of it. Sessions have a per-volunteer
length (lognormal); the position in the session is ``votes so far % session_length``.

Effective answer of honest volunteer j on a candidate with truth t, S/N sn, at session
position k:  d = g_j(sn) f(k);  s = 0.5 + (s_j - 0.5) d;  c = 0.5 + (c_j - 0.5) d;
P(yes) = s if t else 1 - c.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from mlcore.survey import SN_THRESHOLD

HONEST, RANDOM, ALWAYS_YES = 0, 1, 2
KIND_NAMES = ("honest", "random", "always_yes")


@dataclass(frozen=True)
class VolunteerParams:
    """Population parameters; every number is an estimate [E], keep them configurable."""

    sensitivity_beta: tuple[float, float] = (9.0, 1.5)  # high-S/N sensitivity, mean 0.86
    specificity_beta: tuple[float, float] = (8.0, 1.6)  # high-S/N specificity, mean 0.83
    low_sn_retention_beta: tuple[float, float] = (4.0, 4.0)  # discrimination kept at sn 4.8
    sn_full: float = 7.0  # discrimination is full from this S/N up (linear ramp from 4.8)
    random_fraction: float = 0.03  # random clickers
    random_yes_rate: tuple[float, float] = (0.3, 0.7)  # their personal P(yes), uniform
    always_yes_fraction: float = 0.003
    activity_sigma: float = 1.8  # lognormal sigma of activity weights (heavy tail)
    session_median: float = 40.0  # votes per session, lognormal median
    session_sigma: float = 0.8
    fatigue_max: float = 0.4  # fraction of discrimination lost deep into a long session
    fatigue_scale: float = 150.0  # votes into a session for 63% of that loss
    mobile_fraction: float = 0.4  # recorded only (Dark Energy Explorers: ~40% on mobile)


@dataclass(frozen=True)
class VolunteerPopulation:
    """One sampled population; arrays are per volunteer (index = volunteer id)."""

    kind: np.ndarray  # (V,) int8: HONEST / RANDOM / ALWAYS_YES
    sensitivity: np.ndarray  # (V,) at high S/N, before fatigue
    specificity: np.ndarray  # (V,)
    low_sn_retention: np.ndarray  # (V,) discrimination fraction kept at sn = 4.8
    yes_rate: np.ndarray  # (V,) P(yes) of a random clicker (1 for always-yes)
    activity: np.ndarray  # (V,) share of all votes, sums to 1
    session_length: np.ndarray  # (V,) int >= 1
    mobile: np.ndarray  # (V,) bool
    params: VolunteerParams = field(default_factory=VolunteerParams)

    @classmethod
    def sample(
        cls, n: int, seed: int, params: VolunteerParams | None = None
    ) -> VolunteerPopulation:
        p = params or VolunteerParams()
        rng = np.random.default_rng(seed)
        u = rng.random(n)
        kind = np.full(n, HONEST, dtype=np.int8)
        kind[u < p.random_fraction + p.always_yes_fraction] = RANDOM
        kind[u < p.always_yes_fraction] = ALWAYS_YES
        yes_rate = rng.uniform(*p.random_yes_rate, n)
        yes_rate[kind == ALWAYS_YES] = 1.0
        yes_rate[kind == HONEST] = np.nan
        activity = rng.lognormal(0.0, p.activity_sigma, n)
        return cls(
            kind=kind,
            sensitivity=rng.beta(*p.sensitivity_beta, n),
            specificity=rng.beta(*p.specificity_beta, n),
            low_sn_retention=rng.beta(*p.low_sn_retention_beta, n),
            yes_rate=yes_rate,
            activity=activity / activity.sum(),
            session_length=np.maximum(
                1, np.rint(rng.lognormal(np.log(p.session_median), p.session_sigma, n))
            ).astype(np.int64),
            mobile=rng.random(n) < p.mobile_fraction,
            params=p,
        )

    def __len__(self) -> int:
        return int(self.kind.size)

    def draw_volunteers(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` volunteer ids drawn by activity (who shows up to cast the next votes)."""
        return np.searchsorted(np.cumsum(self.activity), rng.random(n) * self.activity.sum())

    def true_skill(
        self, volunteer: np.ndarray, sn: np.ndarray, session_position: np.ndarray | int = 0
    ) -> tuple[np.ndarray, np.ndarray]:
        """Effective (sensitivity, specificity) per vote; random clickers give s = 1 - c."""
        j = np.asarray(volunteer)
        p = self.params
        ramp = np.clip((np.asarray(sn) - SN_THRESHOLD) / (p.sn_full - SN_THRESHOLD), 0.0, 1.0)
        keep = self.low_sn_retention[j]
        g = keep + (1.0 - keep) * ramp
        k = np.asarray(session_position, dtype=np.float64)
        f = 1.0 - p.fatigue_max * (1.0 - np.exp(-k / p.fatigue_scale))
        d = g * f
        s = 0.5 + (self.sensitivity[j] - 0.5) * d
        c = 0.5 + (self.specificity[j] - 0.5) * d
        honest = self.kind[j] == HONEST
        s = np.where(honest, s, self.yes_rate[j])
        c = np.where(honest, c, 1.0 - self.yes_rate[j])
        return s, c

    def respond(
        self,
        volunteer: np.ndarray,
        truth_real: np.ndarray,
        sn: np.ndarray,
        rng: np.random.Generator,
        session_position: np.ndarray | int = 0,
    ) -> np.ndarray:
        """Votes (int8, 1 = real) of ``volunteer[k]`` on a candidate with ``truth_real[k]``."""
        s, c = self.true_skill(volunteer, sn, session_position)
        p_yes = np.where(np.asarray(truth_real, dtype=bool), s, 1.0 - c)
        return (rng.random(p_yes.shape) < p_yes).astype(np.int8)

    def session_position(self, volunteer: np.ndarray, votes_so_far: np.ndarray) -> np.ndarray:
        """Position in the current session of a volunteer who has cast ``votes_so_far``."""
        return np.asarray(votes_so_far) % self.session_length[np.asarray(volunteer)]


@dataclass(frozen=True)
class SimulatedVotes:
    """A vote stream in time order; at most one vote per (candidate, volunteer)."""

    candidate: np.ndarray  # (M,) intp
    volunteer: np.ndarray  # (M,) intp
    label: np.ndarray  # (M,) int8
    session_position: np.ndarray  # (M,) int64


def simulate_votes(
    population: VolunteerPopulation,
    truth_real: np.ndarray,
    sn: np.ndarray,
    *,
    n_votes: int,
    seed: int,
) -> SimulatedVotes:
    """``n_votes`` votes on candidates picked uniformly, by volunteers picked by activity.

    Duplicate (candidate, volunteer) pairs are redrawn, so a very active volunteer still
    votes at most once per candidate (their share is capped at half the candidates).
    Session positions count each volunteer's votes in time order.
    """
    truth_real = np.asarray(truth_real, dtype=bool)
    sn = np.asarray(sn)
    n_cand, n_vol = truth_real.size, len(population)
    if n_votes > n_cand * n_vol // 2:
        raise ValueError("too many votes for this many candidates and volunteers")
    rng = np.random.default_rng(seed)
    # Cap any volunteer's expected votes at half the candidates so uniqueness is reachable.
    act = np.minimum(population.activity, 0.5 * n_cand / max(n_votes, 1))
    cum = np.cumsum(act / act.sum())
    cand = np.empty(0, dtype=np.intp)
    vol = np.empty(0, dtype=np.intp)
    while cand.size < n_votes:
        extra = int((n_votes - cand.size) * 1.05) + 16
        cand = np.concatenate([cand, rng.integers(0, n_cand, extra)])
        vol = np.concatenate([vol, np.searchsorted(cum, rng.random(extra) * cum[-1])])
        key = cand.astype(np.int64) * n_vol + vol
        _, first = np.unique(key, return_index=True)
        keep = np.sort(first)[:n_votes]  # first occurrence of each pair, time order kept
        cand, vol = cand[keep], vol[keep]
    order = np.argsort(vol, kind="stable")
    rank = np.empty(vol.size, dtype=np.int64)
    counts = np.bincount(vol, minlength=n_vol)
    starts = np.cumsum(counts) - counts
    rank[order] = np.arange(vol.size) - np.repeat(starts, counts)
    pos = population.session_position(vol, rank)
    label = population.respond(vol, truth_real[cand], sn[cand], rng, pos)
    return SimulatedVotes(cand.astype(np.intp), vol.astype(np.intp), label, pos)
