"""services.votes: one vote per volunteer and candidate, undo, reasons, rate limit, counters."""

import datetime as dt

import pytest
from django.utils import timezone

from labelapp.models import Candidate, Volunteer, Vote
from labelapp.services.crowd import votes
from labelapp.services.crowd.votes import submit_vote, undo_last_vote
from labelapp.views.errors import http_status
from tests.factories_volunteers import make_candidates, make_gold, make_volunteer

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_cache")]


def test_a_vote_is_recorded_and_counted():
    c = make_candidates(3)[1]
    v = make_volunteer()
    result = submit_vote(volunteer=v, detectid=c.detectid, answer="yes", client="keyboard")
    assert result.created and result.gold is None
    vote = Vote.objects.get()
    assert (vote.candidate_id, vote.answer, vote.client) == (c.pk, "yes", "keyboard")
    v.refresh_from_db()
    assert v.n_votes == 1 and v.streak_days == 1 and v.last_active_day == timezone.now().date()


def test_submitting_twice_records_one_vote_and_succeeds():
    c = make_candidates(1)[0]
    v = make_volunteer()
    first = submit_vote(volunteer=v, detectid=c.detectid, answer="no")
    again = submit_vote(volunteer=v, detectid=c.detectid, answer="yes")  # second tab
    assert first.created and not again.created
    assert again.vote.pk == first.vote.pk and again.vote.answer == "no"  # first answer kept
    assert Vote.objects.count() == 1
    assert Volunteer.objects.get(pk=v.pk).n_votes == 1


def test_database_refuses_a_second_vote_row():
    from django.db import IntegrityError, transaction

    c = make_candidates(1)[0]
    v = make_volunteer()
    Vote.objects.create(volunteer=v, candidate=c, answer="yes")
    with pytest.raises(IntegrityError), transaction.atomic():
        Vote.objects.create(volunteer=v, candidate=c, answer="no")


def test_unknown_candidate_is_a_clear_404():
    with pytest.raises(votes.UnknownCandidate, match="no candidate with detectid 42") as exc:
        submit_vote(volunteer=make_volunteer(), detectid=42, answer="yes")
    assert http_status(exc.value) == 404


@pytest.mark.parametrize("status", [Candidate.Status.RETIRED, Candidate.Status.EXPERT])
def test_candidate_out_of_the_queue_is_refused_unless_already_voted(status):
    a, b = make_candidates(2)
    v = make_volunteer()
    submit_vote(volunteer=v, detectid=a.detectid, answer="yes")
    Candidate.objects.update(status=status)
    with pytest.raises(votes.CandidateNotInQueue, match="no longer in the queue") as exc:
        submit_vote(volunteer=v, detectid=b.detectid, answer="yes")
    assert http_status(exc.value) == 409
    # a retry of a vote that was taken before retirement still succeeds
    assert not submit_vote(volunteer=v, detectid=a.detectid, answer="yes").created


@pytest.mark.parametrize(
    "kw, message",
    [
        ({"answer": "maybe"}, "answer must be one of"),
        ({"answer": "no", "reason": "aliens"}, "reason must be one of"),
        ({"answer": "yes", "reason": "cosmic"}, "with a 'no' answer only"),
        ({"answer": "yes", "client": "telepathy"}, "client must be one of"),
        ({"answer": "yes", "response_ms": -5}, "response_ms"),
    ],
)
def test_invalid_votes_say_what_is_wrong(kw, message):
    c = make_candidates(1)[0]
    with pytest.raises(votes.InvalidVote, match=message):
        submit_vote(volunteer=make_volunteer(), detectid=c.detectid, **kw)
    assert not Vote.objects.exists()


def test_gold_votes_are_marked_and_scored():
    real, fake = make_candidates(2)
    make_gold(real, is_real=True)
    make_gold(fake, is_real=False, kind="cosmic")
    v = make_volunteer()
    r1 = submit_vote(volunteer=v, detectid=real.detectid, answer="yes")
    r2 = submit_vote(volunteer=v, detectid=fake.detectid, answer="yes")
    assert r1.correct is True and r2.correct is False
    assert "cosmic ray" in r2.gold.feedback
    assert Vote.objects.filter(was_gold=True).count() == 2
    v.refresh_from_db()
    assert (v.n_gold, v.n_gold_correct) == (2, 1)


def test_not_sure_is_counted_and_never_correct_on_gold():
    c = make_candidates(1)[0]
    make_gold(c, is_real=True)
    v = make_volunteer()
    result = submit_vote(volunteer=v, detectid=c.detectid, answer="unsure")
    assert result.correct is False
    v.refresh_from_db()
    assert (v.n_votes, v.n_unsure, v.n_gold, v.n_gold_correct) == (1, 1, 1, 0)


def test_rate_limit_per_volunteer(settings):
    settings.VOTE_RATE_LIMIT = 3
    cands = make_candidates(5)
    v, other = make_volunteer(), make_volunteer()
    for c in cands[:3]:
        submit_vote(volunteer=v, detectid=c.detectid, answer="yes")
    with pytest.raises(votes.RateLimited, match="at most 3 every 60 s") as exc:
        submit_vote(volunteer=v, detectid=cands[3].detectid, answer="yes")
    assert http_status(exc.value) == 429 and exc.value.extra["retry_after_s"] > 0
    # a retry of a recorded vote is not refused, and other volunteers are not affected
    assert not submit_vote(volunteer=v, detectid=cands[0].detectid, answer="yes").created
    assert submit_vote(volunteer=other, detectid=cands[3].detectid, answer="no").created


def test_undo_takes_back_the_last_vote_and_its_counts():
    a, b = make_candidates(2)
    make_gold(b, is_real=False)
    v = make_volunteer()
    submit_vote(volunteer=v, detectid=a.detectid, answer="yes")
    submit_vote(volunteer=v, detectid=b.detectid, answer="unsure")  # told nothing: undoable
    undone = undo_last_vote(volunteer=v)
    assert undone.candidate.detectid == b.detectid
    assert list(Vote.objects.values_list("candidate_id", flat=True)) == [a.pk]
    v.refresh_from_db()
    assert (v.n_votes, v.n_unsure, v.n_gold, v.n_gold_correct) == (1, 0, 0, 0)
    # the candidate can be answered again
    assert submit_vote(volunteer=v, detectid=b.detectid, answer="yes").created


@pytest.mark.parametrize("answer", ["yes", "no"])
def test_a_gold_yes_or_no_is_final_it_cannot_be_undone_and_answered_again(answer):
    """The gold peek of issue #24: answer, read the explanation, undo, answer right."""
    (g,) = make_candidates(1)
    make_gold(g, is_real=True)
    v = make_volunteer()
    submit_vote(volunteer=v, detectid=g.detectid, answer=answer)
    with pytest.raises(votes.NothingToUndo, match="final"):
        undo_last_vote(volunteer=v)
    again = submit_vote(volunteer=v, detectid=g.detectid, answer="yes")
    assert not again.created and again.vote.answer == answer
    v.refresh_from_db()
    assert (v.n_gold, v.n_gold_correct) == (1, int(answer == "yes"))


def test_undo_only_within_the_window():
    c = make_candidates(1)[0]
    v = make_volunteer()
    submit_vote(volunteer=v, detectid=c.detectid, answer="yes")
    Vote.objects.update(created_at=timezone.now() - dt.timedelta(seconds=30))
    with pytest.raises(votes.NothingToUndo, match="last 10 s"):
        undo_last_vote(volunteer=v, within_s=10)
    with pytest.raises(votes.NothingToUndo):
        undo_last_vote(volunteer=make_volunteer())
    assert Vote.objects.count() == 1


def test_reason_goes_with_a_no():
    a, b = make_candidates(2)
    v = make_volunteer()
    submit_vote(volunteer=v, detectid=a.detectid, answer="no")
    submit_vote(volunteer=v, detectid=b.detectid, answer="yes")
    assert votes.set_vote_reason(volunteer=v, detectid=a.detectid, reason="cosmic").reason
    assert Vote.objects.get(candidate=a).reason == "cosmic"
    with pytest.raises(votes.InvalidVote):
        votes.set_vote_reason(volunteer=v, detectid=b.detectid, reason="sky")
    with pytest.raises(votes.UnknownCandidate):
        votes.set_vote_reason(volunteer=make_volunteer(), detectid=a.detectid, reason="sky")


def test_streak_counts_consecutive_days():
    cands = make_candidates(3)
    today = timezone.now().date()
    v = make_volunteer(last_active_day=today - dt.timedelta(days=1), streak_days=4)
    submit_vote(volunteer=v, detectid=cands[0].detectid, answer="yes")
    submit_vote(volunteer=v, detectid=cands[1].detectid, answer="yes")
    v.refresh_from_db()
    assert (v.streak_days, v.best_streak_days) == (5, 5)
    lapsed = make_volunteer(last_active_day=today - dt.timedelta(days=3), streak_days=9)
    submit_vote(volunteer=lapsed, detectid=cands[2].detectid, answer="yes")
    lapsed.refresh_from_db()
    assert lapsed.streak_days == 1


def test_after_vote_hook_runs_once_per_new_vote(monkeypatch):
    seen = []
    monkeypatch.setattr(votes, "after_vote", seen.append)
    c = make_candidates(1)[0]
    v = make_volunteer()
    submit_vote(volunteer=v, detectid=c.detectid, answer="yes")
    submit_vote(volunteer=v, detectid=c.detectid, answer="yes")
    assert [x.candidate_id for x in seen] == [c.pk]


def test_a_vote_and_its_consensus_are_one_transaction(monkeypatch):
    """If the live consensus fails, the vote is not kept (a retry records both)."""
    from labelapp.services.crowd import consensus

    def broken(**kw):
        raise RuntimeError("consensus down")

    monkeypatch.setattr(consensus, "update_consensus", broken)
    c = make_candidates(1)[0]
    v = make_volunteer()
    with pytest.raises(RuntimeError):
        submit_vote(volunteer=v, detectid=c.detectid, answer="yes")
    assert not Vote.objects.exists()
    assert Volunteer.objects.get(pk=v.pk).n_votes == 0
    monkeypatch.undo()
    assert submit_vote(volunteer=v, detectid=c.detectid, answer="yes").created


def test_a_vote_costs_a_fixed_handful_of_statements():
    """Guard against the hot path drifting back to ORM round trips: candidate + gold,
    insert, counters, consensus lock, evidence, state (+ transaction control); on
    PostgreSQL the insert and the counters are one statement."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from labelapp.services.crowd.consensus import proof_min_checks

    a, b = make_candidates(2)
    make_gold(b, is_real=True)
    v = make_volunteer()
    proof_min_checks()  # is probation in force: asked once per process per 30 s, not per vote
    with CaptureQueriesContext(connection) as regular:
        submit_vote(volunteer=v, detectid=a.detectid, answer="yes")
    sql = [q["sql"] for q in regular.captured_queries]
    statements = [s for s in sql if not s.startswith(("BEGIN", "SAVEPOINT", "RELEASE"))]
    # PostgreSQL: the INSERT and the counters are one statement (tests/integration)
    assert len(statements) == (5 if connection.vendor == "postgresql" else 6), sql
    assert not any("goldstandard" in s.lower() for s in statements[1:]), sql  # was_gold used
    with CaptureQueriesContext(connection) as gold:
        submit_vote(volunteer=v, detectid=b.detectid, answer="yes")
    sql = [q["sql"] for q in gold.captured_queries]
    statements = [s for s in sql if not s.startswith(("BEGIN", "SAVEPOINT", "RELEASE"))]
    # candidate + gold, insert, counters, skill update; the first gold answer in a regime
    # also reads the population prior and inserts the skill row
    assert len(statements) <= 6, sql


def test_counters_and_in_memory_volunteer_agree():
    cands = make_candidates(3)
    make_gold(cands[2], is_real=False)
    v = make_volunteer()
    submit_vote(volunteer=v, detectid=cands[0].detectid, answer="unsure")
    submit_vote(volunteer=v, detectid=cands[1].detectid, answer="no")
    submit_vote(volunteer=v, detectid=cands[2].detectid, answer="no")
    fresh = Volunteer.objects.get(pk=v.pk)
    fields = ("n_votes", "n_unsure", "n_gold", "n_gold_correct", "streak_days", "last_active_day")
    assert [getattr(v, f) for f in fields] == [getattr(fresh, f) for f in fields]
    assert (fresh.n_votes, fresh.n_unsure, fresh.n_gold, fresh.n_gold_correct) == (3, 1, 1, 1)
    assert fresh.last_vote_at == Vote.objects.order_by("-pk").first().created_at
