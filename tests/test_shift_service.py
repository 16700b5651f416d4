"""Shift reports on the platform: per batch, field and group of observing nights against the
live model's training data, stored, on the model card, from the command, on the console
page."""

import datetime as dt
import io

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from labelapp.models import IngestBatch, ModelVersion, ShiftReport
from labelapp.services.learning.shift import (
    ShiftReportError,
    build_batch_reports,
    build_night_reports,
    build_shift_report,
    reference_candidate_ids,
    reference_candidates,
)
from labelapp.services.survey.ingest import ingest_survey
from mlcore.shift import NIGHT_THRESHOLDS
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
    ref = set(reference_candidate_ids(live))
    assert len(ref) == 400  # the first batch, all with simulator truth
    assert not ref & set(shifted_batch.candidates.values_list("pk", flat=True))


def test_a_crowd_trained_models_reference_is_the_batch_it_learnt_from(
    console_campaign, shifted_batch
):
    """A model trained on consensus labels (every model of a real campaign) is compared with
    the whole of the batches its labels came from (the labels of the aggregation run it
    trained on, expert answers, gold), not the labelled rows alone: the queue chose those.
    A batch that holds none of its labels, or a run made after the model, is not its
    reference. (The query once named a field the run does not have, so every shift report
    of such a model failed: found in the light-crowd campaign's log, 2026-12-07.)"""
    from django.utils import timezone

    from labelapp.models import AggregationRun, Candidate, Label
    from labelapp.services.learning.holdout import holdout_ids

    run = AggregationRun.objects.filter(status=AggregationRun.Status.DONE).first()
    assert run is not None and run.n_votes > 0
    live = console_campaign["live"]
    crowd = ModelVersion.objects.create(
        label_source="consensus", directory=live.directory, card=live.card
    )
    labelled = set(Label.objects.filter(run=run).values_list("candidate_id", flat=True))
    first = Candidate.objects.get(pk=min(labelled)).batch
    ref = set(reference_candidate_ids(crowd))
    assert labelled - holdout_ids() < ref  # more than the labelled rows ...
    assert ref == set(first.candidates.values_list("pk", flat=True)) - holdout_ids()
    assert not ref & set(shifted_batch.candidates.values_list("pk", flat=True))  # ... not B
    # a condition on batches, never one parameter per candidate (a real batch holds more
    # candidates than a PostgreSQL statement takes parameters)
    _, params = reference_candidates(crowd).query.sql_with_params()
    assert len(params) < 10, params
    later = AggregationRun.objects.create(
        method=run.method, status=AggregationRun.Status.DONE, n_votes=1
    )
    later.started_at = timezone.now() + dt.timedelta(hours=1)
    later.save(update_fields=["started_at"])
    Label.objects.create(
        run=later, candidate=shifted_batch.candidates.first(), posterior=0.9, is_real=True,
        confidence=0.8, n_votes=1, info_gain=0.0,
    )  # fmt: skip
    assert set(reference_candidate_ids(crowd)) == ref


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


@pytest.fixture
def night_batches(console_campaign, tmp_path):
    """Besides the training batch (seed 5): an unshifted survey of other nights and a
    psf_seeing one of other nights again (the simulator puts each shot on its own random
    night, so other seeds are other nights)."""
    out = {}
    for name, seed, scenario, n in [("clean", 31, None, 300), ("psf", 11, "psf_seeing", 600)]:
        path = write_survey(tmp_path / f"{name}.fits", simulate_survey(n, seed, scenario=scenario))
        ingest_survey(path=path)
        out[name] = IngestBatch.objects.order_by("-pk").first()
    return out


def _nights_of(batch):
    return sorted({s // 1000 for s in batch.candidates.values_list("shotid", flat=True)})


def test_night_groups_flag_the_shifted_nights_only(console_campaign, night_batches, client):
    live = console_campaign["live"]
    rows, small = build_night_reports()
    verdicts = {r.nights: r.verdict for r in rows}
    psf, clean = _nights_of(night_batches["psf"]), _nights_of(night_batches["clean"])
    train = _nights_of(IngestBatch.objects.order_by("pk").first())
    # every night is its own group here (the simulated nights are months apart); nights
    # under 100 candidates have no neighbour within 5 days, so they are too small
    every_night = [str(n) for n in sorted(psf + clean + train)]
    assert sorted([*verdicts, *(g.label for g in small)]) == every_night
    assert all(g.n < 100 for g in small) and all(r.n_new >= 100 for r in rows)
    for r in rows:
        assert r.batch_id is None and r.field == "" and r.night_first == r.night_last
        assert r.report["where"] == f"the catalogue, nights {r.nights}"
        # judged with the night-level thresholds, widened for the night's sample size
        th = NIGHT_THRESHOLDS.scaled(r.n_new, r.n_ref)
        assert r.report["thresholds"]["wave_spike_z"] == NIGHT_THRESHOLDS.wave_spike_z
        assert r.report["thresholds"]["auc"] == pytest.approx(th.auc)
    assert {verdicts[str(n)] for n in psf} <= {"shifted", "far"}
    assert {verdicts[str(n)] for n in clean + train if str(n) in verdicts} == {"in distribution"}
    # stored, on the card, on the console page
    card = ModelVersion.objects.get(pk=live.pk).card
    assert {s["nights"]: s["verdict"] for s in card["shift"]} == verdicts
    client.force_login(make_scientist())
    html = client.get(reverse("console-shift")).content.decode()
    assert "Per group of nights" in html
    for n in psf:
        assert f'<tr data-nights="{n}"><td class="text">{n}</td>' in html
    detail = client.get(reverse("console-model", kwargs={"pk": live.pk})).content.decode()
    assert f"nights {psf[0]}" in detail


def test_night_reports_of_one_batch_and_the_command(console_campaign, night_batches):
    psf = night_batches["psf"]
    out = io.StringIO()
    call_command("shift_report", "--nights", "--batch", str(psf.pk), "--n", "150", stdout=out)
    text = out.getvalue()
    for n in _nights_of(psf):
        assert f"batch {psf.pk}, nights {n} against model v" in text
    assert text.count("verdict: ") == 3
    rows = ShiftReport.objects.filter(batch=psf, night_first__isnull=False)
    assert rows.count() == 3 and all(r.n_new <= 150 for r in rows)
    # the clean batch's third night has 79 candidates: said, not judged
    out = io.StringIO()
    clean = night_batches["clean"]
    call_command("shift_report", "--nights", "--batch", str(clean.pk), stdout=out)
    assert "Nights 20200715: 79 candidates with cutouts in 1 night(s)" in out.getvalue()
    assert out.getvalue().count("verdict: ") == 2
    # with a gap of a few years every night of the batch is one run: the small night merges
    out = io.StringIO()
    call_command("shift_report", "--nights", "--batch", str(clean.pk), "--max-gap", "2000",
                 stdout=out)  # fmt: skip
    assert "nights 20190113-20200715 against" in out.getvalue()
    assert "Nights " not in out.getvalue()
    with pytest.raises(CommandError, match="--max-gap goes with --nights"):
        call_command("shift_report", "--max-gap", "3")


def test_night_reports_refuse_shot_ids_that_are_no_night(console_campaign):
    from labelapp.models import Candidate

    Candidate.objects.filter(pk=Candidate.objects.first().pk).update(shotid=-999)
    with pytest.raises(ShiftReportError, match="do not encode an observing night.*-999"):
        build_night_reports()
    with pytest.raises(ShiftReportError, match="first night must not be after the last"):
        build_shift_report(nights=(20190106, 20190105))
