"""The promotion gate: compare on gold + expert labels per S/N regime; reject worse; roll back."""

import shutil

import numpy as np
import pytest
import torch

from labelapp.models import ModelVersion
from labelapp.services.gold import seed_gold_from_truth
from labelapp.services.ingest import ingest_survey
from labelapp.services.promotion import (
    PromotionError,
    gate_model,
    live_model,
    roll_back_to,
)
from mlcore.cnn.card import load_checkpoint, save_checkpoint
from mlcore.simulator import simulate_survey
from mlcore.survey import stack_cutouts
from mlcore.survey_io import write_survey
from mlcore.train import SPEC_HALF_WIDTH, fit_evaluate_write, make_splits

pytestmark = pytest.mark.django_db


@pytest.fixture(scope="module")
def survey_file(tmp_path_factory):
    return write_survey(tmp_path_factory.mktemp("s") / "s.fits", simulate_survey(1500, seed=21))


@pytest.fixture(scope="module")
def good_dir(tmp_path_factory, survey_file):
    """A model trained briefly on truth, outside the database (as a GPU box would)."""
    from mlcore.cnn.data import spec_windows
    from mlcore.cnn.training import TrainConfig
    from mlcore.survey_io import read_survey

    s = read_survey(survey_file)
    y = s.truth["truth_real"].astype(np.float32)
    sn = s.catalog["sn"]
    splits = make_splits(y, sn, test_frac=0.2, val_frac=0.15, max_train=None, seed=0)
    spec = spec_windows(s.spec1d, s.spec1d_err, s.catalog["wave"], SPEC_HALF_WIDTH)
    out = tmp_path_factory.mktemp("m") / "good"
    fit_evaluate_write(
        stack_cutouts(s.im_sum, s.im_array),
        y,
        sn,
        s.catalog,
        splits=splits,
        out=out,
        spec=spec,
        label_source="truth",
        data_hash="test",
        train_config=TrainConfig(epochs=3, seed=0, max_time_s=60),
        log=lambda m: None,
    )
    return out


def _register(src, tmp_path, name, *, invert=False) -> ModelVersion:
    dst = tmp_path / name
    shutil.copytree(src, dst)
    if invert:  # a deliberately worse model: the same network with its verdict flipped
        model = load_checkpoint(dst)
        with torch.no_grad():
            last = [m for m in model.modules() if isinstance(m, torch.nn.Linear)][-1]
            last.weight.neg_()
            last.bias.neg_()
        save_checkpoint(dst / "model.pt", model)
    return ModelVersion.objects.create(label_source="truth", directory=str(dst))


@pytest.fixture
def site(survey_file):
    ingest_survey(path=survey_file)
    assert seed_gold_from_truth(per_kind=25) >= 100


def test_first_model_better_than_chance_is_promoted(site, good_dir, tmp_path):
    v1 = _register(good_dir, tmp_path, "v1")
    decision = gate_model(model_version=v1)
    assert decision.promoted, decision.reason
    assert live_model() == v1 and "promoted on" in ModelVersion.objects.get(pk=v1.pk).status_reason
    assert decision.new["high"]["balanced_accuracy"] > 0.6


def test_a_deliberately_worse_model_is_rejected_with_the_reason(site, good_dir, tmp_path):
    v1 = _register(good_dir, tmp_path, "v1")
    gate_model(model_version=v1)
    worse = _register(good_dir, tmp_path, "v2", invert=True)
    decision = gate_model(model_version=worse)
    assert not decision.promoted
    worse.refresh_from_db()
    assert worse.status == "rejected"
    assert "balanced accuracy" in worse.status_reason and f"live v{v1.pk}" in worse.status_reason
    assert live_model() == v1  # the live model never changed


def test_an_equal_model_is_promoted_and_the_old_one_retires(site, good_dir, tmp_path):
    v1 = _register(good_dir, tmp_path, "v1")
    gate_model(model_version=v1)
    v2 = _register(good_dir, tmp_path, "v2")
    assert gate_model(model_version=v2).promoted
    v1.refresh_from_db()
    assert v1.status == "retired" and live_model() == v2


def test_roll_back_to_an_earlier_model(site, good_dir, tmp_path):
    v1 = _register(good_dir, tmp_path, "v1")
    gate_model(model_version=v1)
    v2 = _register(good_dir, tmp_path, "v2")
    gate_model(model_version=v2)
    roll_back_to(model_version=v1, user="dr-hill")
    assert live_model() == v1
    assert ModelVersion.objects.get(pk=v2.pk).status == "retired"
    with pytest.raises(PromotionError, match="already live"):
        roll_back_to(model_version=v1)


def test_gate_needs_an_evaluation_set(survey_file, good_dir, tmp_path):
    ingest_survey(path=survey_file)
    v1 = _register(good_dir, tmp_path, "v1")
    with pytest.raises(PromotionError, match="evaluation set is empty"):
        gate_model(model_version=v1)
    assert ModelVersion.objects.get(pk=v1.pk).status == "candidate"


def test_a_drop_within_the_noise_of_a_small_set_does_not_block():
    from labelapp.services.promotion import _noise

    # 20 real / 20 false at 16/20: Laplace-smoothed rate 17/22 = 0.773, standard error
    # 0.5 * sqrt(2 * 0.773 * 0.227 / 20) = 0.0663
    m = {"low": {"n_real": 20, "n_false": 20, "tp": 16, "tn": 16, "balanced_accuracy": 0.8}}
    assert _noise(m, "low") == pytest.approx(0.0663, abs=1e-3)
    assert _noise({"low": {"n_real": 0, "n_false": 5}}, "low") == 0.0
    # a perfect score on a small set still has an uncertainty: 21/22 -> 0.5 * sqrt(2 *
    # 0.9545 * 0.0455 / 20) = 0.033, so one mistake by a new model is within two of them
    perfect = {"high": {"n_real": 20, "n_false": 20, "tp": 20, "tn": 20}}
    assert _noise(perfect, "high") == pytest.approx(0.0330, abs=1e-3)
