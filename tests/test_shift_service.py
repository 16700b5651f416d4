"""Shift reports on the platform: per batch and field against the live model's training
data, stored, on the model card, from the command, on the console page."""

import io

import pytest
from django.core.management import call_command
from django.urls import reverse

from labelapp.models import IngestBatch, ModelVersion, ShiftReport
from labelapp.services.learning.shift import (
    ShiftReportError,
    build_batch_reports,
    build_shift_report,
    training_candidate_ids,
)
from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey
from tests.factories_console import make_scientist

pytestmark = pytest.mark.django_db


@pytest.fixture
def shifted_batch(console_campaign, tmp_path):
    path = write_survey(
        tmp_path / "shifted.fits", simulate_survey(300, seed=77, scenario="correlated_noise")
    )
    ingest_survey(path=path)
    return IngestBatch.objects.order_by("-pk").first()


def test_reference_is_the_training_data_never_the_new_batch(console_campaign, shifted_batch):
    live = console_campaign["live"]
    ref = set(training_candidate_ids(live))
    assert len(ref) == 400  # the first batch, all with simulator truth
    assert not ref & set(shifted_batch.candidates.values_list("pk", flat=True))


def test_training_batch_is_in_distribution_and_the_shifted_one_is_flagged(
    console_campaign, shifted_batch
):
    live = console_campaign["live"]
    first = IngestBatch.objects.order_by("pk").first()
    same = build_shift_report(batch=first, n_new=200)
    assert same.verdict == "in distribution", same.report["reasons"]
    rows = build_batch_reports(batch=shifted_batch)
    assert len(rows) == 1  # one field only: the batch report is the field's
    far = rows[0]
    assert far.verdict in ("shifted", "far")
    assert far.report["inputs"]["noise_corr_wave"]["ks"] > 0.9
    assert any(r.startswith("noise_corr_wave") for r in far.report["reasons"])
    # the candidates' catalogue wavelengths come along, joined by id with their pixels
    spikes = far.report["wavelengths"]
    assert spikes["z"] >= 0 and len(spikes["top"]) <= 3
    assert spikes["n_new"] == far.report["n_candidates"] and spikes["n_ref"] == 400
    assert 3470 < spikes["wave"] < 5550 if spikes["top"] else spikes["wave"] is None
    assert ShiftReport.objects.filter(model_version=live).count() == 2
    card = ModelVersion.objects.get(pk=live.pk).card
    verdicts = {s["batch"]: s["verdict"] for s in card["shift"]}
    assert verdicts == {first.pk: "in distribution", shifted_batch.pk: far.verdict}


def test_too_small_samples_and_no_model_are_refused(console_campaign):
    with pytest.raises(ShiftReportError, match="needs at least 100"):
        build_shift_report(field="goods-n")
    ModelVersion.objects.update(status=ModelVersion.Status.RETIRED)
    with pytest.raises(ShiftReportError, match="no live model"):
        build_shift_report()


def test_command_prints_the_report(console_campaign, shifted_batch):
    out = io.StringIO()
    call_command("shift_report", "--batch", str(shifted_batch.pk), stdout=out)
    text = out.getvalue()
    assert f"batch {shifted_batch.pk}" in text and "verdict: " in text
    assert "noise_corr_wave" in text and "domain-classifier AUC" in text
    assert "line wavelengths: largest spike z" in text
    out = io.StringIO()
    call_command("shift_report", "--show", stdout=out)
    assert "verdict: " in out.getvalue()


def test_console_page_shows_verdicts_and_unchecked_batches(console_campaign, shifted_batch, client):
    build_batch_reports(batch=shifted_batch)
    client.force_login(make_scientist())
    html = client.get(reverse("console-shift")).content.decode()
    assert "Where is the model out of its depth" in html
    assert 'data-verdict="not checked"' in html  # the first batch has no report
    assert 'data-verdict="far"' in html or 'data-verdict="shifted"' in html
    assert "line wavelengths: largest spike (z)" in html
    detail = client.get(reverse("console-model", kwargs={"pk": console_campaign["live"].pk}))
    assert "Out of its depth?" in detail.content.decode()


def test_simulate_survey_command_writes_a_scenario(tmp_path):
    from mlcore.survey_io import read_survey

    out = io.StringIO()
    path = tmp_path / "psf.fits"
    call_command(
        "simulate_survey", "--n", "120", "--seed", "9", "--scenario", "psf_seeing",
        "--out", str(path), "--no-progress", stdout=out,
    )  # fmt: skip
    s = read_survey(path)
    assert len(s) == 120 and s.meta["scenario"] == "psf_seeing"
    with pytest.raises(Exception, match="invalid choice"):
        call_command("simulate_survey", "--n", "10", "--scenario", "fog", "--out", str(path))
