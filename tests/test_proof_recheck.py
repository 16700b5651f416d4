"""When gold proves a volunteer, what they voted on while unproven is re-counted at once
(services.crowd.peers.recheck_on_promotion), and a candidate sent to the experts at the
vote cap while its voters were unproven can still be settled by their votes (the batch
run's side: tests/test_aggregation_service.py). What proving costs honest newcomers:
docs/security.md."""

from __future__ import annotations

import pytest

from labelapp.models import Candidate, RetirementEvent
from labelapp.services.crowd.votes import submit_vote
from tests.factories_volunteers import (
    make_candidates,
    make_gold,
    make_proven_volunteer,
    make_volunteer,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_cache")]


@pytest.fixture(autouse=True)
def _rules(settings, default_retirement_rules):
    settings.PROVEN_MIN_GOLD, settings.PROVEN_MIN_ACCURACY = 4, 0.7
    settings.UNPROVEN_MAX_LLR = 2.0


def _gold(n: int = 4) -> list[Candidate]:
    gold = make_candidates(n, first_id=6_000_000, sn0=6.0)  # high S/N, like the candidates
    for g in gold:
        make_gold(g, is_real=True, exam=True)  # exam gold: what proves
    return gold


def _prove(volunteer, gold, capture) -> None:
    """Four right gold answers; the promotion's re-check runs when the last one commits."""
    for g in gold[:-1]:
        submit_vote(volunteer=volunteer, detectid=g.detectid, answer="yes")
    with capture(execute=True) as callbacks:
        submit_vote(volunteer=volunteer, detectid=gold[-1].detectid, answer="yes")
    assert callbacks, "the promoting gold answer scheduled no re-check"


def _status(c) -> str:
    c.refresh_from_db()
    return c.status


def test_a_newcomers_vote_counts_the_moment_gold_proves_them(django_capture_on_commit_callbacks):
    """Two proven 'yes' (2.2 of log-odds, under the 2.94 a retirement needs) and a
    newcomer's 'yes', which cannot hasten a retirement while unproven. Their fourth right
    gold answer proves them: the candidate is recomputed then (2.2 + 1.25 = 3.45) and
    retires, without waiting for another vote."""
    gold = _gold()
    (c,) = make_candidates(1, sn0=6.0)
    newcomer = make_volunteer()
    submit_vote(volunteer=newcomer, detectid=c.detectid, answer="yes")
    for _ in range(2):
        submit_vote(volunteer=make_proven_volunteer(), detectid=c.detectid, answer="yes")
    assert _status(c) == Candidate.Status.ACTIVE
    _prove(newcomer, gold, django_capture_on_commit_callbacks)
    assert _status(c) == Candidate.Status.RETIRED
    event = RetirementEvent.objects.get(candidate=c)
    assert (event.from_status, event.reason) == ("active", RetirementEvent.Reason.CONFIDENT)


def test_a_candidate_at_the_vote_cap_leaves_the_expert_queue_once_its_voter_is_proven(
    settings, django_capture_on_commit_callbacks
):
    """At the vote cap the same three votes send it to the experts (uncertain on proven
    evidence); proving the newcomer settles it, with the move recorded."""
    settings.RETIRE_MAX_VOTES = 3
    gold = _gold()
    (c,) = make_candidates(1, sn0=6.0)
    newcomer = make_volunteer()
    submit_vote(volunteer=newcomer, detectid=c.detectid, answer="yes")
    for _ in range(2):
        submit_vote(volunteer=make_proven_volunteer(), detectid=c.detectid, answer="yes")
    assert _status(c) == Candidate.Status.EXPERT
    _prove(newcomer, gold, django_capture_on_commit_callbacks)
    assert _status(c) == Candidate.Status.RETIRED
    last = RetirementEvent.objects.filter(candidate=c).latest("pk")
    assert (last.from_status, last.to_status) == ("expert", "retired")


def test_proof_does_not_settle_what_is_still_uncertain(
    settings, django_capture_on_commit_callbacks
):
    """A proven newcomer who disagrees with a proven 'yes' leaves it at the experts."""
    settings.RETIRE_MAX_VOTES = 3
    gold = _gold()
    (c,) = make_candidates(1, sn0=6.0)
    newcomer = make_volunteer()
    submit_vote(volunteer=newcomer, detectid=c.detectid, answer="no")
    submit_vote(volunteer=make_proven_volunteer(), detectid=c.detectid, answer="yes")
    submit_vote(volunteer=make_volunteer(), detectid=c.detectid, answer="yes")
    assert _status(c) == Candidate.Status.EXPERT
    _prove(newcomer, gold, django_capture_on_commit_callbacks)
    assert _status(c) == Candidate.Status.EXPERT


def test_gold_that_does_not_prove_schedules_nothing(django_capture_on_commit_callbacks):
    """Only the answer that crosses into proven status re-checks (once per volunteer), so a
    gold answer costs no extra work on the vote path otherwise."""
    gold = _gold(6)
    volunteer = make_volunteer()
    for g in gold[:3]:
        with django_capture_on_commit_callbacks() as callbacks:
            submit_vote(volunteer=volunteer, detectid=g.detectid, answer="yes")
        assert not callbacks  # not proven yet
    with django_capture_on_commit_callbacks() as callbacks:
        submit_vote(volunteer=volunteer, detectid=gold[3].detectid, answer="yes")
    assert len(callbacks) == 1  # proven by this one
    with django_capture_on_commit_callbacks() as callbacks:
        submit_vote(volunteer=volunteer, detectid=gold[4].detectid, answer="yes")
    assert not callbacks  # already proven


def test_the_recount_is_bounded_to_the_latest_votes(
    monkeypatch, django_capture_on_commit_callbacks
):
    """It runs in the promoting vote's request: only the latest RECHECK_MAX candidates are
    re-counted there (older ones wait for their next vote or the batch run)."""
    from labelapp.services.crowd import peers

    monkeypatch.setattr(peers, "RECHECK_MAX", 1)
    gold = _gold()
    older, newer = make_candidates(2, sn0=6.0)
    newcomer = make_volunteer()
    for c in (older, newer):
        submit_vote(volunteer=newcomer, detectid=c.detectid, answer="yes")
        for _ in range(2):
            submit_vote(volunteer=make_proven_volunteer(), detectid=c.detectid, answer="yes")
    _prove(newcomer, gold, django_capture_on_commit_callbacks)
    assert _status(newer) == Candidate.Status.RETIRED
    assert _status(older) == Candidate.Status.ACTIVE


def test_the_comparison_that_passes_probation_recounts_what_they_voted_on(
    settings, django_capture_on_commit_callbacks
):
    """With a trusted live model, a volunteer who passed the exam gold is proven only after
    probation (3 comparisons, half agreeing): the comparison that passes it re-counts their
    earlier votes, as a proving exam answer does. (3 of 3 agreeing with the model's calls:
    +5.8 of evidence for honesty, over PROOF_MIN_LLR.)"""
    from labelapp.services.crowd import consensus
    from labelapp.services.crowd.peers import is_proven_volunteer
    from tests.test_peer_agreement import _live_model_scoring

    settings.PROOF_MIN_CHECKS = 3
    consensus._CHECKS.clear()
    (c,) = make_candidates(1, sn0=6.0)
    checks = make_candidates(3, first_id=6_500_000, sn0=6.0)
    _live_model_scoring([c, *checks], [0.5, 0.97, 0.97, 0.97])  # c: no confident call
    passed_exam = make_volunteer(n_exam=4, n_exam_correct=4, n_gold=4, n_gold_correct=4)
    assert not is_proven_volunteer(passed_exam)
    submit_vote(volunteer=passed_exam, detectid=c.detectid, answer="yes")
    for _ in range(2):
        submit_vote(volunteer=make_proven_volunteer(), detectid=c.detectid, answer="yes")
    assert _status(c) == Candidate.Status.ACTIVE  # their 'yes' cannot hasten it yet
    for k in checks[:2]:
        submit_vote(volunteer=passed_exam, detectid=k.detectid, answer="yes")
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        submit_vote(volunteer=passed_exam, detectid=checks[2].detectid, answer="yes")
    assert callbacks, "passing probation scheduled no re-check"
    passed_exam.refresh_from_db()
    assert passed_exam.probation_passed and is_proven_volunteer(passed_exam)
    assert _status(c) == Candidate.Status.RETIRED
    consensus._CHECKS.clear()


def test_a_peer_credit_that_passes_probation_recounts_what_they_voted_on(settings):
    """The same through the other door: the credit a later proven vote gives
    (peers.credit_peers) completes probation and re-counts the volunteer's open votes."""
    from labelapp.services.crowd import consensus
    from labelapp.services.crowd.peers import credit_peers
    from tests.test_peer_agreement import _live_model_scoring

    settings.PROOF_MIN_CHECKS = 3
    consensus._CHECKS.clear()
    (c,) = make_candidates(1, sn0=6.0)
    _live_model_scoring([c], [0.5])  # a trusted live model: probation in force
    # 2 agreements with the model's calls: 2 checks, +3.9 of evidence for honesty
    vol = make_volunteer(n_exam=4, n_exam_correct=4, n_model=2, n_model_agree=2)
    submit_vote(volunteer=vol, detectid=c.detectid, answer="yes")
    for _ in range(2):
        submit_vote(volunteer=make_proven_volunteer(), detectid=c.detectid, answer="yes")
    assert _status(c) == Candidate.Status.ACTIVE
    credit_peers([[vol.pk, 1]], sign=1)  # the third check, agreeing: passed, and proven
    vol.refresh_from_db()
    assert vol.probation_passed
    assert _status(c) == Candidate.Status.RETIRED


def test_undoing_the_vote_that_passed_probation_takes_the_pass_back(
    settings, django_capture_on_commit_callbacks
):
    """A kept pass must rest on comparisons that still exist: the vote whose comparison
    passed probation, taken back, clears the pass, and what its re-count settled is
    re-opened (votes.undo_last_vote -> peers.revoke_probation_if_unearned)."""
    from labelapp.models import Volunteer
    from labelapp.services.crowd import consensus
    from labelapp.services.crowd.peers import is_proven_volunteer
    from labelapp.services.crowd.votes import undo_last_vote
    from tests.test_peer_agreement import _live_model_scoring

    settings.PROOF_MIN_CHECKS = 3
    consensus._CHECKS.clear()
    (c,) = make_candidates(1, sn0=6.0)
    checks = make_candidates(3, first_id=6_500_000, sn0=6.0)
    _live_model_scoring([c, *checks], [0.5, 0.97, 0.97, 0.97])
    vol = make_volunteer(n_exam=4, n_exam_correct=4, n_gold=4, n_gold_correct=4)
    submit_vote(volunteer=vol, detectid=c.detectid, answer="yes")
    for _ in range(2):
        submit_vote(volunteer=make_proven_volunteer(), detectid=c.detectid, answer="yes")
    for k in checks:
        with django_capture_on_commit_callbacks(execute=True):
            submit_vote(volunteer=vol, detectid=k.detectid, answer="yes")
    vol.refresh_from_db()
    assert vol.probation_passed and _status(c) == Candidate.Status.RETIRED

    undo_last_vote(volunteer=vol)  # the third check: 2 of 2 left, +3.9 but under 3 checks
    vol = Volunteer.objects.get(pk=vol.pk)
    assert (vol.n_model, vol.n_model_agree) == (2, 2)
    assert not vol.probation_passed and not is_proven_volunteer(vol)
    assert _status(c) == Candidate.Status.ACTIVE  # settled by their proof: re-opened
    consensus._CHECKS.clear()


def test_a_pass_earned_before_the_undone_vote_is_kept(settings):
    """Only a pass that no longer holds is cleared: undoing a later vote (here one that
    disagreed with the model's call) leaves a pass the earlier checks still earn."""
    from labelapp.models import Volunteer
    from labelapp.services.crowd import consensus
    from labelapp.services.crowd.votes import undo_last_vote
    from tests.test_peer_agreement import _live_model_scoring

    settings.PROOF_MIN_CHECKS = 3
    consensus._CHECKS.clear()
    (k,) = make_candidates(1, sn0=6.0)
    _live_model_scoring([k], [0.97])
    vol = make_volunteer(
        n_exam=4, n_exam_correct=4, n_model=3, n_model_agree=3, probation_passed=True
    )
    submit_vote(volunteer=vol, detectid=k.detectid, answer="no")  # against the call
    undo_last_vote(volunteer=vol)
    vol = Volunteer.objects.get(pk=vol.pk)
    assert (vol.n_model, vol.n_model_agree) == (3, 3) and vol.probation_passed
    consensus._CHECKS.clear()


def test_a_peer_credit_taken_back_takes_back_the_pass_it_gave(settings):
    """The other door: a credit that passed probation, taken back (the crediting vote was
    undone: credit_peers(sign=-1)), clears the pass and re-opens what it settled."""
    from labelapp.services.crowd import consensus
    from labelapp.services.crowd.peers import credit_peers
    from tests.test_peer_agreement import _live_model_scoring

    settings.PROOF_MIN_CHECKS = 3
    consensus._CHECKS.clear()
    (c,) = make_candidates(1, sn0=6.0)
    _live_model_scoring([c], [0.5])
    vol = make_volunteer(n_exam=4, n_exam_correct=4, n_model=2, n_model_agree=2)
    submit_vote(volunteer=vol, detectid=c.detectid, answer="yes")
    for _ in range(2):
        submit_vote(volunteer=make_proven_volunteer(), detectid=c.detectid, answer="yes")
    credit_peers([[vol.pk, 1]], sign=1)
    vol.refresh_from_db()
    assert vol.probation_passed and _status(c) == Candidate.Status.RETIRED
    credit_peers([[vol.pk, 1]], sign=-1)
    vol.refresh_from_db()
    assert not vol.probation_passed
    assert _status(c) == Candidate.Status.ACTIVE
    consensus._CHECKS.clear()
