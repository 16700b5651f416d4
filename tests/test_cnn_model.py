import pytest
import torch

from mlcore.cnn.model import CNNConfig, EnsembleCNN, LineCNN, count_parameters


def test_default_model_is_small_and_maps_cutouts_to_one_logit():
    model = LineCNN().eval()
    # The parameter count quoted in the model card and the docs; change both together.
    assert count_parameters(model) == 34581
    out = model(torch.randn(7, 5, 9, 100))
    assert out.shape == (7,)


def test_mc_forward_is_seeded_and_samples_differ():
    torch.manual_seed(0)
    model = LineCNN(CNNConfig(width=4, dropout=0.5)).eval()
    x = torch.randn(6, 5, 9, 100)
    a = model.forward_mc(x, n_samples=5, generator=torch.Generator().manual_seed(1))
    b = model.forward_mc(x, n_samples=5, generator=torch.Generator().manual_seed(1))
    assert a.shape == (5, 6)
    assert torch.equal(a, b)
    assert not torch.allclose(a[0], a[1])


def test_single_mc_sample_is_the_deterministic_forward_pass():
    model = LineCNN(CNNConfig(width=4)).eval()
    x = torch.randn(3, 5, 9, 100)
    torch.testing.assert_close(model.forward_mc(x, n_samples=1)[0], model(x))


def test_spectrum_branch_needs_and_uses_the_spectrum():
    model = LineCNN(CNNConfig(width=4, spec_len=100)).eval()
    x, s = torch.randn(2, 5, 9, 100), torch.randn(2, 2, 100)
    assert model(x, s).shape == (2,)
    assert not torch.allclose(model(x, s), model(x, torch.zeros_like(s)))
    with pytest.raises(ValueError, match="spec"):
        model(x)


def _members(k: int, **cfg) -> list[LineCNN]:
    torch.manual_seed(3)
    return [LineCNN(CNNConfig(width=4, **cfg)).eval() for _ in range(k)]


def test_ensemble_forward_is_the_mean_member_logit_and_mc_stacks_every_member():
    members = _members(3, dropout=0.5)
    ens = EnsembleCNN(members).eval()
    x = torch.randn(6, 5, 9, 100)
    torch.testing.assert_close(ens(x), torch.stack([m(x) for m in members]).mean(0))
    torch.testing.assert_close(ens.forward_mc(x, n_samples=1)[0], ens(x))
    mc = ens.forward_mc(x, n_samples=4, generator=torch.Generator().manual_seed(1))
    assert mc.shape == (12, 6)
    # the first member's block is that member's own MC draw from the same generator state
    own = members[0].forward_mc(x, n_samples=4, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(mc[:4], own)
    assert ens.features(x).shape == (6, ens.feature_dim) and ens.feature_dim == 3 * 120
    assert count_parameters(ens) == 3 * count_parameters(members[0])


def test_ensemble_members_must_share_a_config():
    with pytest.raises(ValueError, match="share one CNNConfig"):
        EnsembleCNN([LineCNN(CNNConfig(width=4)), LineCNN(CNNConfig(width=6))])
    with pytest.raises(ValueError, match="at least one member"):
        EnsembleCNN([])
