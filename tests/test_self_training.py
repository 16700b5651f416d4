"""Self-training (mlcore.cnn.self_training): the confident answers of a fitted model on
candidates outside every split join the labels for a second fit."""

import json

import numpy as np
import pytest

from mlcore.cnn import self_training
from mlcore.cnn.artefacts import NO_KIND
from mlcore.cnn.self_training import SelfTrainConfig, Unlabelled
from mlcore.errors import DataError
from mlcore.survey_io import write_survey
from mlcore.train import main
from tests.factories import make_survey


class _Temp:
    temperature = 2.0


def _unlabelled(n, sn):
    return Unlabelled(cutouts=np.zeros((n, 5, 9, 100), np.float32), sn=np.asarray(sn, float))


def test_pick_takes_confident_answers_balanced_per_class_and_regime(monkeypatch):
    import mlcore.cnn.training as training

    # logits / temperature 2: p = sigmoid(logit / 2)
    logits = np.array([9.0, 8.0, 7.0, -9.0, 0.5, 9.0, -8.0, -7.0, 1.0, 8.0], np.float32)
    sn = [5.0, 5.0, 5.0, 5.0, 5.0, 6.0, 6.0, 6.0, 6.0, 6.0]
    monkeypatch.setattr(training, "predict_logits", lambda model, x, s: logits[: len(x)])
    rows, labels, info = self_training.pick(_Temp(), _unlabelled(10, sn), SelfTrainConfig())
    # low S/N: 3 confident real, 1 confident artefact -> 1 of each (the most confident);
    # high: 2 real (9, 8), 2 artefacts (-8, -7); rows 4 and 8 are not confident
    assert rows.tolist() == [0, 3, 5, 6, 7, 9]
    assert labels.tolist() == [1, 0, 1, 0, 0, 1]
    assert info["n_pseudo"] == 6 and info["n_scored"] == 10
    assert info["n_pseudo_real"] == {"low": 1, "high": 2}
    assert info["n_pseudo_artefact"] == {"low": 1, "high": 2}
    # a cap per class and regime, and a sampled pool
    rows, _, info = self_training.pick(
        _Temp(), _unlabelled(10, sn), SelfTrainConfig(max_per_class=1, max_pool=10)
    )
    assert rows.tolist() == [0, 3, 5, 6]


def test_extend_appends_the_picked_rows_with_no_artefact_answer():
    unl = Unlabelled(
        cutouts=np.arange(4 * 4500, dtype=np.float32).reshape(4, 5, 9, 100),
        sn=np.array([5.0, 6.0, 7.0, 8.0]),
        spec=np.ones((4, 2, 6), np.float32),
    )
    ext = self_training.extend(
        cutouts=np.zeros((2, 5, 9, 100), np.float32), targets=np.array([1.0, 0.0]),
        sn=np.array([5.0, 5.1]), spec=np.zeros((2, 2, 6), np.float32),
        weights=np.array([0.5, 0.7]), kind_index=np.array([2, NO_KIND]),
        kind_weight=np.array([1.0, 0.0], np.float32), unl=unl, rows=np.array([1, 3]),
        labels=np.array([0.0, 1.0], np.float32),
    )  # fmt: skip
    assert ext["pseudo_rows"].tolist() == [2, 3]
    assert ext["targets"].tolist() == [1, 0, 0, 1]
    assert ext["sn"].tolist() == pytest.approx([5, 5.1, 6, 8])
    assert np.array_equal(ext["cutouts"][2], unl.cutouts[1])
    assert np.array_equal(ext["cutouts"][3], unl.cutouts[3])
    assert ext["weights"].tolist() == pytest.approx([0.5, 0.7, 1, 1])
    assert ext["kind_index"].tolist() == [2, NO_KIND, NO_KIND, NO_KIND]
    assert ext["kind_weight"].tolist() == [1, 0, 0, 0] and ext["spec"].shape == (4, 2, 6)
    # a weight below 1 for the pseudo-labelled rows, with or without labelled weights
    light = self_training.extend(
        cutouts=np.zeros((2, 5, 9, 100), np.float32), targets=np.array([1.0, 0.0]),
        sn=np.array([5.0, 5.1]), spec=None, weights=None, kind_index=None, kind_weight=None,
        unl=unl, rows=np.array([0]), labels=np.array([1.0], np.float32), weight=0.25,
    )  # fmt: skip
    assert light["weights"].tolist() == [1, 1, 0.25]
    with pytest.raises(DataError, match="unlabelled rows none"):
        self_training.extend(
            cutouts=np.zeros((1, 5, 9, 100)), targets=np.ones(1), sn=np.ones(1),
            spec=np.zeros((1, 2, 6)), weights=None, kind_index=None, kind_weight=None,
            unl=_unlabelled(2, [5, 6]), rows=np.array([0]), labels=np.ones(1),
        )  # fmt: skip


def test_bad_settings_and_mismatched_rows_are_refused():
    with pytest.raises(DataError, match=r"threshold must be in \(0.5, 1\)"):
        SelfTrainConfig(threshold=0.4)
    with pytest.raises(DataError, match="at least 1"):
        SelfTrainConfig(max_per_class=0)
    with pytest.raises(DataError, match=r"weight must be in \(0, 1\]"):
        SelfTrainConfig(weight=0)
    with pytest.raises(DataError, match="must be the same rows"):
        Unlabelled(cutouts=np.zeros((3, 5, 9, 100)), sn=np.ones(2))


def test_cli_self_trains_on_the_rows_outside_every_split(tmp_path, capsys):
    data = write_survey(tmp_path / "s.fits", make_survey(400, seed=2))
    out = tmp_path / "model"
    args = ["--data", str(data), "--out", str(out), "--epochs", "2", "--width", "4",
            "--threads", "1", "--max-train", "60", "--seed", "1"]  # fmt: skip
    assert main([*args, "--self-train", "--self-train-threshold", "0.6"]) == 0
    card = json.loads((out / "model_card.json").read_text())
    st = card["self_training"]
    n_splits = card["n_train"] + card["n_val"] + card["metrics"]["n_test"]
    assert card["n_train"] == 60  # the labels; the pseudo-labels are counted apart
    assert st["n_scored"] == 400 - n_splits  # only rows outside every split
    assert st["threshold"] == 0.6 and 0 < st["n_pseudo"] <= st["n_scored"]
    assert st["weight"] == 0.25  # the default: a quarter of a label
    assert set(st["first_fit"]["balanced_accuracy"]) == {"overall", "high", "low"}
    assert card["best_epoch"] >= 0
    # the same run without the flag: one fit, no summary
    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    plain = json.loads((tmp_path / "plain" / "model_card.json").read_text())
    assert "self_training" not in plain and plain["n_train"] == 60
    # a threshold out of range is an error message, not a traceback
    assert main([*args, "--self-train", "--self-train-threshold", "1.5"]) == 2
    assert "threshold must be in (0.5, 1)" in capsys.readouterr().err


@pytest.fixture
def half_labelled(tmp_path, settings):
    """1,500 simulated candidates ingested; the truth of 900 removed: nobody labelled them."""
    from labelapp.models import CandidateTruth
    from labelapp.services.survey.ingest import ingest_survey
    from mlcore.simulator import simulate_survey

    settings.MODELS_DIR = tmp_path / "models"
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(1500, seed=11)))
    gone = list(CandidateTruth.objects.order_by("?").values_list("candidate_id", flat=True)[:900])
    CandidateTruth.objects.filter(candidate_id__in=gone).delete()
    return set(gone)


@pytest.mark.django_db
def test_the_platform_pool_is_the_unlabelled_candidates_read_by_id(half_labelled):
    from labelapp.models import Candidate, IngestBatch
    from labelapp.services.learning.training import unlabelled_sample
    from labelapp.services.survey.rendering import open_store

    labelled = list(Candidate.objects.exclude(pk__in=half_labelled).values_list("pk", flat=True))
    unl = unlabelled_sample(exclude=np.array(labelled), n=10_000, seed=0)
    assert len(unl.sn) == len(half_labelled)
    # a small sample: the rows read are those candidates' own pixels and S/N
    unl = unlabelled_sample(exclude=np.array(labelled), n=7, seed=3)
    assert len(unl.sn) == 7 and unl.spec.shape[0] == 7
    store = open_store(IngestBatch.objects.get().store_path)
    for cut, sn in zip(unl.cutouts, unl.sn, strict=True):
        row = Candidate.objects.get(batch__isnull=False, sn=sn).row
        assert np.array_equal(np.asarray(store.cutouts[row]), cut)
        assert Candidate.objects.get(row=row).pk in half_labelled


@pytest.mark.django_db
def test_a_retrain_self_trains_when_the_campaign_says_so(half_labelled, monkeypatch, client):
    import functools

    from labelapp.models import CampaignSettings
    from labelapp.services.learning import acquisition_settings, training
    from tests.factories_console import make_scientist

    # a two-epoch model is rarely 90 % sure: a lower bar, so the second fit has answers
    monkeypatch.setattr(
        training, "SelfTrainConfig", functools.partial(SelfTrainConfig, threshold=0.6)
    )
    plain = training.train_model_version(label_source="truth", epochs=2, max_time_s=60)
    assert "self_training" not in plain.card
    acquisition_settings.set_self_training_setting(user=make_scientist(), on=True)
    assert CampaignSettings.objects.get(pk=1).self_training is True
    v = training.train_model_version(label_source="truth", epochs=2, max_time_s=60)
    st = v.card["self_training"]
    assert st["n_scored"] == len(half_labelled)  # every unlabelled candidate, no labelled one
    assert 0 < st["n_pseudo"] <= st["n_scored"] and st["threshold"] == 0.6
    assert st["first_fit"]["balanced_accuracy"]["overall"] is not None
    assert v.n_train == plain.n_train  # the labels; pseudo-labels are counted apart
    # the model page says so, with the first fit's held-out figures
    from django.urls import reverse

    client.force_login(make_scientist("sci2"))
    html = client.get(reverse("console-model", args=[v.pk])).content.decode()
    said = " ".join(html.split('id="self-training"')[1].split("</p>")[0].split())
    assert f"answered {st['n_scored']} unlabelled candidates; {st['n_pseudo']} confident" in said
    assert f"high S/N {st['first_fit']['balanced_accuracy']['high']:.3f}" in said
    assert (
        'id="self-training"'
        not in client.get(reverse("console-model", args=[plain.pk])).content.decode()
    )
    # a request can still say no
    v3 = training.train_model_version(
        label_source="truth", epochs=2, max_time_s=60, self_train=False
    )
    assert "self_training" not in v3.card


@pytest.mark.django_db
def test_the_console_setting_is_audited(client):
    from django.urls import reverse

    from labelapp.models import AuditEvent
    from labelapp.services.learning.acquisition_settings import self_training_setting
    from tests.factories_console import make_scientist

    client.force_login(make_scientist())
    page = client.get(reverse("console-acquisition")).content.decode()
    assert 'name="self_training"' in page and not self_training_setting()
    r = client.post(reverse("console-self-training-settings"), {"self_training": "on"})
    assert r.status_code == 302 and self_training_setting()
    assert AuditEvent.objects.get(action="self_training_settings").detail == {
        "self_training": [False, True]
    }
    client.post(reverse("console-self-training-settings"), {})  # unticked: off
    assert not self_training_setting()
