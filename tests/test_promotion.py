"""The promotion gate: compare on gold + expert labels per S/N regime; reject worse; roll back."""

import shutil

import numpy as np
import pytest
import torch

from labelapp.models import ModelVersion
from labelapp.services.crowd.gold import seed_gold_from_truth
from labelapp.services.learning.promotion import (
    PromotionError,
    gate_model,
    live_model,
    roll_back_to,
)
from labelapp.services.survey.ingest import ingest_survey
from mlcore.cnn.card import load_checkpoint, save_checkpoint
from mlcore.cnn.pipeline import (
    SPEC_HALF_WIDTH,
    FitPlan,
    LabelledArrays,
    fit_evaluate_write,
    make_splits,
)
from mlcore.simulator import simulate_survey
from mlcore.survey import stack_cutouts
from mlcore.survey_io import write_survey

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
        LabelledArrays(
            cutouts=stack_cutouts(s.im_sum, s.im_array),
            targets=y,
            sn=sn,
            cols=s.catalog,
            spec=spec,
        ),
        FitPlan(
            splits=splits,
            label_source="truth",
            data_hash="test",
            train=TrainConfig(epochs=3, seed=0, max_time_s=60),
        ),
        out,
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


def test_paired_noise_counts_only_where_the_two_models_disagree():
    from labelapp.services.learning.promotion import paired_noise

    y = np.array([True] * 20 + [False] * 20)
    # identical verdicts: no disagreement, counted as one per class -> var floor 1/20 each:
    # 0.5 * sqrt(2 * (1/20) / 20) = 0.0354
    same = y.copy()
    assert paired_noise(y, same, same) == pytest.approx(0.5 * np.sqrt(2 * 0.05 / 20))
    # the new model gets 4 real lines wrong that the live one got right: d = -1 on 4 of 20
    # real, 0 elsewhere; var(ddof=1) = (4 * 0.8**2 + 16 * 0.2**2) / 19 = 0.1684;
    # 0.5 * sqrt(0.1684 / 20 + 0.05 / 20) = 0.0523
    new = y.copy()
    new[:4] = False
    assert paired_noise(y, new, y) == pytest.approx(0.0523, abs=1e-4)
    # an unpaired standard error of a 0.9 balanced accuracy on this set would be ~0.047
    # however much the two agree; paired, a large set of mostly shared verdicts is tight
    big = np.array([True] * 500 + [False] * 500)
    new_big = big.copy()
    new_big[:5] = False  # 5 of 500 flipped
    assert paired_noise(big, new_big, big) < 0.005
    assert paired_noise(np.array([True, True]), np.array([True, False]), np.array([True] * 2)) == 0


def test_a_worse_model_on_the_held_out_sample_is_rejected_even_if_gold_is_easy(
    site, good_dir, tmp_path
):
    """With a held-out sample, the gate judges on it (not on the gold) and says so."""
    from labelapp.models import Candidate, CandidateTruth
    from labelapp.services.learning.holdout import hold_out_from_truth

    assert hold_out_from_truth(n=300, low_share=0.5, seed=2) == 300
    assert Candidate.objects.filter(holdout__isnull=False, gold__isnull=False).count() == 0
    assert CandidateTruth.objects.exists()
    v1 = _register(good_dir, tmp_path, "v1")
    first = gate_model(model_version=v1)
    assert first.promoted and "on 300 held-out expert labels" in first.reason
    assert ModelVersion.objects.get(pk=v1.pk).card["gate"]["set"] == "held-out expert"
    worse = _register(good_dir, tmp_path, "v2", invert=True)
    decision = gate_model(model_version=worse)
    assert not decision.promoted and "rejected on 300 held-out expert labels" in decision.reason
    assert live_model() == v1


def test_the_gate_records_which_confident_calls_the_consensus_may_trust(
    site, good_dir, tmp_path, client
):
    """Each direction of a model's confident calls is measured on the evaluation set; the
    consensus compares votes only with the directions found right (ModelVersion.trust_*)."""
    v1 = _register(good_dir, tmp_path, "v1")
    gate_model(model_version=v1)
    worse = _register(good_dir, tmp_path, "v2", invert=True)
    gate_model(model_version=worse)
    for mv in (v1, worse):
        mv.refresh_from_db()
        calls = mv.card["gate"]["confident_calls"]
        assert calls["threshold"] == 0.8
        assert mv.trust_real_calls == calls["real"]["trusted"]
        assert mv.trust_false_calls == calls["false"]["trusted"]
    good = v1.card["gate"]["confident_calls"]
    bad = worse.card["gate"]["confident_calls"]
    # the inverted network's confident calls are the good one's, turned into wrong ones
    assert bad["real"]["n"] == good["false"]["n"] and bad["false"]["n"] == good["real"]["n"]
    assert good["real"]["trusted"] and good["real"]["precision"] >= 0.85
    assert not bad["real"]["trusted"] and not bad["false"]["trusted"]
    # the model page says which calls judge volunteers
    from django.urls import reverse

    from tests.factories_console import make_scientist

    client.force_login(make_scientist())
    for mv, word in ((v1, "used"), (worse, "not used")):
        html = client.get(reverse("console-model", args=[mv.pk])).content.decode()
        said = " ".join(html.split('id="confident-calls"')[1].split("</p>")[0].split())
        cc = mv.card["gate"]["confident_calls"]
        assert f'"real" right {cc["real"]["right"]} of {cc["real"]["n"]}' in said
        assert f'"not real" right {cc["false"]["right"]} of {cc["false"]["n"]}' in said
        assert f'<span class="badge {"ok" if word == "used" else "shifted"}">{word}</span>' in said
