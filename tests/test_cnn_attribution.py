import numpy as np
import pytest
import torch
from PIL import Image

from mlcore.cnn.attribution import (
    TOL_BURD,
    _diverging,
    attribute,
    integrated_gradients,
    render_attribution,
    save_attribution_png,
)
from mlcore.cnn.model import CNNConfig, EnsembleCNN, LineCNN
from mlcore.cnn.toy import toy_candidates


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return LineCNN(CNNConfig(width=4, hidden=8)).eval()


def test_integrated_gradients_complete_the_logit_difference(model):
    x = torch.randn(2, 5, 9, 100)
    attr = integrated_gradients(model, x, steps=128)
    with torch.no_grad():
        diff = model(x) - model(torch.zeros_like(x))
    np.testing.assert_allclose(attr.reshape(2, -1).sum(1), diff.numpy(), rtol=0.05, atol=0.02)


def test_an_ensemble_is_attributed_as_the_mean_of_its_members(model):
    torch.manual_seed(1)
    other = LineCNN(CNNConfig(width=4, hidden=8)).eval()
    ens = EnsembleCNN([model, other]).eval()
    x = torch.randn(2, 5, 9, 100)
    # integrated gradients are linear in the model, and the ensemble logit is the mean
    want = integrated_gradients(model, x, steps=16) + integrated_gradients(other, x, steps=16)
    np.testing.assert_allclose(integrated_gradients(ens, x, steps=16), want / 2, atol=1e-5)


def test_attribution_png_is_rendered_with_a_colour_blind_safe_map(model, tmp_path):
    out = attribute(model, toy_candidates(2, seed=0)["cutouts"], steps=8)
    assert out["attr"].shape == (2, 5, 9, 100) and out["prob"].shape == (2,)
    path = save_attribution_png(tmp_path / "a.png", out["x"][0], out["attr"][0], "cand 1")
    img = Image.open(path)
    assert img.format == "PNG" and img.mode == "RGB"
    assert img.size[0] >= 400 and img.size[1] > 5 * 2 * 9 * 6


def test_diverging_map_ends_and_centre_are_tol_burd():
    def hex_(c):
        return [int(c[i : i + 2], 16) for i in (1, 3, 5)]

    got = _diverging(np.array([-1.0, 0.0, 1.0]))
    assert got.tolist() == [hex_(TOL_BURD[0]), hex_(TOL_BURD[4]), hex_(TOL_BURD[-1])]


def test_strongest_attribution_is_drawn_in_the_strongest_colour():
    x = np.zeros((5, 9, 100), np.float32)
    attr = np.zeros_like(x)
    attr[0, 4, 50] = 1.0
    img = np.asarray(render_attribution(x, attr, scale=(1, 1), blend=1.0))
    red = np.array([int(TOL_BURD[-1][i : i + 2], 16) for i in (1, 3, 5)])
    assert (np.abs(img.astype(int) - red).sum(axis=2) == 0).sum() == 1


def test_labels_are_drawn_large_enough_to_read_at_half_size():
    """The console shows the map at about half size: a channel label must stay >= 5 px tall
    there, so >= 10 px here (PIL's bitmap font gave 4 px on screen)."""
    img = np.asarray(render_attribution(np.zeros((5, 9, 100)), np.zeros((5, 9, 100))))
    y0 = 52 + 2 * 54 + 12  # the second channel's rows: its label is "fiber 1"
    label = img[y0 : y0 + 2 * 54 + 12, :80].min(axis=2) < 100  # dark ink left of the strips
    rows = np.flatnonzero(label.any(axis=1))
    assert rows.size and rows.max() - rows.min() + 1 >= 14
