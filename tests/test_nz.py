"""mlcore.nz: Poisson tails, the spike finder (planted spikes found, no false alarms on smooth
distributions), redshift conversion and the sky-residual windows."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mlcore import nz

NBINS = 199  # 10 A bins over the usable 3510-5500 A


def _direct_sf(n: int, mu: float) -> float:
    """P(N >= n) by summing the Poisson pmf from n upwards (slow, obviously right)."""
    return sum(math.exp(-mu + k * math.log(mu) - math.lgamma(k + 1)) for k in range(n, n + 3000))


def _direct_nb_sf(n: int, mu: float, err: float) -> float:
    shape, rate = mu * mu / err**2, mu / err**2
    q = rate / (1 + rate)
    return sum(
        math.exp(
            math.lgamma(k + shape) - math.lgamma(shape) - math.lgamma(k + 1)
            + shape * math.log(q) + k * math.log1p(-q)
        )
        for k in range(n, n + 5000)
    )  # fmt: skip


def _curved(scale: float = 1.0) -> np.ndarray:
    x = np.arange(NBINS)
    return scale * (5 + 40 * np.exp(-0.5 * ((x - 70) / 35) ** 2) + 0.1 * x)


@pytest.mark.parametrize(
    "n, mu", [(0, 3.0), (1, 0.5), (3, 3.0), (10, 2.0), (40, 20.0), (5, 20.0), (200, 150.0)]
)
def test_poisson_upper_tail_matches_direct_sum(n, mu):
    assert nz.poisson_sf(n, mu) == pytest.approx(_direct_sf(n, mu), rel=1e-9, abs=1e-300)
    assert nz.poisson_cdf(n, mu) == pytest.approx(1 - _direct_sf(n + 1, mu), rel=1e-9)


def test_poisson_tail_far_out_is_tiny_not_zero_or_negative():
    p = nz.poisson_sf(60, 10.0)
    assert 0 < p < 1e-20
    assert p == pytest.approx(_direct_sf(60, 10.0), rel=1e-9)
    assert nz.poisson_sf(5, 0.0) == 0.0 and nz.poisson_sf(0, 0.0) == 1.0


@pytest.mark.parametrize("n, mu, err", [(40, 20.0, 2.0), (24, 1.06, 5.56), (3, 3.0, 1.0)])
def test_predictive_tail_is_the_negative_binomial_and_wider_than_poisson(n, mu, err):
    p = nz.predictive_sf(n, mu, err)
    assert p == pytest.approx(_direct_nb_sf(n, mu, err), rel=1e-8)
    if n > mu:
        assert p > nz.poisson_sf(n, mu)  # an uncertain expectation: a less extreme tail
    assert nz.predictive_sf(n, mu, 0.0) == nz.poisson_sf(n, mu)


def test_planted_spike_found_at_its_bin():
    rng = np.random.default_rng(7)
    counts = rng.poisson(_curved())
    counts[120] += 30  # smooth expectation there ~ 23
    rep = nz.find_spikes(counts)
    assert rep.spikes.tolist() == [120]
    assert rep.n_spikes == 1
    assert rep.expected[120] == pytest.approx(_curved()[120], rel=0.3)
    assert rep.excess == pytest.approx(counts[120] - rep.expected[120])
    assert 25 < rep.excess < 40
    assert rep.p_value[120] < rep.threshold == pytest.approx(0.01 / NBINS)


def test_three_bin_wide_spike_found_and_does_not_lift_its_neighbours():
    rng = np.random.default_rng(3)
    lam = np.full(NBINS, 30.0)
    counts = rng.poisson(lam)
    counts[60:63] += 40
    rep = nz.find_spikes(counts)
    assert rep.spikes.tolist() == [60, 61, 62]
    assert rep.clipped[60:63].all()
    # The expectation under the spike comes from the unclipped neighbours: near 30.
    assert np.all(np.abs(rep.expected[58:65] - 30) < 8)
    assert rep.excess == pytest.approx(120, abs=25)


def test_spike_at_the_edge_found():
    counts = np.random.default_rng(11).poisson(np.full(NBINS, 20.0))
    counts[1] += 40
    assert 1 in nz.find_spikes(counts).spikes


def test_deficit_is_not_a_spike():
    counts = np.random.default_rng(5).poisson(np.full(NBINS, 20.0))
    counts[90] = 0
    rep = nz.find_spikes(counts)
    assert 90 not in rep.spikes and rep.clipped[90]


def test_no_false_alarms_on_smooth_poisson_histograms():
    """200 independent draws of each of four smooth shapes (flat at 2, 20 and 300 per bin,
    and a curved N(z)). At the family-wise alpha of 1 % about 8 of the 800 histograms have
    one false spike by design (measured: 8); allow 16 (Binomial(800, 1 %) exceeds that
    with probability 0.4 %; the seeds are fixed, so the test does not flake), at most 6 per
    shape, and never two false spikes in one histogram."""
    shapes = [np.full(NBINS, 2.0), np.full(NBINS, 20.0), np.full(NBINS, 300.0), _curved()]
    per_shape = []
    for k, lam in enumerate(shapes):
        per_hist = [
            nz.find_spikes(np.random.default_rng([17, k, seed]).poisson(lam)).n_spikes
            for seed in range(200)
        ]
        assert max(per_hist) <= 1
        per_shape.append(sum(per_hist))
    assert max(per_shape) <= 6, per_shape
    assert sum(per_shape) <= 16, per_shape


def test_a_planted_spike_is_found_in_most_draws():
    """Power: +8 sigma in one bin of a ~20-per-bin curve is found in nearly every draw."""
    lam = _curved(0.5)
    found = 0
    for seed in range(40):
        counts = np.random.default_rng(seed).poisson(lam)
        counts[100] += int(8 * math.sqrt(lam[100]))
        found += 100 in nz.find_spikes(counts).spikes
    assert found >= 36


def test_empty_and_all_zero_inputs():
    for counts in ([], np.zeros(50, int)):
        rep = nz.find_spikes(counts)
        assert rep.n_spikes == 0 and rep.excess == 0.0
        assert rep.spikes.size == 0
        assert len(rep.expected) == len(counts)


def test_tiny_histograms_do_not_crash():
    for counts in ([5], [1, 2], [0, 0, 7], [3, 3, 3, 3]):
        rep = nz.find_spikes(counts)
        assert len(rep.expected) == len(counts)
        assert np.all(np.isfinite(rep.expected)) and np.all(np.isfinite(rep.p_value))


def test_bad_counts_refused():
    with pytest.raises(ValueError, match="non-negative"):
        nz.find_spikes([1, -2, 3])
    with pytest.raises(ValueError, match="one-dimensional"):
        nz.find_spikes(np.zeros((3, 3)))


def test_redshift_conversion_and_sky_windows():
    assert nz.LYA_REST == 1215.67
    assert nz.wave_to_z(1215.67 * 3.5) == pytest.approx(2.5)
    assert nz.z_to_wave(nz.wave_to_z(4321.0)) == pytest.approx(4321.0)
    assert nz.in_sky_window([3540.0, 4000.0, 5200.0]).tolist() == [True, False, True]
    assert nz.overlaps_sky_window(5190.0, 5200.0)
    assert nz.overlaps_sky_window(5190.0, 5210.0)  # window entirely inside the bin
    assert not nz.overlaps_sky_window(4000.0, 4010.0)


def test_sky_windows_are_the_simulators():
    from mlcore.simulator.params import SimParams

    assert tuple(map(tuple, SimParams().sky_windows)) == nz.SKY_RESIDUAL_WINDOWS_A
