import json

import numpy as np
import pytest
import torch

from mlcore.cnn.card import (
    REQUIRED_CARD_KEYS,
    build_card,
    code_version,
    hash_arrays,
    hash_file,
    load_checkpoint,
    read_card,
    write_model_dir,
)
from mlcore.cnn.model import CNNConfig, EnsembleCNN, LineCNN, count_parameters
from mlcore.cnn.scoring import score
from mlcore.cnn.toy import toy_candidates


@pytest.fixture
def model():
    torch.manual_seed(1)
    m = LineCNN(CNNConfig(width=4, hidden=8)).eval()
    m.temperature.fill_(0.7)
    m.prior_shift.copy_(torch.tensor([0.25, 1.5]))
    return m


def _card(m):
    return build_card(
        model=m, data_hash="abc", label_source="truth", seed=5, training_time_s=1.234,
        train_config={"epochs": 1}, n_train=10, n_val=3,
        metrics={"regimes": {"low": {"balanced_accuracy": float("nan")}}},
    )  # fmt: skip


def test_checkpoint_round_trip_gives_identical_scores(model, tmp_path):
    x = toy_candidates(20, seed=0)["cutouts"]
    write_model_dir(tmp_path, model, _card(model))
    loaded = load_checkpoint(tmp_path)
    assert loaded.config == model.config and float(loaded.temperature) == pytest.approx(0.7)
    assert loaded.prior_shift.tolist() == [0.25, 1.5]
    a, b = score(model, x, n_samples=5, seed=2), score(loaded, x, n_samples=5, seed=2)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_model_card_contents(model, tmp_path):
    _, card_path = write_model_dir(tmp_path, model, _card(model))
    raw = card_path.read_text()
    card = json.loads(raw)  # strict JSON: NaN became null
    assert "NaN" not in raw
    assert set(REQUIRED_CARD_KEYS) <= set(card)
    assert card["n_parameters"] == count_parameters(model)
    assert card["seed"] == 5 and card["label_source"] == "truth" and card["data_hash"] == "abc"
    assert card["temperature"] == pytest.approx(0.7)
    assert card["prior_shift"] == {"low": 0.25, "high": 1.5}
    assert card["model_config"]["width"] == 4
    assert card["metrics"]["regimes"]["low"]["balanced_accuracy"] is None
    assert card["weights_sha256"] == hash_file(tmp_path / "model.pt")
    assert card["code_version"] == code_version() and "src:" in card["code_version"]
    assert read_card(tmp_path) == card


def test_hash_arrays_is_content_based_and_memmap_friendly(tmp_path):
    a = np.arange(30_000, dtype=np.float32).reshape(100, 300)
    np.save(tmp_path / "a.npy", a)
    mm = np.load(tmp_path / "a.npy", mmap_mode="r")
    assert hash_arrays(a, chunk_rows=7) == hash_arrays(mm, chunk_rows=64)
    b = a.copy()
    b[50, 3] += 1
    assert hash_arrays(a) != hash_arrays(b)
    assert hash_arrays(a) != hash_arrays(a.astype(np.float64))


def test_ensemble_checkpoint_round_trip_and_card(tmp_path):
    torch.manual_seed(2)
    ens = EnsembleCNN([LineCNN(CNNConfig(width=4, hidden=8)) for _ in range(3)]).eval()
    ens.temperature.fill_(1.3)
    x = toy_candidates(20, seed=0)["cutouts"]
    _, card_path = write_model_dir(tmp_path, ens, _card(ens))
    loaded = load_checkpoint(tmp_path)
    assert isinstance(loaded, EnsembleCNN) and len(loaded.members) == 3
    assert float(loaded.temperature) == pytest.approx(1.3)
    a, b = score(ens, x, n_samples=5, seed=2), score(loaded, x, n_samples=5, seed=2)
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    card = json.loads(card_path.read_text())
    assert card["members"] == 3 and card["model"] == "EnsembleCNN of 3"
    assert card["n_parameters"] == count_parameters(ens)


def test_single_model_checkpoints_stay_single(model, tmp_path):
    write_model_dir(tmp_path, model, _card(model))
    assert "members" not in torch.load(tmp_path / "model.pt", weights_only=True)
    assert type(load_checkpoint(tmp_path)) is LineCNN


def test_checkpoints_from_before_the_prior_shift_load_with_no_shift(model, tmp_path):
    write_model_dir(tmp_path, model, _card(model))
    ck = torch.load(tmp_path / "model.pt", weights_only=True)
    del ck["state_dict"]["prior_shift"]  # what every older model.pt holds
    torch.save(ck, tmp_path / "model.pt")
    loaded = load_checkpoint(tmp_path)
    assert loaded.prior_shift.tolist() == [0.0, 0.0]
    assert float(loaded.temperature) == pytest.approx(0.7)
    # any other missing weight is still an error, not silently zero
    del ck["state_dict"]["fc2.bias"]
    torch.save(ck, tmp_path / "model.pt")
    with pytest.raises(RuntimeError, match="fc2.bias"):
        load_checkpoint(tmp_path)
