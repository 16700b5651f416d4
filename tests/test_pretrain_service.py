"""Pretrained encoders in the platform (issue #25): pretrained on the catalogue's pixels
without labels, recorded with their card, never live; a retrain can start from one (its
card says which), refused when it cannot; the console lists them on their own."""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse

from labelapp.models import (
    AuditEvent,
    Candidate,
    HoldoutLabel,
    ModelVersion,
    PretrainedEncoder,
    TaskProgress,
)
from labelapp.selectors.models import PLATFORM_MODEL_CONFIG, live_model, model_table
from labelapp.services.learning import steering
from labelapp.services.learning.pretraining import PretrainingError, pretrain_encoder
from labelapp.services.learning.training import TrainingError, train_model_version
from labelapp.services.survey.ingest import ingest_survey
from mlcore.cnn import training as mlcore_training
from mlcore.cnn.card import load_checkpoint
from mlcore.cnn.model import CNNConfig
from mlcore.cnn.pipeline import SPEC_HALF_WIDTH, FitPlan
from mlcore.cnn.pretrain import APPROACHES, ENCODER_KIND, trunk_state
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey
from tests.factories_cnn import TINY

pytestmark = pytest.mark.django_db

QUICK = dict(epochs=2, batch_size=64)  # a few seconds on one CPU thread


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def catalogue(tmp_path, settings):
    settings.MODELS_DIR = tmp_path / "models"
    survey = simulate_survey(600, seed=5, field="cosmos")
    ingest_survey(path=write_survey(tmp_path / "s.fits", survey))
    return survey


def test_the_web_side_copies_agree_with_mlcore():
    """steering and the selectors must not import torch, so they spell these out."""
    width = {f.name: f.default for f in dataclasses.fields(FitPlan)}["width"]  # the retrain's
    platform = CNNConfig(width=width, spec_len=2 * SPEC_HALF_WIDTH).to_dict()
    platform.pop("artefact_kinds")
    assert PLATFORM_MODEL_CONFIG == platform
    assert steering.PRETRAIN_APPROACHES == APPROACHES


def test_pretraining_records_an_encoder_with_its_card_and_no_model(catalogue, settings, capsys):
    held = Candidate.objects.order_by("pk").first()  # the gate's sample stays unseen
    HoldoutLabel.objects.create(candidate=held, is_real=True, source="expert")
    retired = list(Candidate.objects.order_by("pk").values_list("pk", flat=True)[1:11])
    Candidate.objects.filter(pk__in=retired).update(status=Candidate.Status.RETIRED)
    call_command("pretrain_encoder", "--n", "300", "--epochs", "2", "--batch-size", "64")
    enc = PretrainedEncoder.objects.get()
    assert f"Encoder v{enc.pk} (masked) pretrained on 300 candidates, 2 epochs" in (
        capsys.readouterr().out
    )
    folder = Path(enc.directory)
    assert folder == Path(settings.MODELS_DIR) / f"encoder-v{enc.pk}"
    assert (folder / "model.pt").exists()
    card = json.loads((folder / "model_card.json").read_text())
    assert card == enc.card and card["kind"] == ENCODER_KIND and card["approach"] == "masked"
    assert card["n_candidates"] == enc.n_candidates == 300 and card["epochs"] == 2
    assert len(card["loss_curve"]) == 2 and card["data_hash"] == enc.data_hash
    eligible = Candidate.objects.filter(status="active").count() - 1  # less the held-out one
    assert card["selection"]["n_eligible"] == eligible == 600 - 11
    assert card["selection"]["sampled"] and card["selection"]["fields"] == {"cosmos": 300}
    assert "300 of the 589 active candidates" in card["data_source"]
    assert card["model_config"]["width"] == 12 and card["model_config"]["spec_len"] == 200
    assert not list(Path(settings.MODELS_DIR).glob(".pretraining-*"))
    # never a model version: nothing to gate, promote, score with or serve
    assert not ModelVersion.objects.exists() and live_model() is None and model_table() == []


def test_the_whole_catalogue_and_a_field_and_the_data_hash(catalogue):
    every = pretrain_encoder(epochs=1, batch_size=128, approach="contrastive")
    assert every.n_candidates == 600 and not every.card["selection"]["sampled"]
    again = pretrain_encoder(epochs=1, batch_size=128, n=599, seed=1)
    assert again.data_hash != every.data_hash  # the hash names the candidates used
    with pytest.raises(PretrainingError, match="only 0 active candidates .* field 'egs'"):
        pretrain_encoder(field="egs", epochs=1)


def test_bad_pretraining_requests_are_refused_clearly(tmp_path, settings):
    settings.MODELS_DIR = tmp_path / "models"
    with pytest.raises(PretrainingError, match="approach must be one of"):
        pretrain_encoder(approach="jigsaw")
    with pytest.raises(PretrainingError, match="at least 2 candidates"):
        pretrain_encoder(n=1)
    with pytest.raises(PretrainingError, match="ingest a survey"):
        pretrain_encoder(epochs=1)
    with pytest.raises(CommandError, match="ingest a survey"):
        call_command("pretrain_encoder", "--epochs", "1")
    assert not PretrainedEncoder.objects.exists()


def test_the_task_reports_progress_per_epoch(catalogue, monkeypatch):
    from labelapp import tasks
    from labelapp.services.operations import progress

    seen = []
    real = progress.set_progress
    monkeypatch.setattr(
        progress, "set_progress", lambda row, **kw: (seen.append(kw), real(row, **kw))[1]
    )
    pk = tasks.pretrain_encoder(epochs=2, n=200, progress_key="k1")
    row = TaskProgress.objects.get(name="pretrain_encoder", key="k1")
    assert row.state == "done" and row.done == row.total == 2
    assert row.message.startswith(f"encoder v{pk}: masked on 200 candidates, 2 epochs")
    assert [s["message"][:9] for s in seen[:2]] == ["epoch 1/2", "epoch 2/2"]


def test_a_retrain_starts_from_the_encoders_trunks_and_its_card_says_so(
    catalogue, monkeypatch, sci
):
    enc = pretrain_encoder(n=300, **QUICK)
    starts = []
    real_load = mlcore_training._load_init

    def spy(model, init, mcfg):  # the weights training actually starts from
        real_load(model, init, mcfg)
        starts.append({k: v.clone() for k, v in model.state_dict().items()})

    monkeypatch.setattr(mlcore_training, "_load_init", spy)
    version = train_model_version(label_source="truth", epochs=1, max_time_s=20, encoder_id=enc.pk)
    assert len(starts) == 1
    encoder_trunk = trunk_state(load_checkpoint(enc.directory))
    for k, v in encoder_trunk.items():
        assert torch.equal(starts[0][k], v), k
    finished = version.card
    assert "fine_tuned_from" not in finished
    p = finished["pretrained_from"]
    assert p["encoder"] == enc.pk and p["approach"] == "masked" and p["n_candidates"] == 300
    assert p["epochs"] == 2 and p["final_loss"] == enc.card["loss_curve"][-1]
    assert p["weights_sha256"] == enc.card["weights_sha256"]
    on_disk = json.loads((Path(version.directory) / "model_card.json").read_text())
    assert on_disk["pretrained_from"] == p
    # the model page says where it started; the encoder page lists the model
    html = sci.get(reverse("console-model", args=[version.pk])).content.decode()
    assert f"pretrained encoder v{enc.pk}" in html and "trained from scratch" not in html
    html = sci.get(reverse("console-encoder", args=[enc.pk])).content.decode()
    assert f'href="{reverse("console-model", args=[version.pk])}"' in html
    # an ensemble: every member from the encoder's trunks, each with its own fresh head
    starts.clear()
    train_model_version(label_source="truth", epochs=1, max_time_s=20, encoder_id=enc.pk, members=2)
    assert len(starts) == 2
    for k, v in encoder_trunk.items():
        assert torch.equal(starts[1][k], v), k
    assert not torch.equal(starts[0]["fc1.weight"], starts[1]["fc1.weight"])


def test_the_retrain_the_platform_starts_itself_starts_from_the_campaigns_encoder(
    catalogue, monkeypatch, sci
):
    """retrain_model as the nightly retrain sends it (no start named): the campaign
    setting's encoder, its trunks loaded, and the card says who chose it."""
    from labelapp import tasks
    from labelapp.services.learning.encoders import set_campaign_encoder

    enc = pretrain_encoder(n=200, **QUICK)
    set_campaign_encoder(user=sci.user, encoder_id=enc.pk)
    starts = []
    real_load = mlcore_training._load_init

    def spy(model, init, mcfg):
        real_load(model, init, mcfg)
        starts.append({k: v.clone() for k, v in model.state_dict().items()})

    monkeypatch.setattr(mlcore_training, "_load_init", spy)
    from types import SimpleNamespace

    from labelapp.services.learning import promotion

    monkeypatch.setattr(  # no evaluation set here: the gate is not what this is about
        promotion, "gate_model", lambda **kw: SimpleNamespace(promoted=False, reason="skipped")
    )
    pk = tasks.retrain_model(label_source="truth", epochs=1, max_time_s=20, members=1)
    card = ModelVersion.objects.get(pk=pk).card
    assert card["pretrained_from"]["encoder"] == enc.pk
    assert card["start"] == {
        "from": f"pretrained encoder v{enc.pk}", "encoder": enc.pk, "chosen_by": "campaign setting"
    }  # fmt: skip
    assert len(starts) == 1
    for k, v in trunk_state(load_checkpoint(enc.directory)).items():
        assert torch.equal(starts[0][k], v), k
    html = sci.get(reverse("console-model", args=[pk])).content.decode()
    assert f"pretrained encoder v{enc.pk}" in html and "the campaign's retrain setting" in html
    # a request that names no encoder trains from scratch, and its card says so
    version = train_model_version(label_source="truth", epochs=1, max_time_s=20, members=1)
    assert "pretrained_from" not in version.card
    assert version.card["start"] == {"from": "scratch", "encoder": None, "chosen_by": "request"}


def test_refusals_name_the_reason_and_queue_nothing(
    catalogue, sci, django_capture_on_commit_callbacks
):
    from labelapp.services.learning.promotion import promote_model

    tiny = pretrain_encoder(n=100, epochs=1, batch_size=50, width=TINY.width)
    good = pretrain_encoder(n=100, epochs=1, batch_size=50)
    user = sci.user
    with pytest.raises(steering.SteeringError, match="no pretrained encoder v999"):
        steering.request_retrain(user=user, label_source="truth", epochs=1, encoder_id=999)
    with pytest.raises(steering.SteeringError, match=r"architecture differs.*width 6"):
        steering.request_retrain(user=user, label_source="truth", epochs=1, encoder_id=tiny.pk)
    with pytest.raises(TrainingError, match=r"architecture differs.*width 6"):
        train_model_version(label_source="truth", epochs=1, encoder_id=tiny.pk)
    with pytest.raises(TrainingError, match="not both"):
        train_model_version(label_source="truth", epochs=1, encoder_id=good.pk, fine_tune=True)
    first = train_model_version(label_source="truth", epochs=1, max_time_s=20)
    promote_model(model_version=first, reason="test")
    with pytest.raises(steering.SteeringError, match="not both"):
        steering.request_retrain(
            user=user, label_source="truth", epochs=1, fine_tune=True, encoder_id=good.pk
        )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        page = sci.post(
            reverse("console-retrain"),
            {"label_source": "truth", "epochs": 2, "fine_tune": "1", "encoder": good.pk},
            follow=True,
        ).content.decode()
        assert "Not retrained: choose one start" in page
        page = sci.post(
            reverse("console-retrain"), {"label_source": "truth", "epochs": 2, "encoder": tiny.pk},
            follow=True,
        ).content.decode()  # fmt: skip
        assert "architecture differs" in page
    assert not callbacks and not AuditEvent.objects.filter(action="retrain").exists()
    assert ModelVersion.objects.count() == 1


def test_console_lists_encoders_apart_and_queues_a_retrain_from_one(
    catalogue, sci, django_capture_on_commit_callbacks
):
    tiny = pretrain_encoder(n=100, epochs=1, batch_size=50, width=TINY.width)
    good = pretrain_encoder(n=120, epochs=2, batch_size=60, approach="contrastive")
    html = sci.get(reverse("console-models")).content.decode()
    assert 'id="encoders"' in html
    enc_section = html[html.index('id="encoders"') :]
    assert f"encoder v{good.pk}" in enc_section and f"encoder v{tiny.pk}" in enc_section
    assert "contrastive" in enc_section and "no: width 6" in enc_section
    assert "No model yet" in html  # an encoder is not a model version
    page = sci.get(reverse("console-encoder", args=[good.pk])).content.decode()
    assert "120 candidates" in page and "NT-Xent" in page and "for 2 epochs" in page
    for v in good.card["loss_curve"]:
        assert f"{v:.4f}" in page
    tiny_page = sci.get(reverse("console-encoder", args=[tiny.pk])).content.decode()
    assert "a retrain cannot start from it" in tiny_page
    # the Retrain form offers only the encoders a retrain can start from
    campaign = sci.get(reverse("console-campaign")).content.decode()
    assert f'<option value="{good.pk}">pretrained encoder v{good.pk}' in campaign
    assert f'<option value="{tiny.pk}">' not in campaign
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        resp = sci.post(
            reverse("console-retrain"), {"label_source": "truth", "epochs": 2, "encoder": good.pk}
        )
    assert resp.status_code == 302 and len(callbacks) == 1
    audit = AuditEvent.objects.get(action="retrain")
    assert audit.detail == {
        "label_source": "truth", "epochs": 2, "fine_tune": False, "encoder": good.pk,
        "start_chosen_by": "request",
    }  # fmt: skip
    row = TaskProgress.objects.get(name="retrain_model")
    assert row.message.endswith(f"from pretrained encoder v{good.pk}")


def test_console_queues_pretraining_with_progress_and_audit(
    sci, db, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        resp = sci.post(
            reverse("console-pretrain"),
            {"approach": "masked", "epochs": 3, "n": "5000", "field": ""},
        )
    assert resp.status_code == 302 and len(callbacks) == 1
    row = TaskProgress.objects.get(name="pretrain_encoder")
    assert row.state == "queued" and row.message == "masked, 3 epochs, 5000 candidates"
    assert AuditEvent.objects.get(action="pretrain").detail == {
        "approach": "masked", "epochs": 3, "n": 5000, "field": None
    }  # fmt: skip
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        page = sci.post(
            reverse("console-pretrain"), {"approach": "jigsaw", "epochs": 3}, follow=True
        ).content.decode()
        sci.post(reverse("console-pretrain"), {"approach": "masked", "epochs": "x"})
    assert "Not pretrained: approach must be one of" in page
    assert not callbacks and AuditEvent.objects.filter(action="pretrain").count() == 1


def test_the_inputs_are_the_sampled_candidates_pixels_joined_by_detectid(catalogue):
    from labelapp.services.learning.pretraining import _inputs, _selection
    from mlcore.cnn.data import spec_windows
    from mlcore.cnn.training import normalise_rows
    from mlcore.survey import stack_cutouts

    rows, eligible = _selection(40, seed=3, field="")
    assert len(rows) == 40 and eligible == 600
    x, spec, _ = _inputs(rows, 2 * SPEC_HALF_WIDTH)
    s = catalogue
    where = {int(d): i for i, d in enumerate(s.catalog["detectid"])}
    idx = np.asarray([where[r[1]] for r in rows])
    order = np.argsort(idx)  # normalise_rows reads sorted rows
    ref = torch.empty_like(x)
    ref[torch.as_tensor(order)] = normalise_rows(
        stack_cutouts(s.im_sum, s.im_array).astype(np.float32), idx[order]
    )
    assert torch.allclose(x.float(), ref.float(), atol=2e-2, rtol=1e-2)
    assert not torch.allclose(x[1:].float(), ref[:-1].float(), atol=2e-2, rtol=1e-2)
    want = spec_windows(s.spec1d[idx], s.spec1d_err[idx], s.catalog["wave"][idx], SPEC_HALF_WIDTH)
    assert np.allclose(spec, want, atol=2e-2, rtol=1e-2)
