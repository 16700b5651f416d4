"""mlcore.cnn.augment: the instrument-variation augmentations on raw cutouts, the
centroid-width wavelength shift, and their switches in TrainConfig."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from mlcore.cnn.augment import AWAY_PX, RawAugment, augment_raw, noise_sigma
from mlcore.cnn.data import augment
from mlcore.cnn.training import TrainConfig, train_one
from mlcore.survey import LINE_COL
from tests.factories_cnn import TINY, fast_config

ONE_EACH = {
    "noise_max": 1.5,
    "corr_noise": 1.0,
    "psf": 1.5,
    "throughput": 0.15,
    "sky": 1.0,
    "calib": 0.3,
    "cosmic": 2.0,
}


def _batch(b=32, seed=0, sigma=2.0):
    g = torch.Generator().manual_seed(seed)
    x = sigma * torch.randn(b, 5, 9, 100, generator=g)
    x[:, :, 3:6, 48:53] += 10.0  # a line at the centre
    return x


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_all_off_is_the_identity():
    x = _batch()
    assert augment_raw(x, RawAugment(), _gen()) is x


def test_default_recipe_is_the_one_the_ablation_kept():
    # bench/augment.md, row "kept": centroid-width shift, PSF blur, fibre throughput
    cfg = TrainConfig()
    assert cfg.max_shift == 2 and 0 < cfg.shift_sigma_px < 1 and cfg.flip_p == 0.5
    assert cfg.raw_augment() == RawAugment(psf=1.5, throughput=0.15)


@pytest.mark.parametrize("name", sorted(ONE_EACH))
def test_each_augmentation_shape_dtype_determinism(name):
    x = _batch()
    cfg = RawAugment(**{name: ONE_EACH[name]})
    a = augment_raw(x, cfg, _gen(1))
    b = augment_raw(x, cfg, _gen(1))
    c = augment_raw(x, cfg, _gen(2))
    assert a.shape == x.shape and a.dtype == torch.float32
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)  # same seed, same batch
    assert not torch.equal(a, c)  # another seed, another draw
    assert not torch.equal(a, x)  # it did something
    assert torch.equal(x, _batch())  # the input is not modified in place


def test_noise_level_and_correlated_noise_do_what_they_say():
    x = _batch(b=64)
    louder = augment_raw(x, RawAugment(noise_max=2.0), _gen())
    assert (noise_sigma(louder) >= noise_sigma(x) * 0.95).all()
    assert noise_sigma(louder).mean() > 1.2 * noise_sigma(x).mean()

    def lag1(t):  # autocorrelation along wavelength of the fibre pixels off the line
        p = t[:, 1:, :, :40]
        p = p - p.mean(-1, keepdim=True)
        return float((p[..., 1:] * p[..., :-1]).mean() / (p * p).mean())

    corr = augment_raw(x, RawAugment(corr_noise=2.0), _gen())
    assert abs(lag1(x)) < 0.05 and lag1(corr) > 0.15


def test_psf_spreads_light_across_rows_and_throughput_leaves_the_sum_alone():
    x = torch.zeros(16, 5, 9, 100)
    x[:, :, 4, 50] = 10.0
    x += 0.01 * torch.randn(16, 5, 9, 100, generator=_gen(3))
    y = augment_raw(x, RawAugment(psf=3.0), _gen())
    assert (y[:, 0, 3, 50] > 0.5).float().mean() > 0.5  # light reached the next row
    t = augment_raw(x, RawAugment(throughput=0.3), _gen())
    assert torch.equal(t[:, 0], x[:, 0])
    assert not torch.equal(t[:, 1:], x[:, 1:])


def test_sky_and_cosmics_stay_off_the_line():
    x = _batch(b=64)
    near = slice(LINE_COL - AWAY_PX + 1, LINE_COL + AWAY_PX)
    cos = augment_raw(x, RawAugment(cosmic=3.0), _gen())
    assert torch.equal(cos[..., near], x[..., near])
    assert (cos - x).abs().amax() > 5 * float(noise_sigma(x).min())  # hits are bright
    sky = augment_raw(x, RawAugment(sky=1.0), _gen())
    d = (sky - x).abs() / noise_sigma(x)
    assert d[..., near].amax() < 0.01 and d.amax() > 0.5


def test_calibration_offset_moves_a_feature_by_a_fraction_of_a_pixel():
    x = torch.zeros(8, 5, 9, 100)
    x[..., 50] = 1.0
    y = augment_raw(x, RawAugment(calib=0.3), _gen())
    centroid = (y[:, 1:, 4] * torch.arange(100.0)).sum(-1) / y[:, 1:, 4].sum(-1)
    assert (centroid - 50).abs().max() < 1.5 and (centroid - 50).abs().max() > 0.01


def test_bad_strengths_are_refused():
    for kw in ({"psf": -1.0}, {"noise_max": 0.5}, {"sky": 1.5}, {"calib": float("nan")}):
        with pytest.raises(ValueError, match="RawAugment"):
            RawAugment(**kw)


def test_centroid_width_shift_is_narrow_and_clipped():
    x = torch.zeros(400, 1, 9, 100)
    x[:, :, 4, 50] = 1.0
    col = lambda y: y[:, 0, 4].argmax(1) - 50  # noqa: E731
    y, _ = augment(x, max_shift=2, flip_p=0.0, generator=_gen(), shift_sigma=0.5)
    s = col(y)
    assert set(s.tolist()) <= {-2, -1, 0, 1, 2}
    assert 0.5 < (s == 0).float().mean() < 0.85  # P(|N(0, 0.5)| < 0.5) = 0.68
    y, _ = augment(x, max_shift=1, flip_p=0.0, generator=_gen(), shift_sigma=5.0)
    assert set(col(y).tolist()) == {-1, 0, 1}  # clipped at max_shift
    y, _ = augment(x, max_shift=0, flip_p=0.0, generator=_gen(), shift_sigma=0.5)
    assert torch.equal(y, x)


def test_training_with_every_augmentation_runs_and_is_deterministic():
    rng = np.random.default_rng(0)
    n = 160
    x = rng.normal(0, 1, (n, 5, 9, 100)).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.float32)
    x[y == 1, :, 3:6, 48:53] += 3.0
    sn = rng.uniform(4.8, 8, n).astype(np.float32)
    aug = {f"aug_{k}": v for k, v in ONE_EACH.items()}
    cfg = fast_config(epochs=1, min_epoch_samples=256, shift_sigma_px=0.5, **aug)
    a = train_one(x, y, sn, model_config=TINY, config=cfg)
    b = train_one(x, y, sn, model_config=TINY, config=cfg)
    assert np.array_equal(a.val_logits, b.val_logits)
    plain = train_one(x, y, sn, model_config=TINY, config=dataclasses.replace(cfg, aug_sky=0.0))
    assert not np.array_equal(a.val_logits, plain.val_logits)
