"""mlcore.cnn.domain_adapt: the noise model of the data (autocorrelation, whitening filter),
AdaBN, TENT and the pseudo-label picks used for adaptation without target labels."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mlcore.cnn import domain_adapt as da
from mlcore.cnn.model import LineCNN
from mlcore.cnn.scoring import fast_cpu_model
from mlcore.simulator.instrument import correlate_noise
from tests.factories_cnn import TINY


def _white(n=400, seed=0):
    return np.random.default_rng(seed).standard_normal((n, 5, 9, 100)).astype(np.float32)


def _correlated(n=400, seed=0, wave=1.2, rows=1.0):
    x = correlate_noise(_white(n, seed), wave, axis=-1)
    return correlate_noise(x, rows, axis=-2).astype(np.float32)


def _lag1(acf):
    r, w = acf.shape[0] // 2, acf.shape[1] // 2
    return acf[r, w + 1], acf[r + 1, w]


def test_acf_of_white_noise_is_a_delta():
    acf = da.noise_acf(_white())
    assert acf.shape == (9, 17)
    assert acf[4, 8] == 1.0
    off = np.delete(acf.ravel(), 4 * 17 + 8)
    assert np.abs(off).max() < 0.03
    np.testing.assert_allclose(acf, acf[::-1, ::-1])  # symmetric by construction


def test_acf_of_correlated_noise_matches_the_kernel():
    # a Gaussian smoothing kernel of sigma s gives correlation exp(-d^2 / (4 s^2)) at lag d
    wave, rows = _lag1(da.noise_acf(_correlated()))
    assert wave == pytest.approx(np.exp(-1 / (4 * 1.2**2)), abs=0.05)
    assert rows == pytest.approx(np.exp(-1 / (4 * 1.0**2)), abs=0.07)


def test_acf_ignores_a_line_at_the_centre():
    x = _white()
    x[:, :, 2:7, 44:57] += 20.0  # a bright source in the centre window only
    assert np.abs(np.array(_lag1(da.noise_acf(x)))).max() < 0.03


def test_whitening_recovers_white_noise_from_a_correlated_field():
    # smoothed noise plus a white part (as the instrument's: the simulator's heavy tails
    # and every independent pixel term leave one); the filter takes the smoothing out
    x = np.sqrt(0.75) * _correlated(seed=1) + np.sqrt(0.25) * _white(seed=5)
    white, acf_t, h = da.whiten_to_reference(x, da.noise_acf(_white(seed=2)))
    assert white.shape == x.shape and white.dtype == np.float32
    before, after = _lag1(acf_t), _lag1(da.noise_acf(white))
    assert min(before) > 0.4
    assert np.abs(np.array(after)).max() < 0.06
    assert h.max() > 2.0  # high frequencies boosted
    assert np.std(white) == pytest.approx(np.std(x), rel=0.25)  # noise level about kept


def test_purely_smoothed_noise_is_only_partly_whitened():
    # nothing left at the highest frequencies: the gain cap stops the deconvolution
    x = _correlated(seed=1)
    h = da.whitening_filter(da.noise_acf(x), max_gain=8.0)
    assert 4.0 < h.max() <= 8.0
    before, after = _lag1(da.noise_acf(x))[0], _lag1(da.noise_acf(da.apply_filter(x, h)))[0]
    assert after < before - 0.2


def test_whitening_to_its_own_correlation_changes_nothing():
    x = _correlated(seed=3)
    acf = da.noise_acf(x)
    h = da.whitening_filter(acf, acf)
    np.testing.assert_allclose(da.apply_filter(x, h), x, atol=1e-4)


def test_filter_keeps_a_line_where_it_is_and_masks_masked_pixels():
    x = np.zeros((1, 5, 9, 100), np.float32)
    cols = np.arange(100)
    x[0, :, :, :] = np.exp(-0.5 * ((cols - 50) / 1.5) ** 2)
    x[0, 1, 4, 10] = np.nan
    h = da.whitening_filter(da.noise_acf(_correlated(seed=4)))
    y = da.apply_filter(x, h)
    assert (
        np.isnan(y[0, 1, 4, 10]) and np.isfinite(np.delete(y.ravel(), 1 * 900 + 4 * 100 + 10)).all()
    )
    assert int(np.argmax(y[0, 0, 4])) == 50  # zero-phase: the peak does not move
    # and sharpened: what the noise correlation would have smoothed is taken apart
    assert y[0, 0, 4, 49] / y[0, 0, 4, 50] < x[0, 0, 4, 49] / x[0, 0, 4, 50] - 0.1


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="non-empty"):
        da.noise_acf(np.zeros((0, 5, 9, 100)))
    with pytest.raises(ValueError, match="max_lag_rows"):
        da.noise_acf(_white(10), max_lag_rows=9)
    with pytest.raises(ValueError, match="centred"):
        da.whitening_filter(np.ones((2, 3)))
    with pytest.raises(ValueError, match="does not pad"):
        da.apply_filter(_white(2), np.ones((10, 63)))
    with pytest.raises(ValueError, match="threshold"):
        da.pseudo_labels(np.array([0.5]), np.array([5.0]), threshold=0.4)


def _model(seed=0):
    torch.manual_seed(seed)
    m = LineCNN(TINY)
    # give the running statistics a source-like state: a few train-mode passes on white
    with torch.no_grad():
        m.train()
        for _ in range(5):
            m.features(torch.randn(64, 5, 9, 100))
    return m.eval()


def test_adabn_sets_the_running_stats_to_the_targets():
    m = _model()
    target = torch.randn(512, 5, 9, 100) * 3.0 + 1.0
    before = {k: v.clone() for k, v in m.state_dict().items()}
    ad = da.adapt_batchnorm(m, target, batch_size=128)
    for k, v in m.state_dict().items():  # the original untouched
        assert torch.equal(v, before[k])
    conv, bn = ad.trunk[0][0], ad.trunk[0][1]
    with torch.no_grad():
        h = conv(target)
    np.testing.assert_allclose(bn.running_mean, h.mean(dim=(0, 2, 3)), rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(bn.running_var, h.var(dim=(0, 2, 3)), rtol=2e-2)
    assert not torch.allclose(bn.running_mean, m.trunk[0][1].running_mean, atol=1e-2)
    # weights other than BatchNorm statistics as trained
    assert torch.equal(ad.fc1.weight, m.fc1.weight) and torch.equal(
        conv.weight, m.trunk[0][0].weight
    )


def test_adabn_reaches_the_bn_folded_scoring_copy():
    m = _model()
    target = torch.randn(256, 5, 9, 100) * 2.0
    ad = da.adapt_batchnorm(m, target, batch_size=64)
    x = target[:32].contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        ref, orig = ad(target[:32]), m(target[:32])
        fast = fast_cpu_model(ad)(x)
    np.testing.assert_allclose(fast.numpy(), ref.numpy(), rtol=1e-4, atol=1e-4)
    assert not np.allclose(ref.numpy(), orig.numpy(), atol=1e-3)


def test_adabn_refuses_too_few_cutouts():
    with pytest.raises(ValueError, match="at least 64"):
        da.adapt_batchnorm(_model(), torch.randn(10, 5, 9, 100))


def _entropy(model, z):
    with torch.no_grad():
        p = torch.sigmoid(model(z) / model.temperature).clamp(1e-6, 1 - 1e-6)
    return float(-(p * p.log() + (1 - p) * (1 - p).log()).mean())


def test_tent_lowers_the_prediction_entropy_and_trains_only_batchnorm():
    m = _model()
    z = torch.randn(512, 5, 9, 100)
    ad = da.adapt_batchnorm(m, z)
    t = da.tent_adapt(m, z, epochs=3, lr=1e-2)
    assert _entropy(t, z) < _entropy(ad, z)
    assert torch.equal(t.fc1.weight, m.fc1.weight)
    assert torch.equal(t.trunk[0][0].weight, m.trunk[0][0].weight)
    assert not torch.equal(t.trunk[0][1].weight, m.trunk[0][1].weight)


def test_pseudo_labels_are_confident_and_balanced_per_regime():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=2000)
    p[:1500] = np.clip(p[:1500] + 0.5, 0, 1)  # more confident positives than negatives
    sn = rng.uniform(4.8, 8.0, size=2000)
    pick = da.pseudo_labels(p, sn, threshold=0.9)
    assert ((p[pick] >= 0.9) | (p[pick] <= 0.1)).all()
    for reg in (sn[pick] <= 5.5, sn[pick] > 5.5):
        assert (p[pick][reg] >= 0.5).sum() == (p[pick][reg] < 0.5).sum() > 0
    assert len(da.pseudo_labels(p, sn, threshold=0.9, max_per_class=5)) == 20
