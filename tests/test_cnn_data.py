import numpy as np
import torch

from mlcore.cnn.data import (
    augment,
    balanced_weights,
    normalise,
    regime_index,
    spec_windows,
    stratified_split,
)


def _noise(b=4, seed=0, sigma=3.0, level=10.0):
    g = torch.Generator().manual_seed(seed)
    return level + sigma * torch.randn(b, 5, 9, 100, generator=g)


def test_normalise_gives_unit_robust_noise_and_zero_background():
    z, masked = normalise(_noise(sigma=3.0, level=10.0))
    assert z.dtype == torch.float32 and z.shape == (4, 5, 9, 100)
    assert torch.all(masked == 0)
    med = z.flatten(1).median(dim=1).values
    assert torch.all(med.abs() < 0.1)
    assert torch.allclose(z.flatten(1).std(dim=1), torch.ones(4), atol=0.1)


def test_normalise_keeps_relative_fiber_levels():
    x = _noise(b=2)
    x[:, 2] += 6.0  # fiber 2 offset by 2 sigma: a bad fiber must stay visible
    z, _ = normalise(x)
    fib_mean = z[:, 1:].mean(dim=(2, 3))  # (B, 4)
    assert torch.all(fib_mean[:, 1] - fib_mean[:, 0] > 1.0)  # per-fiber centring gives 0


def test_normalise_compresses_bright_pixels_monotonically():
    x = _noise(b=1, sigma=1.0, level=0.0)
    x[0, :, 4, 50] = 1000.0
    x[0, :, 4, 51] = 100.0
    z, _ = normalise(x)
    assert 15 < z[0, 0, 4, 50] < 40  # 4 * asinh(1000 / 4) ~ 25, far from 1000
    assert z[0, 0, 4, 50] > z[0, 0, 4, 51] > 5


def test_nan_policy_zero_fill_and_masked_fraction():
    x = _noise(b=3)
    x[0, :, :, 40:60] = float("nan")
    x[1, 1, 0, 0] = float("inf")
    x[2] = float("nan")  # everything masked
    z, masked = normalise(x)
    assert torch.isfinite(z).all()
    assert torch.all(z[0, :, :, 40:60] == 0)
    assert torch.all(z[2] == 0)
    np.testing.assert_allclose(masked.numpy(), [0.2, 1 / 4500, 1.0], rtol=1e-5)


def test_augment_shifts_wavelength_and_flips_rows_but_never_reverses_wavelength():
    x = torch.zeros(64, 5, 9, 100)
    x[:, :, 1, 50] = 2.0  # peak at row 1 ...
    x[:, :, 1, 51] = 1.0  # ... with a red wing: asymmetric in wavelength
    g = torch.Generator().manual_seed(0)
    y, _ = augment(x, max_shift=2, flip_p=0.5, generator=g)
    peak_col = y[:, 0].amax(dim=1).argmax(dim=1)
    assert set(peak_col.tolist()) <= {48, 49, 50, 51, 52} and len(set(peak_col.tolist())) > 1
    # the wing is always redward of the peak
    wing = y[torch.arange(64), 0].amax(dim=1)[torch.arange(64), peak_col + 1]
    assert torch.all(wing == 1.0)
    rows = y[:, 0].amax(dim=2).argmax(dim=1)
    assert set(rows.tolist()) == {1, 7}  # flipped along the 9 spatial rows


def test_augment_moves_spectrum_window_with_the_image():
    x = torch.zeros(8, 5, 9, 100)
    x[:, :, 4, 50] = 1.0
    s = torch.zeros(8, 2, 100)
    s[:, :, 50] = 1.0
    y, s2 = augment(x, 3, 0.0, torch.Generator().manual_seed(1), spec=s)
    assert torch.equal(y[:, 0, 4].argmax(1), s2[:, 0].argmax(1))


def test_balanced_weights_equalise_class_and_regime_cells():
    sn = np.array([5.0] * 10 + [7.0] * 10)
    t = np.array([1] * 2 + [0] * 8 + [1] * 9 + [0] * 1, float)
    w = balanced_weights(t, sn)
    assert abs(w.mean() - 1) < 1e-6
    cells = [w[(regime_index(sn) == r) & (t == c)].sum() for r in (0, 1) for c in (0, 1)]
    np.testing.assert_allclose(cells, [cells[0]] * 4, rtol=1e-5)


def test_balanced_weights_soft_targets_split_between_classes():
    sn = np.full(4, 6.0)
    w = balanced_weights(np.array([1.0, 0.0, 0.0, 0.5]), sn)
    # class sums: pos 1.5, neg 2.5 -> w_pos = 4/3, w_neg = 0.8; soft row = mean of the two
    np.testing.assert_allclose(w[3] * w.mean(), (w[0] + w[1]) / 2, rtol=1e-5)


def test_stratified_split_is_disjoint_complete_stratified_and_seeded():
    strata = np.repeat([0, 1, 2], [100, 300, 600])
    a, b = stratified_split(strata, (0.2,), seed=3)
    assert len(np.intersect1d(a, b)) == 0 and len(a) + len(b) == 1000
    assert np.bincount(strata[a]).tolist() == [20, 60, 120]
    a2, _ = stratified_split(strata, (0.2,), seed=3)
    a3, _ = stratified_split(strata, (0.2,), seed=4)
    assert np.array_equal(a, a2) and not np.array_equal(a, a3)


def test_spec_windows_centre_on_the_line_and_pad_off_grid():
    spec = np.zeros((2, 1036), np.float32)
    err = np.ones((2, 1036), np.float32)
    spec[0, 500] = 10.0  # 3470 + 2*500 = 4470 A
    spec[1, 0] = 10.0
    w = spec_windows(spec, err, np.array([4470.0, 3470.0]), half_width=50)
    assert w.shape == (2, 2, 100)
    assert w[0, 0].argmax() == 50 and w[1, 0].argmax() == 50
    assert np.all(w[1, :, :50] == 0)  # off the blue end of the grid -> 0
