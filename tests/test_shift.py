"""mlcore.shift: input statistics, the representation tests, the verdict; and the shift
scenarios of the simulator they are measured on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mlcore.errors import DataError
from mlcore.shift import (
    INPUT_STATS,
    Sample,
    Thresholds,
    compare,
    describe,
    domain_classifier_auc,
    input_statistics,
    ks_distance,
    mmd_test,
    wave_spikes,
)
from mlcore.simulator import HELD_BACK, SCENARIOS, simulate_survey
from mlcore.survey import stack_cutouts


def _cut(s):
    return stack_cutouts(s.im_sum, s.im_array)


@pytest.fixture(scope="module")
def surveys():
    base = simulate_survey(300, seed=41)
    shifted = {name: simulate_survey(300, seed=41, scenario=name) for name in SCENARIOS}
    return base, shifted


# --- the scenarios ---------------------------------------------------------------------------


def test_default_simulation_is_unchanged_by_the_scenario_machinery():
    a = simulate_survey(200, seed=5)
    b = simulate_survey(200, seed=5, scenario="none")
    assert np.array_equal(a.im_array, b.im_array)
    assert np.array_equal(a.catalog["sn"], b.catalog["sn"])
    assert b.meta["scenario"] == "none"


def test_unknown_scenario_is_refused_with_the_names():
    with pytest.raises(ValueError, match="correlated_noise"):
        simulate_survey(10, seed=1, scenario="fog")


def test_held_back_scenario_is_one_of_them():
    assert HELD_BACK in SCENARIOS and len(SCENARIOS) >= 3


def test_correlated_noise_scenario_correlates_the_pixels(surveys):
    base, shifted = surveys
    s0 = input_statistics(_cut(base))
    s1 = input_statistics(_cut(shifted["correlated_noise"]))
    assert abs(np.median(s0["noise_corr_wave"])) < 0.05
    assert np.median(s1["noise_corr_wave"]) > 0.4
    assert np.median(s1["noise_corr_rows"]) > 0.3
    assert shifted["correlated_noise"].meta["scenario"] == "correlated_noise"


def test_psf_scenario_spreads_real_lines_over_the_fibres(surveys):
    base, shifted = surveys

    def spread(s):
        real = s.truth["truth_real"] & (s.catalog["sn"] > 8)
        return np.median(input_statistics(_cut(s))["seeing_proxy"][real])

    assert spread(shifted["psf_seeing"]) > spread(base) + 0.05


def test_sky_scenario_puts_sky_residuals_at_the_new_lines(surveys):
    base, shifted = surveys
    s = shifted["sky_artefacts"]
    sky = s.truth["truth_type"] == "sky"
    near_hg = (np.abs(s.catalog["wave"][sky] - 4047) < 8) | (
        np.abs(s.catalog["wave"][sky] - 4358) < 8
    )
    assert near_hg.mean() > 0.5
    b_sky = base.catalog["wave"][base.truth["truth_type"] == "sky"]
    assert not ((np.abs(b_sky - 4047) < 8) | (np.abs(b_sky - 4358) < 8)).any()
    assert sky.mean() > (base.truth["truth_type"] == "sky").mean()


# --- statistics ------------------------------------------------------------------------------


def test_input_statistics_measure_noise_level_and_masking():
    rng = np.random.default_rng(0)
    x = rng.normal(0, 2.0, (50, 5, 9, 100)).astype(np.float32)
    x[:10, 1, :, :20] = 0.0  # masked pixels in fibre 1 of the first ten
    x[10, 2, 0, 0] = np.nan
    s = input_statistics(x)
    assert set(s) == set(INPUT_STATS)
    assert np.allclose(np.median(s["noise_level"][10:]), 2.0, rtol=0.1)
    assert np.allclose(s["masked_frac"][:10], 180 / (4 * 9 * 100))
    assert s["masked_frac"][10] == pytest.approx(1 / 3600)
    assert np.all(np.abs(s["noise_corr_wave"][11:]) < 0.1)


def test_input_statistics_refuse_the_wrong_shape():
    with pytest.raises(DataError, match=r"\(N, 5, 9, 100\)"):
        input_statistics(np.zeros((3, 4, 9, 100)))


def test_ks_distance_values_and_empty_input():
    assert ks_distance(np.arange(10), np.arange(10)) == 0.0
    assert ks_distance(np.zeros(5), np.ones(5)) == 1.0
    assert ks_distance(np.arange(4), np.arange(2, 6)) == pytest.approx(0.5)
    with pytest.raises(DataError, match="no finite values"):
        ks_distance(np.array([np.nan]), np.arange(3))


def test_domain_classifier_separates_shifted_embeddings_and_not_equal_ones():
    rng = np.random.default_rng(1)
    a = rng.standard_normal((400, 20))
    b = rng.standard_normal((400, 20))
    c = rng.standard_normal((400, 20)) + np.r_[1.0, np.zeros(19)]
    auc_same, p_same = domain_classifier_auc(a, b, n_perm=19, seed=0)
    auc_far, p_far = domain_classifier_auc(a, c, n_perm=19, seed=0)
    assert abs(auc_same - 0.5) < 0.06 and p_same > 0.05
    assert auc_far > 0.7 and p_far == pytest.approx(1 / 20)


def test_mmd_detects_a_mean_shift_and_not_equal_distributions():
    rng = np.random.default_rng(2)
    a = rng.standard_normal((300, 10))
    m_same, p_same = mmd_test(a, rng.standard_normal((300, 10)), n_perm=99, seed=1)
    m_far, p_far = mmd_test(a, rng.standard_normal((300, 10)) + 0.8, n_perm=99, seed=1)
    assert m_far > 5 * m_same
    assert p_far == pytest.approx(0.01) and p_same > 0.01


def test_permutation_p_values_are_roughly_uniform_under_the_null():
    rng = np.random.default_rng(3)
    ps_auc, ps_mmd = [], []
    for k in range(12):
        a, b = rng.standard_normal((2, 150, 8))
        ps_auc.append(domain_classifier_auc(a, b, n_perm=19, seed=k)[1])
        ps_mmd.append(mmd_test(a, b, n_perm=49, seed=k)[1])
    for ps in (np.array(ps_auc), np.array(ps_mmd)):
        assert (ps < 0.05).mean() <= 2 / 12  # a valid test rejects rarely
        assert 0.25 < ps.mean() < 0.75  # uniform on (0, 1] has mean 0.5
        assert ps.max() > 0.5


# --- the verdict -----------------------------------------------------------------------------


def _sample(rng, n, shift=0.0, noise=1.0, corr=0.0, real=0.5):
    stats = {k: rng.normal(0, 1, n) for k in INPUT_STATS}
    stats["noise_level"] = rng.normal(noise, 0.05, n)
    stats["noise_corr_wave"] = rng.normal(corr, 0.03, n)
    emb = rng.standard_normal((n, 12)) + shift
    scores = np.clip(rng.normal(real, 0.25, n), 0, 1)
    return Sample(stats, emb, scores)


TH = Thresholds(
    ks_input={k: 0.15 for k in INPUT_STATS}, auc=0.58, mmd=0.01, score_ks=0.15,
    real_frac=0.1, n_new=400, n_ref=800,
)  # fmt: skip


def test_verdicts_in_distribution_shifted_and_far():
    rng = np.random.default_rng(4)
    ref = _sample(rng, 800)
    same = compare(ref, _sample(rng, 400), thresholds=TH, n_perm_auc=19, n_perm_mmd=49)
    assert same["verdict"] == "in distribution" and same["reasons"] == []
    noisier = compare(ref, _sample(rng, 400, noise=1.03), thresholds=TH, n_perm_auc=19)
    assert noisier["verdict"] == "shifted"
    assert any(r.startswith("noise_level") for r in noisier["reasons"])
    far = compare(ref, _sample(rng, 400, shift=2.0, corr=0.6), thresholds=TH, n_perm_auc=19)
    assert far["verdict"] == "far"
    assert far["representation"]["domain_auc"] > 0.95
    assert far["inputs"]["noise_corr_wave"]["ks"] > 0.9


def test_thresholds_widen_for_smaller_samples_never_tighten():
    small = TH.scaled(100, 800)
    assert small.auc > TH.auc and small.ks_input["noise_level"] > 0.15
    tiny = Thresholds(ks_input={"noise_level": 0.6}, auc=0.6, n_new=1000, n_ref=2000)
    assert tiny.scaled(100, 100).ks_input["noise_level"] == 1.0  # a KS cannot pass 1
    assert tiny.scaled(100, 100).auc <= 1.0
    big = TH.scaled(10_000, 10_000)
    assert big.auc == pytest.approx(TH.auc) and big.mmd == pytest.approx(TH.mmd)


def test_compare_refuses_small_and_mismatched_samples():
    rng = np.random.default_rng(5)
    ref = _sample(rng, 300)
    with pytest.raises(DataError, match="at least 100"):
        compare(ref, _sample(rng, 50), thresholds=TH)
    other = Sample(ref.stats, np.zeros((300, 7)), ref.scores)
    with pytest.raises(DataError, match="different models"):
        compare(ref, other, thresholds=TH)
    with pytest.raises(DataError, match="do not match"):
        Sample(ref.stats, np.zeros((299, 12)), ref.scores)
    with pytest.raises(DataError, match="noise_level"):
        Sample({}, np.zeros((300, 12)), ref.scores)


def test_describe_gives_embeddings_and_scores_of_the_model():
    from mlcore.cnn.model import LineCNN
    from mlcore.cnn.scoring import score_batch

    torch.manual_seed(0)
    model = LineCNN().eval()
    s = simulate_survey(120, seed=9)
    x = _cut(s)
    d = describe(model, x, batch=50)
    assert d.embeddings.shape == (120, model.feature_dim)
    ref = score_batch(model, x, n_samples=1)["prob"]
    assert np.allclose(d.scores, ref, atol=1e-5)
    with pytest.raises(DataError, match="1D windows"):
        describe(model, x, spec=np.zeros((3, 2, 100)))


# --- where the lines are ----------------------------------------------------------------------


def test_wave_spikes_finds_a_new_line_and_names_its_wavelength():
    rng = np.random.default_rng(11)
    ref = rng.uniform(3510, 5496, 2000)
    flat = wave_spikes(ref, rng.uniform(3510, 5496, 1000))
    assert 0 < flat["z"] < 5  # the largest of ~660 bins under the null
    new = np.concatenate([rng.uniform(3510, 5496, 950), rng.normal(4358.3, 1.5, 50)])
    spike = wave_spikes(ref, new)
    assert spike["z"] > 8 and abs(spike["wave"] - 4358) <= 6
    assert spike["top"][0] == {"z": spike["z"], "wave": spike["wave"]}
    # a line both samples have (the training data's own sky line) is no spike
    both = np.concatenate([ref[:1900], rng.normal(5460, 1.5, 100)])
    same = np.concatenate([new[:950], rng.normal(5460, 1.5, 50)])
    assert abs(wave_spikes(both, same)["wave"] - 5460) > 6
    # only excesses count: a line the new data lacks is not a spike
    assert wave_spikes(new, ref)["z"] < 5
    with pytest.raises(DataError, match="at least 100"):
        wave_spikes(ref, ref[:50])


def test_the_wavelength_spike_joins_the_verdict_when_both_samples_carry_wavelengths():
    rng = np.random.default_rng(12)
    ref = _sample(rng, 800)
    new = _sample(rng, 400)
    ref_w = Sample(ref.stats, ref.embeddings, ref.scores, rng.uniform(3510, 5496, 800))
    spiky = np.concatenate([rng.uniform(3510, 5496, 370), rng.normal(4047, 1.5, 30)])
    new_w = Sample(new.stats, new.embeddings, new.scores, spiky)
    th = dataclasses.replace(TH, wave_spike_z=6.0)
    rep = compare(ref_w, new_w, thresholds=th, n_perm_auc=19, n_perm_mmd=49)
    assert rep["wavelengths"]["threshold"] == 6.0 and rep["wavelengths"]["z"] > 6
    assert rep["verdict"] == "shifted"
    assert any(r.startswith("line wavelengths: a spike at 404") for r in rep["reasons"])
    # without wavelengths on one side, or thresholds from before the statistic: no verdict on it
    assert "wavelengths" not in compare(ref, new_w, thresholds=th, n_perm_auc=19, n_perm_mmd=49)
    old = compare(ref_w, new_w, thresholds=TH, n_perm_auc=19, n_perm_mmd=49)
    assert old["wavelengths"]["threshold"] is None and old["verdict"] == "in distribution"
    assert TH.to_dict()["wave_spike_z"] is None  # JSON-safe
    with pytest.raises(DataError, match="wavelengths for"):
        Sample(ref.stats, ref.embeddings, ref.scores, np.zeros(5))
