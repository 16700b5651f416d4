"""Rounds and the scoring fan-out: queue order from acquisition, atomic rewrites, joins."""

import numpy as np
import pytest

from labelapp.models import (
    Candidate,
    CandidateScore,
    ModelVersion,
    Round,
    RoundCandidate,
    ScoreChunk,
    ShiftReport,
    TaskProgress,
    Vote,
)
from labelapp.services.learning.promotion import promote_model
from labelapp.services.learning.rounds import RoundError, acquisition_config, start_round
from labelapp.services.learning.scoring_runs import plan_scoring, run_chunk
from labelapp.services.learning.training import train_model_version
from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey
from tests.factories_volunteers import make_candidates, make_volunteer

pytestmark = pytest.mark.django_db


def _fake_scores(cands, version, rng):
    prob = rng.random(len(cands))
    CandidateScore.objects.bulk_create(
        [
            CandidateScore(model_version=version, candidate=c, prob=p, entropy=0.0, bald=b)
            for c, p, b in zip(cands, prob, rng.random(len(cands)), strict=True)
        ]
    )


def test_without_a_model_the_queue_stays_low_sn_first():
    make_candidates(30)
    rnd = start_round(model_version=None)
    assert rnd.number == 1 and rnd.scored_by is None and rnd.acquisition["fallback"]
    order = list(Candidate.objects.order_by("-priority").values_list("sn", flat=True))
    assert order == sorted(order)


def test_a_round_puts_the_acquired_batch_first_and_records_it():
    cands = make_candidates(200)
    version = ModelVersion.objects.create(label_source="truth", directory="/x")
    promote_model(model_version=version, reason="test")
    _fake_scores(cands, version, np.random.default_rng(0))
    rnd = start_round(
        model_version=version,
        config=acquisition_config(
            strategy="bald", batch_size=20, diversity="none", random_fraction=0.1
        ),
    )
    queued = list(RoundCandidate.objects.filter(round=rnd).order_by("rank"))
    assert rnd.scored_by == version and rnd.n_queued == len(queued) == 20
    assert sum(q.reason == "random" for q in queued) == 2
    top = list(Candidate.objects.order_by("-priority").values_list("pk", flat=True)[:20])
    assert set(top) == {q.candidate_id for q in queued}


def test_a_round_spends_its_shift_share_where_the_shift_report_says_shifted():
    cosmos = make_candidates(150)
    egs = make_candidates(50, first_id=6_000_000)
    Candidate.objects.filter(pk__in=[c.pk for c in egs]).update(field="egs")
    version = ModelVersion.objects.create(label_source="truth", directory="/x")
    promote_model(model_version=version, reason="test")
    _fake_scores(cosmos + egs, version, np.random.default_rng(1))
    report = dict(model_version=version, n_new=50, n_ref=50, report={})
    ShiftReport.objects.create(**report, field="egs", verdict=ShiftReport.Verdict.FAR)
    ShiftReport.objects.create(**report, field="cosmos", verdict="in distribution")
    config = acquisition_config(
        strategy="bald", batch_size=20, diversity="none", random_fraction=0.0, shift_fraction=0.5
    )
    rnd = start_round(model_version=version, config=config)
    queued = list(RoundCandidate.objects.filter(round=rnd).select_related("candidate"))
    for_shift = [q for q in queued if q.reason == "shift"]
    assert len(for_shift) == 10 and all(q.candidate.field == "egs" for q in for_shift)
    assert rnd.acquisition["shift_fraction"] == 0.5
    assert rnd.acquisition["shifted_groups"] == [
        {"report": ShiftReport.objects.get(field="egs").pk, "batch": None, "field": "egs",
         "nights": None, "verdict": "far", "n_active": 50}
    ]  # fmt: skip
    # a newer in-distribution report of that field takes it out of the share
    ShiftReport.objects.create(**report, field="egs", verdict="in distribution")
    again = start_round(model_version=version, config=config)
    assert not RoundCandidate.objects.filter(round=again, reason="shift").exists()
    assert again.acquisition["shifted_groups"] == []


def test_a_round_spends_its_shift_share_on_the_shifted_nights():
    cands = make_candidates(200)
    night_a = [c.pk for c in cands[:80]]  # 80 on 5-6 Jan 2019, 120 on 20 Jan
    Candidate.objects.filter(pk__in=night_a[:40]).update(shotid=20190105011)
    Candidate.objects.filter(pk__in=night_a[40:]).update(shotid=20190106003)
    Candidate.objects.exclude(pk__in=night_a).update(shotid=20190120007)
    version = ModelVersion.objects.create(label_source="truth", directory="/x")
    promote_model(model_version=version, reason="test")
    _fake_scores(cands, version, np.random.default_rng(2))
    report = dict(model_version=version, n_new=100, n_ref=100, report={})
    far = ShiftReport.objects.create(
        **report, night_first=20190105, night_last=20190106, verdict="shifted"
    )
    ShiftReport.objects.create(**report, night_first=20190120, night_last=20190120,
                               verdict="in distribution")  # fmt: skip
    config = acquisition_config(
        strategy="bald", batch_size=20, diversity="none", random_fraction=0.0, shift_fraction=0.5
    )
    rnd = start_round(model_version=version, config=config)
    for_shift = RoundCandidate.objects.filter(round=rnd, reason="shift")
    assert for_shift.count() == 10
    assert set(for_shift.values_list("candidate_id", flat=True)) <= set(night_a)
    assert rnd.acquisition["shifted_groups"] == [
        {"report": far.pk, "batch": None, "field": None, "nights": "20190105-20190106",
         "verdict": "shifted", "n_active": 80}
    ]  # fmt: skip
    # the night groups changed (a newer report whose nights overlap): the old one is superseded
    ShiftReport.objects.create(**report, night_first=20190106, night_last=20190120,
                               verdict="in distribution")  # fmt: skip
    again = start_round(model_version=version, config=config)
    assert again.acquisition["shifted_groups"] == []


def test_a_round_first_finishes_what_the_open_round_started(settings):
    """Candidates that took votes in the open round and are still active lead the next
    batch, most votes first; settled ones, and ones voted only in an earlier round, do not."""
    from labelapp.services.crowd.consensus import set_candidate_status
    from labelapp.services.crowd.votes import submit_vote

    settings.VOTE_RATE_LIMIT = 10**6
    cands = make_candidates(80)
    version = ModelVersion.objects.create(label_source="truth", directory="/x")
    promote_model(model_version=version, reason="test")
    _fake_scores(cands, version, np.random.default_rng(1))
    config = acquisition_config(
        strategy="bald", batch_size=10, diversity="none", carry_fraction=0.5
    )
    vols = [make_volunteer() for _ in range(3)]

    def vote(cand, *answers):
        for v, a in zip(vols, answers, strict=False):
            submit_vote(volunteer=v, detectid=cand.detectid, answer=a)

    start_round(model_version=version, config=config)
    early = cands[70]
    vote(early, "yes")  # round 1
    # round 2 carries it, but nobody votes on it there
    start_round(model_version=version, config=config)
    two_votes, one_vote, settled = cands[10], cands[20], cands[30]
    vote(two_votes, "yes", "no")
    vote(one_vote, "no")
    vote(settled, "yes", "no")
    set_candidate_status(candidate_id=settled.pk, status="retired")
    third = start_round(model_version=version, config=config)
    carried = list(
        RoundCandidate.objects.filter(round=third, reason="carry")
        .order_by("rank")
        .values_list("candidate_id", flat=True)
    )
    assert carried == [two_votes.pk, one_vote.pk]
    first = list(Candidate.objects.order_by("-priority").values_list("pk", flat=True)[:2])
    assert first == carried and third.acquisition["carry_fraction"] == 0.5
    assert RoundCandidate.objects.filter(round=third).count() == 10
    # carrying is off by default: such a round starts afresh
    vote(cands[40], "yes")
    fourth = start_round(
        model_version=version, config=acquisition_config(strategy="bald", batch_size=10)
    )
    assert not RoundCandidate.objects.filter(round=fourth, reason="carry").exists()


def test_a_round_when_every_scored_candidate_is_settled():
    """The live model's scores all belong to retired candidates: the round opens with an
    empty batch instead of failing on the join of scores to active candidates."""
    cands = make_candidates(5)
    version = ModelVersion.objects.create(label_source="truth", directory="/x")
    promote_model(model_version=version, reason="test")
    _fake_scores(cands, version, np.random.default_rng(2))
    Candidate.objects.update(status=Candidate.Status.RETIRED)
    rnd = start_round(
        model_version=version, config=acquisition_config(strategy="bald", batch_size=3)
    )
    assert rnd.number == 1 and rnd.acquisition["fallback"] and rnd.n_queued == 0


def test_the_round_after_a_scoring_run_uses_the_version_that_run_scored(monkeypatch):
    """Model A's scoring run completes after model B was promoted (B has no scores yet): the
    join hands A's id to the round, which is ordered by A's scores instead of falling back
    to low-S/N order for B."""
    from labelapp import tasks
    from labelapp.services.learning.scoring_runs import SCORING, finish_run
    from labelapp.services.operations.progress import start_progress

    cands = make_candidates(60)
    a = ModelVersion.objects.create(label_source="truth", directory="/a")
    promote_model(model_version=a, reason="test")
    _fake_scores(cands, a, np.random.default_rng(3))
    start_progress(name=SCORING, key=f"model-{a.pk}", total=60, message="scoring")
    b = ModelVersion.objects.create(label_source="truth", directory="/b")
    promote_model(model_version=b, reason="promoted while A was scoring")

    sent = []
    monkeypatch.setattr(tasks.start_round, "delay", lambda **kw: sent.append(kw))
    nights = []  # and the night-group shift reports of the version that run scored
    monkeypatch.setattr(tasks.build_night_shift_reports, "delay", lambda **kw: nights.append(kw))
    assert finish_run(model_version_id=a.pk, on_complete=tasks._round_after_scoring)
    assert sent == [{"model_version_id": a.pk}] and nights == sent
    rnd = Round.objects.get(pk=tasks.start_round.apply(kwargs=sent[0]).get())
    assert rnd.scored_by == a and not rnd.acquisition["fallback"]
    assert rnd.n_queued > 0


def test_next_round_closes_the_previous_with_what_it_gained():
    cands = make_candidates(10)
    first = start_round(model_version=None)
    v = make_volunteer()
    Vote.objects.bulk_create([Vote(volunteer=v, candidate=c, answer="yes") for c in cands[:4]])
    second = start_round(model_version=None)
    first.refresh_from_db()
    assert (first.status, first.votes_gained, second.number) == ("closed", 4, 2)
    assert Round.objects.filter(status="open").count() == 1


def test_a_repeated_start_round_request_opens_one_round(monkeypatch):
    """Keyed by the task id: a redelivered message, or a retry after the database failed
    (here once, before anything was stored), returns the round the first one opened."""
    from django.db import OperationalError

    from labelapp import tasks
    from labelapp.services.learning import rounds

    make_candidates(5)
    before = start_round(model_version=None)
    first = start_round(model_version=None, request_key="task-1")
    assert start_round(model_version=None, request_key="task-1").pk == first.pk
    assert Round.objects.count() == 2 and first.acquisition["request_key"] == "task-1"

    real, calls = rounds.start_round, []

    def flaky(**kw):
        calls.append(kw["request_key"])
        if len(calls) == 1:
            raise OperationalError("server closed the connection unexpectedly")
        return real(**kw)

    monkeypatch.setattr(rounds, "start_round", flaky)
    result = tasks.start_round.apply(task_id="task-2")
    assert calls == ["task-2", "task-2"]  # retried with the same key
    assert tasks.start_round.apply(task_id="task-2").get() == result.get()  # redelivered
    assert Round.objects.count() == 3
    assert set(Round.objects.filter(status="open").values_list("pk", flat=True)) == {result.get()}
    before.refresh_from_db()
    assert before.status == "closed"


def test_unknown_acquisition_setting_is_refused():
    with pytest.raises(RoundError, match="unknown acquisition setting"):
        acquisition_config(temperature=3)


def test_scoring_chunks_are_idempotent_and_join_exactly_once(tmp_path, settings):
    settings.MODELS_DIR = tmp_path / "models"
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(600, seed=8)))
    version = train_model_version(label_source="truth", epochs=1, max_time_s=20)
    chunks = plan_scoring(model_version=version, chunk=250)
    assert [(c.start, c.stop) for c in chunks] == [(0, 250), (250, 500), (500, 600)]
    assert plan_scoring(model_version=version, chunk=250) == chunks  # planning twice: same
    assert run_chunk(chunk_id=chunks[0].pk, n_samples=2) is False
    assert run_chunk(chunk_id=chunks[0].pk, n_samples=2) is False  # a duplicated message
    assert CandidateScore.objects.filter(model_version=version).count() == 250
    assert run_chunk(chunk_id=chunks[1].pk, n_samples=2) is False
    assert run_chunk(chunk_id=chunks[2].pk, n_samples=2) is True  # the join
    assert run_chunk(chunk_id=chunks[2].pk, n_samples=2) is False  # never twice
    assert CandidateScore.objects.filter(model_version=version).count() == 600
    progress = TaskProgress.objects.get(name="score_catalogue", key=f"model-{version.pk}")
    assert (progress.state, progress.done, progress.total) == ("done", 600, 600)
    assert not ScoreChunk.objects.filter(done=False).exists()


def test_kcenter_round_spreads_the_batch_over_cnn_embeddings(tmp_path, settings):
    """diversity='kcenter' (offered in the console) runs on the live model's features,
    computed from the stores for the k-center pool only."""
    import torch

    from labelapp.services.learning.scoring import CandidateEmbeddings, score_all
    from labelapp.services.survey.rendering import candidate_pixels
    from mlcore.cnn.data import normalise, spec_windows

    settings.MODELS_DIR = tmp_path / "models"
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(600, seed=8)))
    version = train_model_version(label_source="truth", epochs=1, max_time_s=20)
    promote_model(model_version=version, reason="test")
    score_all(model_version=version, n_samples=2)

    ids = np.asarray(Candidate.objects.order_by("pk").values_list("pk", flat=True))
    emb = CandidateEmbeddings(model_version=version, ids=ids)
    got = emb[np.array([417, 3, 417])]  # any order, repeats: rows map back as asked
    assert got.shape == (3, emb.shape[1]) and np.isfinite(got).all()
    np.testing.assert_array_equal(got[0], got[2])
    for k, row in enumerate((417, 3)):
        c = Candidate.objects.get(pk=ids[row])
        px = candidate_pixels(c)
        x, _ = normalise(torch.from_numpy(px["cutouts"][None]))
        half = emb.model.config.spec_len // 2
        win = spec_windows(px["spec"][None, 0], px["spec"][None, 1], np.array([c.wave]), half)
        with torch.no_grad():
            direct = emb.model.features(x, torch.as_tensor(win, dtype=torch.float32))
        np.testing.assert_allclose(got[k], direct[0].numpy(), rtol=1e-4, atol=1e-5)

    rnd = start_round(
        model_version=version,
        config=acquisition_config(
            strategy="bald", diversity="kcenter", batch_size=40, random_fraction=0.0,
            low_sn_weight=1.0, power=None,  # top-k pool: the one checked below
        )
    )  # fmt: skip
    picked = list(RoundCandidate.objects.filter(round=rnd).values_list("candidate_id", flat=True))
    assert rnd.n_queued == len(picked) == 40 and rnd.acquisition["diversity"] == "kcenter"
    bald = dict(
        CandidateScore.objects.filter(model_version=version).values_list("candidate_id", "bald")
    )
    pool = sorted(bald, key=lambda c: -bald[c])[: 5 * 40]  # k-center picks inside the top pool
    assert set(picked) <= set(pool) and set(picked) != set(pool[:40])


def test_nightly_retrain_waits_for_enough_new_labels(settings, monkeypatch):
    from labelapp import tasks
    from labelapp.models import AggregationRun, Label
    from tests.factories_volunteers import make_candidates

    sent = []
    monkeypatch.setattr(tasks.retrain_model, "delay", lambda *a, **k: sent.append(1))
    settings.RETRAIN_MIN_NEW_LABELS = 100
    cands = make_candidates(300, first_id=9_000_000)

    def run_with(n_settled: int) -> None:
        run = AggregationRun.objects.create(method="dawid_skene", status="done", n_votes=1)
        Label.objects.bulk_create(
            Label(run=run, candidate=c, posterior=0.98, is_real=True, confidence=0.98,
                  n_votes=3 if k < n_settled else 1, info_gain=0.0)
            for k, c in enumerate(cands)
        )  # fmt: skip

    run_with(150)  # 300 labels, of which 150 settled (the others have one vote)
    live = ModelVersion.objects.create(
        label_source="consensus", directory="/x", card={"n_labels": 120}
    )
    promote_model(model_version=live, reason="test")
    assert tasks.retrain_if_enough_labels() is False and sent == []  # 30 new labels
    run_with(260)
    assert tasks.retrain_if_enough_labels() is True and sent == [1]  # 140 new labels
