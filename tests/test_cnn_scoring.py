import numpy as np
import pytest
import torch

from mlcore.cnn.model import CNNConfig, LineCNN
from mlcore.cnn.scoring import SCORE_FIELDS, iter_scores, score, score_store
from mlcore.cnn.toy import toy_candidates


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    m = LineCNN(CNNConfig(width=4, hidden=8, dropout=0.3)).eval()
    m.temperature.fill_(1.5)
    return m


@pytest.fixture(scope="module")
def cutouts():
    return toy_candidates(50, seed=2)["cutouts"]


class CountingArray:
    """Array-like that records the largest slice anyone reads from it."""

    def __init__(self, a):
        self.a, self.shape, self.max_rows = a, a.shape, 0

    def __len__(self):
        return len(self.a)

    def __getitem__(self, key):
        out = self.a[key]
        self.max_rows = max(self.max_rows, len(out))
        return out


def test_scores_every_row_with_sane_uncertainties(model, cutouts):
    s = score(model, cutouts, n_samples=8, batch_size=16)
    assert set(s) == set(SCORE_FIELDS)
    assert all(v.shape == (50,) and v.dtype == np.float32 for v in s.values())
    assert np.all((s["prob"] >= 0) & (s["prob"] <= 1))
    assert np.all(s["entropy"] <= np.log(2) + 1e-6)
    assert np.all(s["bald"] >= 0) and np.all(s["bald"] <= s["entropy"] + 1e-6)
    assert s["bald"].max() > 0 and s["std"].max() > 0  # dropout really samples


def test_reads_memmap_float16_batch_by_batch(model, cutouts, tmp_path):
    mm = np.lib.format.open_memmap(tmp_path / "c.npy", "w+", np.float16, cutouts.shape)
    mm[:] = cutouts
    mm.flush()
    src = CountingArray(np.load(tmp_path / "c.npy", mmap_mode="r"))
    s = score(model, src, n_samples=4, batch_size=16)
    assert src.max_rows == 16  # memory bounded by the batch, not N
    ref = score(model, cutouts.astype(np.float16).astype(np.float32), n_samples=4, batch_size=16)
    np.testing.assert_array_equal(s["prob"], ref["prob"])


def test_deterministic_part_does_not_depend_on_batching(model, cutouts):
    a = score(model, cutouts, n_samples=1, batch_size=7)["prob"]
    b = score(model, cutouts, n_samples=1, batch_size=50)["prob"]
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with torch.no_grad():
        from mlcore.cnn.data import normalise

        logit = model(normalise(torch.from_numpy(cutouts))[0])
    np.testing.assert_allclose(a, torch.sigmoid(logit / 1.5).numpy(), rtol=1e-5, atol=1e-6)


def test_seeded_mc_scores_are_reproducible(model, cutouts):
    a = score(model, cutouts, n_samples=6, seed=3)
    b = score(model, cutouts, n_samples=6, seed=3)
    c = score(model, cutouts, n_samples=6, seed=4)
    assert np.array_equal(a["bald"], b["bald"]) and not np.array_equal(a["bald"], c["bald"])


def test_nan_masked_pixels_do_not_crash_and_are_reported(model, cutouts):
    x = cutouts[:10].copy()
    x[0, :, :, 45:55] = np.nan  # the line region masked
    x[1] = np.nan  # a fully masked candidate
    x[2, 3, 0, 0] = np.inf
    s = score(model, x, n_samples=4)
    assert all(np.isfinite(v).all() for v in s.values())
    assert s["masked_frac"][0] == pytest.approx(0.1) and s["masked_frac"][1] == 1.0
    assert s["masked_frac"][3] == 0.0


def test_iter_scores_covers_a_chunk_range(model, cutouts):
    parts = list(iter_scores(model, cutouts, n_samples=2, batch_size=8, start=10, stop=30))
    assert [(a, b) for a, b, _ in parts] == [(10, 18), (18, 26), (26, 30)]


def test_model_with_spectrum_branch_scores_from_raw_spectra(cutouts):
    m = LineCNN(CNNConfig(width=4, hidden=8, spec_len=100)).eval()
    rng = np.random.default_rng(0)
    spec = rng.normal(size=(50, 1036)).astype(np.float32)
    s = score(
        m,
        cutouts,
        spec1d=spec,
        spec1d_err=np.ones_like(spec),
        wave=rng.uniform(3600, 5400, 50),
        n_samples=3,
    )
    assert np.isfinite(s["prob"]).all()


def test_store_layout_scores_like_separate_spectrum_arrays(cutouts):
    from types import SimpleNamespace

    m = LineCNN(CNNConfig(width=4, hidden=8, spec_len=100)).eval()
    rng = np.random.default_rng(1)
    flux = rng.normal(size=(50, 1036)).astype(np.float32)
    err = np.full_like(flux, 2.0)
    wave = rng.uniform(3600, 5400, 50)
    im_wave = wave[:, None] + 2.0 * (np.arange(100) - 50)
    store = SimpleNamespace(
        cutouts=cutouts.astype(np.float16), spec=np.stack([flux, err], 1), im_wave=im_wave
    )
    a = score_store(m, store, n_samples=3)
    b = score(m, cutouts.astype(np.float16), spec1d=flux, spec1d_err=err, wave=wave, n_samples=3)
    np.testing.assert_array_equal(a["prob"], b["prob"])
    with pytest.raises(ValueError, match="1D branch"):
        score(m, cutouts, n_samples=1)
