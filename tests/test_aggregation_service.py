"""Batch aggregation through the services: labels with provenance, skills, retirements."""

import numpy as np
import pytest

from labelapp.models import (
    AggregationRun,
    Candidate,
    ConsensusState,
    Label,
    RetirementEvent,
    VolunteerSkill,
    Vote,
)
from labelapp.services.crowd.aggregation import AggregationError, aggregate_votes
from labelapp.services.crowd.consensus import update_consensus
from tests.factories_volunteers import make_candidates, make_gold, make_volunteer

pytestmark = pytest.mark.django_db


def _campaign(n_cand=60, seed=0, proven=True):
    """Candidates with known truth; 8 good volunteers (90%; gold-proven unless not
    ``proven``), 2 random clickers (unproven)."""
    rng = np.random.default_rng(seed)
    cands = make_candidates(n_cand, sn0=4.8)  # S/N 4.8 .. 5.4: low regime
    truth = rng.random(n_cand) < 0.5
    gold = {"n_gold": 10, "n_gold_correct": 9, "n_exam": 10, "n_exam_correct": 9} if proven else {}
    good = [make_volunteer(**gold) for _ in range(8)]
    spam = [make_volunteer() for _ in range(2)]
    votes = []
    for c, real in zip(cands, truth, strict=True):
        for v in good:
            answer = real if rng.random() < 0.9 else not real
            votes.append(Vote(volunteer=v, candidate=c, answer="yes" if answer else "no"))
        for v in spam:
            votes.append(Vote(volunteer=v, candidate=c, answer=rng.choice(["yes", "no"])))
    Vote.objects.bulk_create(votes)  # bypasses after_vote: only the batch path is tested
    return cands, truth, good, spam


def test_dawid_skene_labels_skills_and_provenance():
    cands, truth, good, spam = _campaign()
    make_gold(cands[0], is_real=bool(truth[0]))
    run = aggregate_votes()
    run.refresh_from_db()
    assert run.status == "done" and run.n_votes == 600 and run.n_candidates == 60
    assert run.max_vote_id == Vote.objects.order_by("-pk").first().pk
    labels = {lab.candidate_id: lab for lab in Label.objects.filter(run=run)}
    assert len(labels) == 60
    accuracy = np.mean([labels[c.pk].is_real == t for c, t in zip(cands, truth, strict=True)])
    assert accuracy >= 0.95
    assert all(lab.n_votes == 10 for lab in labels.values())
    weight = {
        s.volunteer_id: s.sensitivity + s.specificity - 1
        for s in VolunteerSkill.objects.filter(regime=0)
    }
    assert min(weight[v.pk] for v in good) > 0.6
    assert max(abs(weight[v.pk]) for v in spam) < 0.35
    assert run.typical_skill["sensitivity"][0] > 0.6


def test_majority_and_dawid_skene_agree_when_everyone_is_equally_good():
    cands = make_candidates(40)
    rng = np.random.default_rng(1)
    truth = rng.random(len(cands)) < 0.5
    vols = [make_volunteer() for _ in range(7)]
    votes = [
        Vote(volunteer=v, candidate=c, answer="yes" if (rng.random() < 0.8) == t else "no")
        for c, t in zip(cands, truth, strict=True)
        for v in vols
    ]
    Vote.objects.bulk_create(votes)
    maj = aggregate_votes(method="majority", retire=False)
    ds = aggregate_votes(method="dawid_skene", retire=False)
    a = dict(Label.objects.filter(run=maj).values_list("candidate_id", "is_real"))
    b = dict(Label.objects.filter(run=ds).values_list("candidate_id", "is_real"))
    yes = {c.pk: 0 for c in cands}
    for vote in votes:
        yes[vote.candidate_id] += vote.answer == "yes"
    clear = [cid for cid, k in yes.items() if abs(2 * k - 7) >= 3]  # a margin of 5-2 or more
    assert len(clear) > 20
    assert all(a[cid] == b[cid] for cid in clear)
    assert np.mean([a[cid] == b[cid] for cid in a]) >= 0.9


def test_confident_candidates_are_retired_by_the_run_and_recorded():
    _campaign(20)
    run = aggregate_votes()
    retired = Candidate.objects.filter(status="retired").count()
    assert retired == run.n_retired > 0
    assert RetirementEvent.objects.filter(run=run, reason="batch").count() == retired


def test_the_run_retires_nothing_on_unproven_votes_alone(settings):
    """Dawid-Skene learns skill from agreement, so ten agreeing unproven accounts look
    skilled to it: without a gold-proven voter leaning the same way nothing retires."""
    _campaign(20, proven=False)
    run = aggregate_votes()
    assert run.n_retired == 0
    assert not Candidate.objects.filter(status="retired").exists()
    settings.PROVEN_MIN_GOLD = 0  # everyone counts as proven: the same votes retire
    assert aggregate_votes().n_retired > 0


@pytest.mark.parametrize("proven", [True, False])
def test_the_run_settles_the_expert_queue_on_proven_evidence(proven):
    """Candidates waiting for an expert (sent there at the vote cap while their voters were
    unproven) are retired by the run when their votes are now confident with proven support;
    on unproven votes alone they stay with the experts."""
    cands, *_ = _campaign(20, proven=proven)
    Candidate.objects.filter(pk__in=[c.pk for c in cands]).update(status="expert")
    run = aggregate_votes()
    events = RetirementEvent.objects.filter(run=run)
    assert run.n_retired == events.count() == Candidate.objects.filter(status="retired").count()
    if proven:
        assert run.n_retired > 10
        assert set(events.values_list("from_status", "reason")) == {("expert", "batch")}
    else:
        assert run.n_retired == 0


def test_live_posterior_refreshed_only_where_no_vote_arrived_since():
    cands, *_ = _campaign(4)
    for c in cands:
        update_consensus(candidate_id=c.pk)
    ConsensusState.objects.filter(candidate=cands[1]).update(n_votes=11)  # "a vote since"
    ConsensusState.objects.update(posterior=0.5)
    run = aggregate_votes(retire=False)
    post = dict(ConsensusState.objects.values_list("candidate_id", "posterior"))
    label = dict(Label.objects.filter(run=run).values_list("candidate_id", "posterior"))
    assert post[cands[0].pk] == pytest.approx(label[cands[0].pk])
    assert post[cands[1].pk] == 0.5  # left for the next vote to recompute


def test_no_votes_is_an_empty_successful_run():
    run = aggregate_votes()
    assert run.status == "done" and run.n_votes == 0


def test_unknown_method_is_refused():
    with pytest.raises(AggregationError, match="method must be one of"):
        aggregate_votes(method="vibes")
    assert not AggregationRun.objects.exists()


def test_a_model_version_joins_as_one_more_annotator():
    from labelapp.models import CandidateScore, ModelVersion

    cands, truth, *_ = _campaign(40)
    version = ModelVersion.objects.create(label_source="truth", directory="/x")
    # a confident, mostly right model: its scores must move the posteriors
    CandidateScore.objects.bulk_create(
        [
            CandidateScore(
                model_version=version, candidate=c, prob=0.97 if t else 0.03, entropy=0.0, bald=0.0
            )
            for c, t in zip(cands, truth, strict=True)
        ]
    )
    crowd = aggregate_votes(retire=False)
    joint = aggregate_votes(model_version=version, retire=False)
    assert joint.model_version == version and crowd.model_version is None
    a = dict(Label.objects.filter(run=crowd).values_list("candidate_id", "posterior"))
    b = dict(Label.objects.filter(run=joint).values_list("candidate_id", "posterior"))
    moved = [abs(a[c.pk] - b[c.pk]) for c in cands]
    assert max(moved) > 1e-3  # the model's evidence reached the maths
    right = [(b[c.pk] > 0.5) == t for c, t in zip(cands, truth, strict=True)]
    assert np.mean(right) >= 0.95
