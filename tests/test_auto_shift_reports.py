"""Shift reports built without a person (labelapp.services.learning.auto_shift): before a
model's scoring run is planned, and after an ingest while a model is live.

The campaign (tests/conftest.py ``console_campaign``) has a live model briefly trained on a
400-candidate unshifted batch and no shift report; a ``correlated_noise`` batch ingested
after it is far from that model's training data."""

from __future__ import annotations

import numpy as np
import pytest
from django.urls import reverse

from labelapp.celery import app as celery_app
from labelapp.models import (
    AuditEvent,
    BatchAdaptation,
    CampaignSettings,
    CandidateScore,
    IngestBatch,
    ModelVersion,
    ScoreChunk,
    ShiftReport,
    TaskProgress,
)
from labelapp.selectors.campaign import task_rows
from labelapp.services.learning import acquisition_settings, auto_shift, shift
from labelapp.services.learning.rounds import shifted_mask
from labelapp.services.learning.scoring_runs import plan_scoring, run_chunk
from labelapp.services.survey.ingest import ingest_survey
from mlcore.shift import MIN_SAMPLE, NIGHT_THRESHOLDS
from mlcore.simulator import FIELD_PARAMS, simulate_survey
from mlcore.survey_io import write_survey
from tests.factories_console import make_scientist

pytestmark = pytest.mark.django_db


def _ingest(tmp_path, n, seed, scenario=None):
    name = f"{scenario or 'none'}-{seed}.fits"
    result = ingest_survey(
        path=write_survey(tmp_path / name, simulate_survey(n, seed, scenario=scenario))
    )
    return result


def _score(mv) -> list[ScoreChunk]:
    chunks = plan_scoring(model_version=mv, chunk=512)
    for c in chunks:
        run_chunk(chunk_id=c.pk, n_samples=2)
    return chunks


def _adaptations(mv, batch) -> set:
    return set(
        CandidateScore.objects.filter(model_version=mv, candidate__batch=batch).values_list(
            "adaptation_id", flat=True
        )
    )


@pytest.fixture
def noisy(console_campaign, tmp_path):
    """The live model (no shift report against it yet) and a 600-candidate correlated-noise
    batch ingested after it (inside the test's transaction: the ingest's task is not sent)."""
    first = IngestBatch.objects.order_by("pk").first()
    batch = _ingest(tmp_path, 600, 78, "correlated_noise").batch
    assert not ShiftReport.objects.exists()
    return {"live": console_campaign["live"], "first": first, "batch": batch}


def test_planning_builds_the_missing_reports_then_scores_a_shifted_batch_adapted(noisy):
    live, first, batch = noisy["live"], noisy["first"], noisy["batch"]
    _score(live)
    # both batches got their whole-batch report against the model, before the decision
    whole = {r.batch_id: r for r in ShiftReport.objects.filter(model_version=live, field="")}
    assert set(whole) == {first.pk, batch.pk}
    assert whole[first.pk].verdict == "in distribution", whole[first.pk].report["reasons"]
    assert whole[batch.pk].verdict in ("shifted", "far"), whole[batch.pk].report["reasons"]
    # ... so the shifted batch is scored with its own statistics, without any command
    row = BatchAdaptation.objects.get(model_version=live, batch=batch)
    assert row.adapted and row.shift_report == whole[batch.pk]
    assert _adaptations(live, batch) == {row.pk}
    assert _adaptations(live, first) == {None}
    assert not BatchAdaptation.objects.filter(batch=first).exists()
    # progress like the other long tasks: one row per run, one step per batch
    prog = TaskProgress.objects.get(name=auto_shift.PROGRESS, key=f"model-{live.pk}")
    assert (prog.state, prog.done, prog.total) == ("done", 2, 2)
    assert "2 built" in prog.message and f"shifted or far: batch {batch.pk}" in prog.message
    # the round's shift share sees the batch too
    ids = np.array([first.pk, batch.pk])
    mask, groups = shifted_mask(live, ids, np.array(["cosmos", "cosmos"]), np.zeros(2, int))
    assert mask.tolist() == [False, True] and groups


def test_scoring_in_one_process_builds_the_reports_too(noisy):
    """score_all (manage.py score_candidates, the in-silico campaign) as a planned run:
    the reports first, then the AdaBN decision; shift_reports=False builds none."""
    from labelapp.services.learning.scoring import score_all

    live, first, batch = noisy["live"], noisy["first"], noisy["batch"]
    score_all(model_version=live, n_samples=2, shift_reports=False)
    assert not ShiftReport.objects.exists()
    score_all(model_version=live, n_samples=2)
    whole = {r.batch_id: r for r in ShiftReport.objects.filter(model_version=live, field="")}
    assert set(whole) == {first.pk, batch.pk}
    assert whole[batch.pk].verdict in ("shifted", "far"), whole[batch.pk].report["reasons"]
    row = BatchAdaptation.objects.get(model_version=live, batch=batch)
    assert row.adapted and _adaptations(live, batch) == {row.pk}
    prog = TaskProgress.objects.get(name=auto_shift.PROGRESS, key=f"score-all-{live.pk}")
    assert (prog.state, prog.done, prog.total) == ("done", 2, 2)


def test_a_second_planning_builds_no_duplicate(noisy):
    live, batch = noisy["live"], noisy["batch"]
    _score(live)
    before = sorted(ShiftReport.objects.values_list("pk", flat=True))
    stamp = BatchAdaptation.objects.get(batch=batch).updated_at
    # a redelivered score_catalogue whose first try died after the reports, before chunks
    ScoreChunk.objects.filter(model_version=live).delete()
    _score(live)
    assert sorted(ShiftReport.objects.values_list("pk", flat=True)) == before
    assert BatchAdaptation.objects.get(batch=batch).updated_at == stamp
    # and directly: every batch's report is reused
    out = auto_shift.ensure_reports(model_version=live)
    assert {o.status for o in out} == {"exists"}
    assert sorted(ShiftReport.objects.values_list("pk", flat=True)) == before


def test_ingest_with_a_live_model_builds_the_batch_report(
    console_campaign, tmp_path, monkeypatch, django_capture_on_commit_callbacks
):
    live = console_campaign["live"]
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)  # the cpu worker, here
    with django_capture_on_commit_callbacks(execute=True) as sent:
        result = _ingest(tmp_path, 600, 78, "correlated_noise")
    assert len(sent) == 1 and any("queued (cpu queue)" in n for n in result.notes)
    reports = ShiftReport.objects.filter(
        model_version=live, batch=result.batch, night_first__isnull=True
    )
    assert [r.field for r in reports] == [""] and reports[0].verdict in ("shifted", "far")
    prog = TaskProgress.objects.get(name=auto_shift.PROGRESS, key=f"ingest-batch-{result.batch.pk}")
    assert prog.state == "done" and prog.done == 1
    # then one report per group of its observing nights, each judged on its own
    groups = [g for g in shift.night_groups_of(batch=result.batch) if g.n >= MIN_SAMPLE]
    nights = ShiftReport.objects.filter(batch=result.batch, night_first__isnull=False)
    assert groups and sorted((r.night_first, r.night_last) for r in nights) == sorted(
        (g.first, g.last) for g in groups
    )
    for r in nights:  # the night-level thresholds, widened for the group's sample size
        th = NIGHT_THRESHOLDS.scaled(r.n_new, r.n_ref)
        assert r.report["thresholds"]["auc"] == pytest.approx(th.auc)
    assert any(r.verdict in ("shifted", "far") for r in nights)
    # the next scoring run reuses it and adapts the batch
    n_reports = ShiftReport.objects.filter(model_version=live, batch=result.batch).count()
    _score(live)
    assert ShiftReport.objects.filter(model_version=live, batch=result.batch).count() == n_reports
    assert BatchAdaptation.objects.get(model_version=live, batch=result.batch).adapted


def test_ingest_sends_nothing_without_a_live_model_or_with_the_setting_off(
    console_campaign, tmp_path, django_capture_on_commit_callbacks
):
    user = make_scientist()
    acquisition_settings.set_auto_shift_setting(user=user, on=False)
    with django_capture_on_commit_callbacks() as sent:
        _ingest(tmp_path, 150, 80)
    assert not sent
    acquisition_settings.set_auto_shift_setting(user=user, on=True)
    ModelVersion.objects.update(status=ModelVersion.Status.RETIRED)
    with django_capture_on_commit_callbacks() as sent:
        _ingest(tmp_path, 150, 81)
    assert not sent


def test_ingest_survives_a_broker_that_does_not_answer(console_campaign, tmp_path, monkeypatch):
    from labelapp.services.survey import ingest

    def down(*a, **k):
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(ingest, "send_after_commit", down)
    result = _ingest(tmp_path, 150, 82)
    assert result.created and any("were not queued" in n for n in result.notes)


def test_a_report_failure_leaves_scoring_working_and_unadapted(noisy, monkeypatch):
    live, first, batch = noisy["live"], noisy["first"], noisy["batch"]
    real = shift.build_batch_reports

    def broken(*, batch, **kw):
        if batch.pk == noisy["batch"].pk:
            raise RuntimeError("disk full")
        return real(batch=batch, **kw)

    monkeypatch.setattr(shift, "build_batch_reports", broken)
    chunks = _score(live)
    assert chunks and not ScoreChunk.objects.filter(model_version=live, done=False).exists()
    # the other batch got its report; the broken one none, and is scored as trained
    assert set(ShiftReport.objects.values_list("batch_id", flat=True)) == {first.pk}
    assert not BatchAdaptation.objects.filter(batch=batch).exists()
    assert _adaptations(live, batch) == {None} and len(CandidateScore.objects.filter(
        model_version=live, candidate__batch=batch)) == 600  # fmt: skip
    # recorded where the console lists failed tasks
    failed = [t for t in task_rows()["failed"] if t.name == auto_shift.FAILED]
    assert [t.key for t in failed] == [f"model-{live.pk}-batch-{batch.pk}"]
    assert "disk full" in failed[0].message and "scored as trained" in failed[0].message
    prog = TaskProgress.objects.get(name=auto_shift.PROGRESS, key=f"model-{live.pk}")
    assert "1 built, 1 failed" in prog.message


def test_a_batch_too_small_for_a_report_is_skipped_with_the_reason(console_campaign, tmp_path):
    live = console_campaign["live"]
    small = _ingest(tmp_path, MIN_SAMPLE - 40, 83, "correlated_noise").batch
    out = {o.batch_id: o for o in auto_shift.ensure_reports(model_version=live)}
    assert out[small.pk].status == "skipped"
    assert f"needs at least {MIN_SAMPLE}" in out[small.pk].reason
    assert not ShiftReport.objects.filter(batch=small).exists()
    assert not TaskProgress.objects.filter(name=auto_shift.FAILED).exists()
    ScoreChunk.objects.all().delete()
    _score(live)  # scoring goes on: the small batch as trained
    assert _adaptations(live, small) == {None}


def test_the_setting_off_builds_nothing_and_is_audited(noisy, client):
    live, batch = noisy["live"], noisy["batch"]
    user = make_scientist()
    client.force_login(user)
    page = client.get(reverse("console-acquisition")).content.decode()
    assert 'name="auto_shift_reports"' in page
    assert "checked" in page.split('name="auto_shift_reports"')[1].split(">")[0]
    r = client.post(reverse("console-shift-settings"), {})  # unticked box: off
    assert r.status_code == 302
    assert CampaignSettings.objects.get(pk=1).auto_shift_reports is False
    ev = AuditEvent.objects.get(action="shift_settings")
    assert ev.detail == {"auto_shift_reports": [True, False]}
    _score(live)
    assert not ShiftReport.objects.exists()
    assert _adaptations(live, batch) == {None}
    client.post(reverse("console-shift-settings"), {"auto_shift_reports": "on"})
    assert acquisition_settings.auto_shift_setting() is True


def _night_keys(mv, batch) -> list[tuple[int, int]]:
    return sorted(
        ShiftReport.objects.filter(
            model_version=mv, batch=batch, night_first__isnull=False
        ).values_list("night_first", "night_last")
    )


def test_scoring_run_completion_sends_the_night_reports_which_fill_in_what_is_missing(
    noisy, monkeypatch
):
    """After a scoring run the cpu queue builds every batch's night-group reports against
    the model; a budget cut leaves the rest, named, for the next run; nothing twice."""
    from labelapp import tasks

    live, first, batch = noisy["live"], noisy["first"], noisy["batch"]
    sent = []
    monkeypatch.setattr(tasks.start_round, "delay", lambda **kw: sent.append(("round", kw)))
    monkeypatch.setattr(
        tasks.build_night_shift_reports, "delay", lambda **kw: sent.append(("nights", kw))
    )
    tasks._round_after_scoring(live.pk)
    assert sent == [("round", {"model_version_id": live.pk}),
                    ("nights", {"model_version_id": live.pk})]  # fmt: skip
    groups = {
        b.pk: [(g.first, g.last) for g in shift.night_groups_of(batch=b) if g.n >= MIN_SAMPLE]
        for b in (first, batch)
    }
    assert all(groups.values())
    # a budget already spent: nothing built, and the outcome says how many groups are left
    out = auto_shift.ensure_night_reports(model_version=live, budget_s=1e-9)
    assert not ShiftReport.objects.filter(night_first__isnull=False).exists()
    assert [o.status for o in out] == ["skipped", "skipped"]
    assert f"{len(groups[first.pk])} of {len(groups[first.pk])} groups of nights left" in (
        out[0].reason
    )
    # the task builds them all, each with the night thresholds
    tasks.build_night_shift_reports.apply(kwargs={"model_version_id": live.pk})
    for b in (first, batch):
        assert _night_keys(live, b) == sorted(groups[b.pk])
    prog = TaskProgress.objects.get(name=auto_shift.PROGRESS, key=f"nights-model-{live.pk}")
    assert prog.state == "done" and "2 built" in prog.message
    # the correlated-noise nights are flagged, the training batch's are not
    verdicts = {
        b: set(ShiftReport.objects.filter(batch=b, night_first__isnull=False)
               .values_list("verdict", flat=True))
        for b in (first, batch)
    }  # fmt: skip
    assert verdicts[first] == {"in distribution"}, verdicts
    assert verdicts[batch] & {"shifted", "far"}, verdicts
    # ... and the round's shift share sees them
    shot = np.array([groups[batch.pk][0][0] * 1000 + 1, groups[first.pk][0][0] * 1000 + 1])
    mask, _ = shifted_mask(live, np.array([batch.pk, first.pk]), np.array(["x", "x"]), shot)
    assert mask.tolist() == [True, False]
    # again: nothing new
    before = ShiftReport.objects.count()
    out = auto_shift.ensure_night_reports(model_version=live)
    assert {o.status for o in out} == {"exists"} and ShiftReport.objects.count() == before


def test_a_night_report_failure_keeps_the_groups_built_and_is_listed(noisy, monkeypatch):
    live, batch = noisy["live"], noisy["batch"]
    real = shift.build_shift_report
    calls = []

    def second_fails(**kw):
        calls.append(kw["nights"])
        if len(calls) == 2:
            raise RuntimeError("disk full")
        return real(**kw)

    monkeypatch.setattr(shift, "build_shift_report", second_fails)
    out = auto_shift.build_nights_of_batch(model_version=live, batch=batch)
    assert out.status == "failed" and "disk full" in out.reason
    assert len(out.report_ids) == 1 and _night_keys(live, batch) == [calls[0]]
    failed = [t for t in task_rows()["failed"] if t.name == auto_shift.FAILED]
    assert [t.key for t in failed] == [f"model-{live.pk}-batch-{batch.pk}-nights"]
    assert "night-group" in failed[0].message and "scored as trained" not in failed[0].message
    # the next run builds the rest
    monkeypatch.setattr(shift, "build_shift_report", real)
    out = auto_shift.build_nights_of_batch(model_version=live, batch=batch)
    assert out.status == "built"
    groups = [(g.first, g.last) for g in shift.night_groups_of(batch=batch) if g.n >= MIN_SAMPLE]
    assert _night_keys(live, batch) == sorted(groups)


def test_night_reports_follow_the_setting(noisy):
    live = noisy["live"]
    acquisition_settings.set_auto_shift_setting(user=make_scientist(), on=False)
    assert auto_shift.ensure_night_reports(model_version=live) == []
    assert not ShiftReport.objects.exists()


def test_a_spent_budget_skips_the_batches_without_a_report_and_says_why(noisy):
    live, first, batch = noisy["live"], noisy["first"], noisy["batch"]
    auto_shift.ensure_reports(model_version=live, batches=[first])
    out = auto_shift.ensure_reports(model_version=live, budget_s=1e-9)
    # the batch with a report is reused; the other is left, named, for the next run
    assert [(o.batch_id, o.status) for o in out] == [(first.pk, "exists"), (batch.pk, "skipped")]
    assert "budget for automatic shift reports was spent" in out[1].reason
    assert not ShiftReport.objects.filter(batch=batch).exists()


def test_a_field_spread_thinly_over_batches_is_reported_across_the_catalogue(
    noisy, tmp_path, monkeypatch
):
    """Two small batches of another field, each under the MIN_SAMPLE a batch report needs:
    no batch measures that field, the catalogue-wide report does, after a scoring run and
    again after an ingest adds to it; nothing twice; the round's shift share sees it."""
    from labelapp import tasks

    live = noisy["live"]
    other = "goods-n"
    assert other in FIELD_PARAMS
    small = []
    for seed in (91, 92):
        s = simulate_survey(70, seed, field=other, scenario="correlated_noise")
        small.append(ingest_survey(path=write_survey(tmp_path / f"{other}-{seed}.fits", s)).batch)
    assert all(auto_shift.ensure_batch_reports(model_version=live, batch=b).status == "skipped"
               for b in small)  # fmt: skip
    # the scoring run's follow-up task builds every field across the catalogue
    tasks.build_night_shift_reports.apply(kwargs={"model_version_id": live.pk})
    names = dict(auto_shift.catalogue_fields())
    assert names[other] == 140 and names["cosmos"] >= MIN_SAMPLE
    for name in names:
        assert auto_shift.field_report(live, name) is not None, name
    rep = auto_shift.field_report(live, other)
    assert rep.report["n_candidates"] == 140 and rep.verdict in ("shifted", "far"), rep.report
    prog = TaskProgress.objects.get(name=auto_shift.PROGRESS, key=f"fields-model-{live.pk}")
    assert prog.state == "done" and f"field '{other}'" in prog.message
    # the round's shift share marks that field's candidates in either batch
    mask, _ = shifted_mask(
        live, np.array([small[0].pk, small[1].pk]), np.array([other, other]), np.array([0, 0])
    )
    assert mask.all()
    # again: nothing new
    before = ShiftReport.objects.count()
    out = auto_shift.ensure_field_reports(model_version=live)
    assert {o.status for o in out} == {"exists"} and ShiftReport.objects.count() == before
    # an ingest adding to the field rebuilds that field's report only
    s = simulate_survey(70, 93, field=other, scenario="correlated_noise")
    third = ingest_survey(path=write_survey(tmp_path / f"{other}-93.fits", s)).batch
    auto_shift.after_ingest(batch_id=third.pk, model_version_id=live.pk)
    newest = auto_shift.field_report(live, other)
    assert newest.pk != rep.pk and newest.report["n_candidates"] == 210
    assert auto_shift.field_report(live, "cosmos").pk < rep.pk  # built before, not rebuilt
    # a failure is listed with the failed tasks and does not stop the other fields
    monkeypatch.setattr(
        shift, "build_shift_report", lambda **kw: (_ for _ in ()).throw(RuntimeError("disk"))
    )
    out = auto_shift.ensure_field_reports(model_version=live, fresh=[other])
    assert [o.status for o in out if o.field == other] == ["failed"]
    failed = [t for t in task_rows()["failed"] if t.name == auto_shift.FAILED]
    assert [t.key for t in failed] == [f"model-{live.pk}-field-{other}"]
    # and the campaign setting turns them off
    acquisition_settings.set_auto_shift_setting(user=make_scientist(), on=False)
    assert auto_shift.ensure_field_reports(model_version=live) == []
