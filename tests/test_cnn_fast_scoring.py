"""The fast CPU scoring path (issue #27) against the reference torch path it replaces."""

import numpy as np
import pytest
import torch

from mlcore.cnn.data import normalise, normalise_numpy, normalise_torch
from mlcore.cnn.model import (
    CNNConfig,
    EnsembleCNN,
    LineCNN,
    _BinMaxPool1d,
    _SliceMaxPool2d,
    inference_copy,
)
from mlcore.cnn.scoring import (
    SCORE_FIELDS,
    _mc_head,
    check_precision,
    cpu_bfloat16_native,
    fast_cpu_model,
    score,
    score_batch,
    score_batch_reference,
)
from mlcore.cnn.toy import toy_candidates


def _awkward_batch(seed=0):
    """Noise plus every masking pattern the NaN policy has to handle."""
    g = torch.Generator().manual_seed(seed)
    x = 10.0 + 3.0 * torch.randn(16, 5, 9, 100, generator=g)
    x[0, :, :, 40:60] = float("nan")  # the line region masked in every channel
    x[1, 1, 0, 0] = float("inf")  # one hot pixel
    x[2] = float("nan")  # all masked
    x[3, 0] = float("nan")  # summed image all masked, fibers fine
    x[4, 1:] = float("-inf")  # fibers all masked
    x[5] = 7.0  # constant: MAD 0 -> sigma 1
    x[6, :, :, ::3] = float("nan")  # a third masked
    x[7, 0, 0, 0] = float("nan")  # odd count of finite pixels in the summed image
    x[8, 2, 4, :7] = float("nan")  # odd count in the fibers
    x[9, 3, 3, 3] = 1e30  # a wild but finite value
    x[10, :, :, 50] = 500.0  # a bright line
    return x


def test_numpy_normalisation_equals_the_torch_one_on_masked_inputs():
    x = _awkward_batch()
    ref, ref_m = normalise_torch(x)
    z, m = normalise_numpy(x.numpy())
    assert z.dtype == np.float32 and z.shape == (16, 5, 9, 100)
    np.testing.assert_array_equal(m, ref_m.numpy())  # masked fractions exactly
    np.testing.assert_allclose(z, ref.numpy(), rtol=1e-6, atol=1e-6)
    assert np.all(z[2] == 0) and np.all(z[0, :, :, 40:60] == 0)
    assert m[2] == 1.0 and m[0] == pytest.approx(0.2)


def test_numpy_normalisation_equals_torch_on_clean_float16_store_batches():
    cut = toy_candidates(64, seed=3)["cutouts"].astype(np.float16)
    ref, ref_m = normalise_torch(torch.from_numpy(cut))
    z, m = normalise_numpy(cut)
    np.testing.assert_array_equal(m, np.zeros(64, np.float32))
    np.testing.assert_allclose(z, ref.numpy(), rtol=1e-6, atol=1e-6)
    # the medians are exact selections: the background level maps to 0 in both
    assert np.abs(z - ref.numpy()).max() < 1e-5


def test_normalise_takes_the_numpy_path_on_cpu_and_keeps_the_torch_one_for_gradients():
    x = _awkward_batch(seed=1)
    z, m = normalise(x)
    np.testing.assert_allclose(z.numpy(), normalise_numpy(x.numpy())[0])
    xg = x.clone().requires_grad_(True)
    zg, _ = normalise(xg)
    assert zg.requires_grad  # the torch path, differentiable (attribution needs it)
    np.testing.assert_allclose(zg.detach().numpy(), z.numpy(), rtol=1e-6, atol=1e-6)


def _model(kind: str) -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = CNNConfig(width=6, hidden=16, dropout=0.3, spec_len=100 if kind == "spec" else 0)
    nets = [LineCNN(cfg) for _ in range(2 if kind == "ensemble" else 1)]
    for net in nets:  # non-trivial BatchNorm statistics, so folding them is really tested
        for mod in net.modules():
            if isinstance(mod, torch.nn.BatchNorm2d | torch.nn.BatchNorm1d):
                mod.running_mean.uniform_(-1, 1)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.data.uniform_(0.5, 1.5)
                mod.bias.data.uniform_(-0.5, 0.5)
    m = EnsembleCNN(nets) if kind == "ensemble" else nets[0]
    m.temperature.fill_(1.3)
    return m.eval()


def test_folded_copy_gives_the_same_features():
    m = _model("spec")
    x = normalise_torch(_awkward_batch())[0]
    s = torch.randn(16, 2, 100)
    fast = inference_copy(m)
    assert not any(isinstance(mod, torch.nn.BatchNorm2d) for mod in fast.modules())
    # max-pooling replaced by the strided-view maxima, so the equality below covers them
    assert not any(isinstance(mod, torch.nn.MaxPool2d) for mod in fast.modules())
    assert any(isinstance(mod, _SliceMaxPool2d) for mod in fast.modules())
    assert any(isinstance(mod, _BinMaxPool1d) for mod in fast.modules())
    with torch.no_grad():
        a = fast.features(x.contiguous(memory_format=torch.channels_last), s)
        torch.testing.assert_close(a, m.features(x, s), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("n", [300, 4096])  # chunks of 128 with a short last one; a batch
def test_fast_head_draws_the_same_masks_as_forward_mc(n):
    m = _model("plain")
    f = torch.randn(n, m.feature_dim)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    with torch.no_grad():
        a = _mc_head(m, f, 10, g1)
        b = m.mc_from_features(f, 10, g2)
    assert a.shape == (10, n)
    torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-6)
    # both consumed exactly the same numbers from their generators
    assert torch.equal(torch.rand(5, generator=g1), torch.rand(5, generator=g2))
    # and a different seed gives different samples: the comparison can fail
    c = _mc_head(m, f, 10, torch.Generator().manual_seed(8))
    assert (c - b).abs().max() > 1e-2


@pytest.mark.parametrize("kind", ["plain", "ensemble", "spec"])
@pytest.mark.parametrize("T", [1, 10])
def test_fast_scoring_equals_the_reference_path(kind, T):
    m = _model(kind)
    x = np.concatenate([toy_candidates(300, seed=4)["cutouts"], _awkward_batch().numpy()])
    spec = None
    if kind == "spec":
        spec = np.random.default_rng(0).normal(size=(len(x), 2, 100)).astype(np.float32)
    a = score_batch(m, x, spec=spec, n_samples=T, generator=torch.Generator().manual_seed(3))
    b = score_batch_reference(
        m, x, spec=spec, n_samples=T, generator=torch.Generator().manual_seed(3)
    )
    for k in SCORE_FIELDS:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-5, atol=2e-6, err_msg=k)
    if T > 1:
        assert b["bald"].max() > 1e-3  # real MC spread, so equal masks are what is tested


def test_cached_fast_copy_follows_weight_changes():
    m = _model("plain")
    x = toy_candidates(40, seed=5)["cutouts"]
    before = score(m, x, n_samples=1)["prob"]
    assert fast_cpu_model(m) is fast_cpu_model(m)  # cached while the weights stand
    with torch.no_grad():
        m.trunk[0][0].weight.mul_(-1.0)  # in place, as an optimiser step would
    after = score(m, x, n_samples=1)["prob"]
    ref = score_batch_reference(m, x, n_samples=1)["prob"]
    assert np.abs(after - before).max() > 1e-3
    np.testing.assert_allclose(after, ref, rtol=1e-5, atol=2e-6)


@pytest.mark.parametrize("m", [900, 3600, 8, 7, 2, 1])
def test_float16_radix_centre_and_scale_equal_selection_exactly(m):
    from mlcore.cnn.data import _center_scale_float16, _center_scale_numpy

    rng = np.random.default_rng(m)
    for scale in (0.01, 1.0, 300.0):
        h = (rng.normal(size=(40, m)) * scale).astype(np.float16)
        h[1] = np.round(h[1])  # many ties
        h[2] = 3.0  # constant: MAD 0 -> sigma 1
        h[3] = -np.abs(h[3])  # all negative
        med, sig = _center_scale_float16(h)
        ref_med, ref_sig = _center_scale_numpy(h.astype(np.float32), None)
        np.testing.assert_array_equal(med, ref_med)
        np.testing.assert_array_equal(sig, ref_sig)
    assert sig[2] == 1.0


def test_float16_batches_with_some_masked_rows_take_both_paths():
    cut = toy_candidates(32, seed=6)["cutouts"].astype(np.float16)
    cut[3, 1, 2, 5:9] = np.nan  # masked rows go through np.partition, the rest radix
    cut[7] = np.nan
    ref, ref_m = normalise_torch(torch.from_numpy(cut))
    z, m = normalise_numpy(cut)
    np.testing.assert_array_equal(m, ref_m.numpy())
    np.testing.assert_allclose(z, ref.numpy(), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("shape", [(3, 4, 9, 100), (2, 3, 9, 50), (2, 3, 7, 11), (1, 2, 1, 3)])
@pytest.mark.parametrize("kernel", [(1, 2), (2, 2), (3, 2)])
def test_strided_view_max_pool_equals_max_pool2d_exactly(shape, kernel):
    x = torch.randn(*shape).contiguous(memory_format=torch.channels_last)
    if shape[2] < kernel[0] or shape[3] < kernel[1]:
        pytest.skip("kernel larger than the input")
    want = torch.nn.functional.max_pool2d(x, kernel)
    got = _SliceMaxPool2d(kernel)(x)
    assert got.shape == want.shape  # odd sizes floor, as MaxPool2d does
    assert torch.equal(got, want)


@pytest.mark.parametrize("length", [50, 20, 23, 5, 7])
def test_bin_max_pool_equals_adaptive_max_pool1d(length):
    x = torch.randn(4, 3, length)
    want = torch.nn.functional.adaptive_max_pool1d(x, 5)
    assert torch.equal(_BinMaxPool1d(5)(x), want)  # even blocks, or the fallback


def test_unknown_precision_is_refused_with_the_choices():
    m = _model("plain")
    x = toy_candidates(8, seed=1)["cutouts"]
    with pytest.raises(ValueError, match="float32, bfloat16"):
        score_batch(m, x, precision="float16")
    with pytest.raises(ValueError, match="float32, bfloat16"):
        check_precision("fp8")


@pytest.mark.skipif(cpu_bfloat16_native(), reason="this CPU runs bfloat16 natively")
def test_bfloat16_is_refused_on_a_cpu_without_native_support():
    with pytest.raises(ValueError, match="no native bfloat16"):
        check_precision("bfloat16")


@pytest.mark.skipif(not cpu_bfloat16_native(), reason="no native bfloat16 on this CPU")
@pytest.mark.parametrize("kind", ["plain", "spec", "ensemble"])
def test_bfloat16_trunks_stay_close_to_float32_with_the_same_masks(kind):
    m = _model(kind)
    x = np.concatenate([toy_candidates(300, seed=4)["cutouts"], _awkward_batch().numpy()])
    spec = None
    if kind == "spec":
        spec = np.random.default_rng(0).normal(size=(len(x), 2, 100)).astype(np.float32)
    a = score_batch(m, x, spec=spec, generator=torch.Generator().manual_seed(3))
    b = score_batch(
        m, x, spec=spec, generator=torch.Generator().manual_seed(3), precision="bfloat16"
    )
    d = np.abs(a["prob"] - b["prob"])
    assert d.max() < 5e-3  # only the features are rounded
    assert d.max() > 0  # and they are: the bfloat16 path really ran
    np.testing.assert_array_equal(a["masked_frac"], b["masked_frac"])
    ref = score_batch_reference(
        m, x, spec=spec, generator=torch.Generator().manual_seed(3), precision="bfloat16"
    )
    assert np.abs(ref["prob"] - a["prob"]).max() < 5e-3  # the reference's autocast too
