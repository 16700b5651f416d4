"""Where retrains start (the campaign setting, a request's override, fine-tuning) and
retiring a pretrained encoder: labelapp.services.learning.encoders and the console.

The encoders here are rows with a card like pretraining writes and no weights on disk;
tests/test_pretrain_service.py trains from a real one under the campaign setting."""

from __future__ import annotations

import pytest
from django.urls import reverse

from labelapp import tasks
from labelapp.models import AuditEvent, CampaignSettings, ModelVersion, TaskProgress
from labelapp.services.learning import encoders, steering, training
from labelapp.services.learning.encoders import (
    CAMPAIGN,
    EncoderError,
    RetrainStart,
    resolve_start,
    retire_encoder,
    set_campaign_encoder,
)
from labelapp.services.learning.promotion import promote_model
from tests.factories_science import make_encoder

pytestmark = pytest.mark.django_db


@pytest.fixture
def encs(tmp_path):
    return {
        "good": make_encoder(tmp_path / "e1"),
        "other": make_encoder(tmp_path / "e2", approach="contrastive"),
        "narrow": make_encoder(tmp_path / "e3", width=6),
        "retired": make_encoder(tmp_path / "e4", retired_reason="bad loss"),
    }


def _live_model(tmp_path) -> ModelVersion:
    mv = ModelVersion.objects.create(label_source="truth", directory=str(tmp_path / "live"))
    promote_model(model_version=mv, reason="test")
    return mv


# --- the rules ---------------------------------------------------------------------------


def test_by_default_retrains_start_from_scratch_as_before(encs):
    assert encoders.campaign_encoder() is None
    assert resolve_start() == RetrainStart(False, None, "campaign setting")
    assert resolve_start(encoder_id=None) == RetrainStart(False, None, "request")


def test_the_campaign_setting_is_the_default_and_a_request_overrides_it(encs, sci):
    good, other = encs["good"], encs["other"]
    set_campaign_encoder(user=sci.user, encoder_id=good.pk)
    assert CampaignSettings.objects.get(pk=1).retrain_encoder == good
    assert resolve_start() == RetrainStart(False, good.pk, "campaign setting")
    assert resolve_start(encoder_id=None) == RetrainStart(False, None, "request")
    assert resolve_start(encoder_id=other.pk) == RetrainStart(False, other.pk, "request")
    # fine-tuning wins over the campaign's encoder; with a named encoder it is refused
    assert resolve_start(fine_tune=True) == RetrainStart(True, None, "request")
    with pytest.raises(EncoderError, match="not both"):
        resolve_start(fine_tune=True, encoder_id=other.pk)
    assert resolve_start(encoder_id=good.pk).card() == {
        "from": f"pretrained encoder v{good.pk}", "encoder": good.pk, "chosen_by": "request"
    }  # fmt: skip


def test_the_setting_refuses_what_a_retrain_cannot_start_from(encs, sci):
    for enc, says in (
        (encs["narrow"], r"architecture differs.*width 6"),
        (encs["retired"], r"retired on .* by sci: bad loss"),
    ):
        with pytest.raises(EncoderError, match=says):
            set_campaign_encoder(user=sci.user, encoder_id=enc.pk)
    with pytest.raises(EncoderError, match="no pretrained encoder v999"):
        set_campaign_encoder(user=sci.user, encoder_id=999)
    assert encoders.campaign_encoder() is None
    assert not AuditEvent.objects.filter(action="retrain_settings").exists()


def test_a_setting_that_no_longer_fits_is_refused_not_ignored(encs, sci):
    """E.g. a code update changed the network a retrain builds after the setting was saved:
    the retrain fails with the reason instead of quietly training from scratch."""
    good = encs["good"]
    set_campaign_encoder(user=sci.user, encoder_id=good.pk)
    good.card = {**good.card, "model_config": {**good.card["model_config"], "hidden": 32}}
    good.save(update_fields=["card"])
    with pytest.raises(EncoderError, match=r"campaign's retrain setting .* v\d+.*hidden 32"):
        resolve_start()
    with pytest.raises(steering.SteeringError, match="campaign's retrain setting"):
        steering.request_retrain(user=sci.user, label_source="truth", epochs=2)
    # the task the nightly retrain sends fails visibly, before reading a label
    with pytest.raises(training.TrainingError, match="campaign's retrain setting"):
        tasks.retrain_model(label_source="truth", epochs=1, progress_key="nightly")
    row = TaskProgress.objects.get(name="retrain_model", key="nightly")
    assert row.state == "failed" and "Acquisition settings > Retraining" in row.message
    assert ModelVersion.objects.count() == 0
    # a request that asks for another start still works
    steering.request_retrain(user=sci.user, label_source="truth", epochs=2, encoder_id=None)


# --- every retrain the platform starts by itself -----------------------------------------


def test_the_nightly_retrain_starts_where_the_campaign_says(monkeypatch):
    sent = []
    monkeypatch.setattr(tasks.retrain_model, "delay", lambda *a, **k: sent.append(k))
    monkeypatch.setattr(training, "new_labels_since_live_model", lambda: 10**6)
    assert tasks.retrain_if_enough_labels() is True
    assert sent == [{"encoder_id": CAMPAIGN}]


def test_the_retrain_task_resolves_the_campaign_setting_by_default(encs, sci, monkeypatch):
    """retrain_model's default start is the campaign setting, so a path that sends it
    without naming a start (the nightly one, the in-silico campaign) honours it."""
    seen = []

    def fake_train(**kw):
        seen.append(kw)
        raise RuntimeError("stop here")

    monkeypatch.setattr(training, "train_model_version", fake_train)
    with pytest.raises(RuntimeError):
        tasks.retrain_model()
    assert seen[0]["encoder_id"] == CAMPAIGN and seen[0]["start_chosen_by"] == "request"


def test_train_model_version_records_the_start_it_resolved(encs, sci, monkeypatch):
    """The resolution inside training: what the card's ``start`` and the weights get."""
    good = encs["good"]
    set_campaign_encoder(user=sci.user, encoder_id=good.pk)
    got = {}

    def fake_weights(encoder_id, *, seed, members):
        got["encoder"] = encoder_id
        raise training.TrainingError("no weights in this test")

    monkeypatch.setattr(training, "_encoder_weights", fake_weights)
    with pytest.raises(training.TrainingError, match="no weights"):
        training.train_model_version(encoder_id=CAMPAIGN)
    assert got == {"encoder": good.pk}
    with pytest.raises(training.TrainingError, match="start_chosen_by"):
        training.train_model_version(encoder_id=None, start_chosen_by="the moon")


# --- the console: the setting, the Retrain form --------------------------------------------


def test_console_edits_the_setting_with_the_other_steering_settings(encs, sci):
    good = encs["good"]
    page = sci.get(reverse("console-acquisition")).content.decode()
    form = page[page.index('id="retraining"') :]
    assert f'<option value="{good.pk}">pretrained encoder v{good.pk}' in form
    for hidden in ("narrow", "retired"):
        assert f'<option value="{encs[hidden].pk}"' not in form
    assert "Fine-tuning from the live model" in form and "wins over this setting" in form
    resp = sci.post(reverse("console-retrain-settings"), {"encoder": good.pk}, follow=True)
    assert f"retrains start from pretrained encoder v{good.pk}" in resp.content.decode()
    event = AuditEvent.objects.get(action="retrain_settings")
    assert event.detail == {"retrain_encoder": [None, good.pk]} and event.username == "sci"
    campaign = sci.get(reverse("console-campaign")).content.decode()
    assert f"pretrained encoder v{good.pk}</a></strong>" in campaign  # "Retrains start from"
    assert f'<option value="campaign" selected>the campaign setting (encoder v{good.pk})' in (
        campaign
    )
    page = sci.post(
        reverse("console-retrain-settings"), {"encoder": encs["narrow"].pk}, follow=True
    ).content.decode()
    assert "Not saved:" in page and "architecture differs" in page
    assert encoders.campaign_encoder() == good
    sci.post(reverse("console-retrain-settings"), {"encoder": ""})
    assert encoders.campaign_encoder() is None
    assert AuditEvent.objects.filter(action="retrain_settings").count() == 2


def test_console_retrain_takes_the_setting_unless_told_otherwise(
    encs, sci, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    good, other = encs["good"], encs["other"]
    set_campaign_encoder(user=sci.user, encoder_id=good.pk)
    _live_model(tmp_path)
    sent = []
    monkeypatch.setattr(tasks.retrain_model, "delay", lambda **k: sent.append(k))
    with django_capture_on_commit_callbacks(execute=True):
        for post in (
            {},  # the form's default
            {"encoder": "campaign", "fine_tune": "1"},  # fine-tuning wins
            {"encoder": ""},  # no encoder
            {"encoder": other.pk},  # another one
        ):
            resp = sci.post(reverse("console-retrain"), {"label_source": "truth", **post})
            assert resp.status_code == 302
    starts = [(k["fine_tune"], k["encoder_id"], k["start_chosen_by"]) for k in sent]
    assert starts == [
        (False, good.pk, "campaign setting"),
        (True, None, "request"),
        (False, None, "request"),
        (False, other.pk, "request"),
    ]
    messages = list(
        TaskProgress.objects.filter(name="retrain_model")
        .order_by("pk")
        .values_list("message", flat=True)
    )
    assert messages[0].endswith(f"from pretrained encoder v{good.pk} (the campaign setting)")
    assert messages[1].endswith("fine-tuned from the live model")
    audits = AuditEvent.objects.filter(action="retrain").order_by("pk")
    assert [a.detail["start_chosen_by"] for a in audits] == [
        "campaign setting", "request", "request", "request"
    ]  # fmt: skip


# --- retiring ------------------------------------------------------------------------------


def test_retiring_keeps_the_encoder_but_offers_it_no_more(encs, sci, tmp_path):
    good = encs["good"]
    mv = ModelVersion.objects.create(
        label_source="truth",
        directory=str(tmp_path / "m"),
        card={"pretrained_from": {"encoder": good.pk}},
    )
    page = sci.get(reverse("console-encoder", args=[good.pk])).content.decode()
    assert "Retire this encoder" in page
    resp = sci.post(
        reverse("console-encoder-retire", args=[good.pk]), {"reason": "trained on a bad batch"}
    )
    assert resp.status_code == 302
    good.refresh_from_db()
    assert good.retired_at is not None and good.retired_by == "sci"
    assert good.retired_reason == "trained on a bad batch"
    event = AuditEvent.objects.get(action="encoder_retire")
    assert event.target == f"encoder:{good.pk}"
    assert event.detail == {"reason": "trained on a bad batch", "approach": "masked",
                            "used_by": [mv.pk]}  # fmt: skip
    # kept: its page and the model's provenance still say where it came from
    page = sci.get(reverse("console-encoder", args=[good.pk])).content.decode()
    assert "retired" in page and "trained on a bad batch" in page
    assert f'href="{reverse("console-model", args=[mv.pk])}"' in page
    assert "Retire this encoder" not in page
    models_page = sci.get(reverse("console-models")).content.decode()
    assert "no: retired" in models_page
    # offered nowhere any more, and refused when named
    for url in ("console-campaign", "console-acquisition"):
        assert f'<option value="{good.pk}"' not in sci.get(reverse(url)).content.decode()
    with pytest.raises(EncoderError, match="retired"):
        set_campaign_encoder(user=sci.user, encoder_id=good.pk)
    with pytest.raises(steering.SteeringError, match="retired"):
        steering.request_retrain(user=sci.user, label_source="truth", epochs=2, encoder_id=good.pk)
    with pytest.raises(training.TrainingError, match="retired"):
        training.train_model_version(encoder_id=good.pk)
    # twice: nothing more happens
    assert retire_encoder(user=sci.user, encoder_id=good.pk) is False
    assert AuditEvent.objects.filter(action="encoder_retire").count() == 1


def test_retiring_the_campaigns_encoder_is_refused_until_the_setting_changes(encs, sci):
    good = encs["good"]
    set_campaign_encoder(user=sci.user, encoder_id=good.pk)
    page = sci.get(reverse("console-encoder", args=[good.pk])).content.decode()
    assert "The campaign's retrains start from it" in page
    page = sci.post(
        reverse("console-encoder-retire", args=[good.pk]), {"reason": "x"}, follow=True
    ).content.decode()
    assert "Not retired:" in page and "choose another start there before retiring it" in page
    good.refresh_from_db()
    assert good.retired_at is None and encoders.campaign_encoder() == good
    assert not AuditEvent.objects.filter(action="encoder_retire").exists()
    set_campaign_encoder(user=sci.user, encoder_id=None)
    assert retire_encoder(user=sci.user, encoder_id=good.pk, reason="x") is True
    with pytest.raises(EncoderError, match="500 characters"):
        retire_encoder(user=sci.user, encoder_id=encs["other"].pk, reason="x" * 501)
    assert sci.post(reverse("console-encoder-retire", args=[999])).status_code == 404
