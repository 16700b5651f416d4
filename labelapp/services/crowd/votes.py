"""Votes: submit (idempotent), undo the last one, add a reason to a 'no'.

``submit_vote`` is safe to call twice for the same volunteer and candidate (two tabs, a
retry after a network error): the unique constraint on (volunteer, candidate) lets exactly
one INSERT win, and every other call returns that vote with ``created=False``. Counters on
the Volunteer row move only with the winning insert, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.db.models.base import DEFERRED
from django.utils import timezone
from django.utils.translation import gettext

from labelapp import errors
from labelapp.errors import UnknownCandidate
from labelapp.models import Candidate, GoldStandard, Volunteer, Vote
from labelapp.services.crowd.gold import FEEDBACK
from labelapp.services.operations.ratelimit import RateDecision, RateRule, hit_rate_limits


class VoteError(errors.PlatformError):
    """A vote that cannot be taken."""


class InvalidVote(VoteError, errors.InvalidInput):
    code = "invalid"


class CandidateNotInQueue(VoteError, errors.Conflict):
    code = "not_in_queue"


class RateLimited(VoteError, errors.RateLimited):
    code = "rate_limited"


class NothingToUndo(VoteError, errors.NotFound):
    code = "nothing_to_undo"


@dataclass(frozen=True)
class VoteResult:
    vote: Vote
    created: bool
    gold: GoldStandard | None  # the candidate's gold standard, if it is one
    correct: bool | None  # for gold candidates: did the answer match?


def gold_answer_correct(*, answer: str, gold: GoldStandard) -> bool:
    """'Not sure' is never correct; it is counted as an answer all the same."""
    if answer == Vote.Answer.UNSURE:
        return False
    return (answer == Vote.Answer.YES) == gold.is_real


def gold_feedback(result: VoteResult) -> dict | None:
    """What a volunteer is told after answering a teaching gold candidate: the answer and
    why, once their yes/no is final (such answers cannot be undone, see
    :func:`undo_last_vote`). "Not sure" is told nothing, exactly like "not sure" on any
    candidate, so it can neither peek at the answer nor tell a gold candidate from the
    others. Exam gold is told nothing at all: its answers prove volunteers, so no session may
    learn them (docs/security.md)."""
    if result.gold is None or result.gold.exam or result.vote.answer == Vote.Answer.UNSURE:
        return None
    return {
        "correct": result.correct,
        "is_real": result.gold.is_real,
        "kind": result.gold.kind,
        "text": _told_feedback(result.gold.kind, result.gold.feedback),
    }


def _told_feedback(kind: str, text: str) -> str:
    """The gold feedback in the volunteer's language while it is the default text of its
    kind (gold.FEEDBACK, translated in locale/); a scientist's own text is told as written."""
    if text and text == FEEDBACK.get(kind):
        return gettext(text)
    return text


MAX_RESPONSE_MS = 86_400_000  # a day: anything longer is a clock or client bug
MAX_EXCLUDE = 10  # detectids a page may ask the queue to skip (it holds a few at most)


def _check_fields(answer: str, reason: str, client: str, response_ms: int | None) -> None:
    if answer not in Vote.Answer.values:
        raise InvalidVote(f"answer must be one of {', '.join(Vote.Answer.values)}, not {answer!r}")
    if reason and reason not in Vote.Reason.values:
        raise InvalidVote(f"reason must be one of {', '.join(Vote.Reason.values)}, not {reason!r}")
    if reason and answer != Vote.Answer.NO:
        raise InvalidVote("a reason goes with a 'no' answer only")
    if client not in Vote.Client.values:
        raise InvalidVote(f"client must be one of {', '.join(Vote.Client.values)}, not {client!r}")
    if response_ms is not None and not 0 <= response_ms <= MAX_RESPONSE_MS:
        raise InvalidVote(f"response_ms must be between 0 and {MAX_RESPONSE_MS}")


def submit_vote(
    *,
    volunteer: Volunteer,
    detectid: int,
    answer: str,
    reason: str = "",
    response_ms: int | None = None,
    client: str = Vote.Client.API,
    rate: RateDecision | None = None,
) -> VoteResult:
    """Record ``volunteer``'s answer for candidate ``detectid`` (once; repeats are harmless).

    ``rate``: the decision of :func:`vote_rate_rule` when the caller already counted this
    vote against it (the API counts it with the per-address limit, in one Redis round trip);
    None counts it here.

    Raises UnknownCandidate (no such detectid), CandidateNotInQueue (retired or with the
    experts, and this volunteer has not voted on it), RateLimited, InvalidVote.

    A new vote is one transaction: the INSERT (``ON CONFLICT DO NOTHING`` on the unique
    (volunteer, candidate) index, so a second tab's submit simply finds nothing inserted),
    the volunteer's counters, and :func:`after_vote` (live consensus), so a vote is never
    recorded without reaching its candidate's posterior.
    """
    _check_fields(answer, reason, client, response_ms)
    candidate = _candidate(detectid)
    if candidate is None:
        raise UnknownCandidate(f"there is no candidate with detectid {detectid}")
    gold = getattr(candidate, "gold", None)  # read with the candidate: None or active

    limit = rate if rate is not None else hit_rate_limits([vote_rate_rule(volunteer.pk)])[0]
    if not limit.allowed or candidate.status != Candidate.Status.ACTIVE:
        # A repeat of a vote we already hold is still a success: the candidate may have
        # been retired by that very vote, and a retry must not turn into an error.
        existing = Vote.objects.filter(volunteer=volunteer, candidate=candidate).first()
        if existing is not None:
            return _result(existing, created=False, gold=gold)
        if not limit.allowed:
            raise RateLimited(
                gettext("too many votes: at most %(n)s every %(window)s s; wait %(wait)s s")
                % {
                    "n": settings.VOTE_RATE_LIMIT,
                    "window": settings.VOTE_RATE_WINDOW_S,
                    "wait": limit.retry_after_s,
                },
                retry_after_s=limit.retry_after_s,
            )
        raise CandidateNotInQueue(
            gettext(
                "candidate %(detectid)s is no longer in the queue (%(status)s); ask for the "
                "next one"
            )
            % {"detectid": detectid, "status": candidate.get_status_display()}
        )

    correct = gold_answer_correct(answer=answer, gold=gold) if gold else None
    vote = Vote(
        volunteer_id=volunteer.pk, candidate=candidate, answer=answer, reason=reason,
        created_at=timezone.now(), was_gold=gold is not None, response_ms=response_ms,
        client=client,
    )  # fmt: skip
    exam = gold is not None and gold.exam
    insert = [
        volunteer.pk, candidate.pk, answer, reason,
        connection.ops.adapt_datetimefield_value(vote.created_at), vote.was_gold, response_ms,
        client,
    ]  # fmt: skip
    exam_before = (volunteer.n_exam, volunteer.n_exam_correct)
    with transaction.atomic(), connection.cursor() as cur:
        if connection.vendor == "postgresql":
            # the INSERT and the counters in one statement (one round trip fewer per vote):
            # the UPDATE runs only when the INSERT stored a row, and returns its id
            counts, params = _count_update(volunteer, vote, correct=correct, exam=exam)
            cur.execute(
                f"WITH ins AS ({_INSERT_VOTE_SQL()}) {counts} AND EXISTS (SELECT 1 FROM ins) "  # noqa: S608
                "RETURNING (SELECT id FROM ins)",
                insert + params,
            )
            row = cur.fetchone()
            if row is not None:
                _counted(volunteer, vote, correct=correct, exam=exam)
        else:
            cur.execute(_INSERT_VOTE_SQL(), insert)
            row = cur.fetchone()
            if row is not None:
                count_vote(volunteer, vote, correct=correct, exam=exam, cursor=cur)
        if row is not None:
            vote.pk = row[0]
            after_vote(vote)
            if exam:
                _recheck_if_just_proven(volunteer, *exam_before)
    if row is None:  # another request (a second tab, a retry) recorded this vote first
        existing = Vote.objects.filter(volunteer=volunteer, candidate=candidate).first()
        if existing is None:  # taken back in between: rare enough to be an error
            raise CandidateNotInQueue(
                gettext("your answer for candidate %(detectid)s was just undone")
                % {"detectid": detectid}
            )
        return _result(existing, created=False, gold=gold)
    return VoteResult(vote=vote, created=True, gold=gold, correct=correct)


def _recheck_if_just_proven(volunteer: Volunteer, n_exam_before: int, right_before: int) -> None:
    """After an exam gold answer: if it proved the volunteer, re-count what they voted on while
    unproven once the vote commits (services.crowd.peers.recheck_on_promotion). Happens once
    per volunteer (more only if they lose proof and win it back): not a per-vote cost."""
    from labelapp.services.crowd.peers import just_proven_by_gold, recheck_on_promotion

    if just_proven_by_gold(volunteer, n_exam_before=n_exam_before, right_before=right_before):
        pk = volunteer.pk
        transaction.on_commit(lambda: recheck_on_promotion(volunteer_id=pk), robust=True)


def vote_rate_rule(volunteer_pk: int) -> RateRule:
    """The per-volunteer vote limit (``VOTE_RATE_LIMIT`` per ``VOTE_RATE_WINDOW_S``)."""
    return RateRule(f"vote:{volunteer_pk}", settings.VOTE_RATE_LIMIT, settings.VOTE_RATE_WINDOW_S)


def _candidate(detectid: int) -> Candidate | None:
    """The candidate (the fields the vote path needs) with its active gold standard cached
    on it (``candidate.gold`` is then None or active, without another query): one SELECT."""
    with connection.cursor() as cur:
        cur.execute(_CANDIDATE_SQL(), [detectid])
        row = cur.fetchone()
    if row is None:
        return None
    pk, status, sn, g_real, g_kind, g_feedback, g_active, g_exam = row
    candidate = _loaded(Candidate, id=pk, detectid=detectid, status=status, sn=sn)
    gold = None
    if g_active:
        gold = _loaded(
            GoldStandard, candidate_id=pk, is_real=bool(g_real), kind=g_kind,
            feedback=g_feedback, active=True, exam=bool(g_exam),
        )  # fmt: skip
    Candidate.gold.related.set_cached_value(candidate, gold)
    return candidate


def _loaded(model, **values):
    """An instance as loaded from the database with only ``values``, the other fields
    deferred (as ``.only()`` would give): a fifth of the CPU of ``model(**values)``, which
    computes every other field's default (a vote builds one or two per request)."""
    obj = model(*[values.get(f.attname, DEFERRED) for f in model._meta.concrete_fields])
    obj._state.adding, obj._state.db = False, connection.alias
    return obj


@lru_cache(maxsize=1)
def _CANDIDATE_SQL() -> str:
    q = connection.ops.quote_name
    return (
        f"SELECT c.id, c.status, c.sn, g.is_real, g.kind, g.feedback, g.active, g.exam "  # noqa: S608
        f"FROM {q(Candidate._meta.db_table)} c LEFT JOIN {q(GoldStandard._meta.db_table)} g "
        "ON g.candidate_id = c.id WHERE c.detectid = %s"
    )


@lru_cache(maxsize=1)
def _INSERT_VOTE_SQL() -> str:
    q = connection.ops.quote_name
    return (
        f"INSERT INTO {q(Vote._meta.db_table)} (volunteer_id, candidate_id, answer, reason, "  # noqa: S608
        "created_at, was_gold, response_ms, client) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
        "ON CONFLICT (volunteer_id, candidate_id) DO NOTHING RETURNING id"
    )


def _result(vote: Vote, *, created: bool, gold: GoldStandard | None) -> VoteResult:
    correct = gold_answer_correct(answer=vote.answer, gold=gold) if gold else None
    return VoteResult(vote=vote, created=created, gold=gold, correct=correct)


def count_vote(
    volunteer: Volunteer, vote: Vote, *, correct: bool | None, exam: bool = False, cursor=None
) -> None:
    """Move the volunteer's counters (votes, unsure, gold, streak) for one newly stored vote:
    one UPDATE with atomic increments. Every path that stores a Vote calls it once, in the
    vote's transaction. ``correct``: the gold answer's verdict, None when not gold; ``exam``:
    the gold is exam gold (its answer also moves the proof counters)."""
    if cursor is None:
        with connection.cursor() as cur:
            return count_vote(volunteer, vote, correct=correct, exam=exam, cursor=cur)
    sql, params = _count_update(volunteer, vote, correct=correct, exam=exam)
    cursor.execute(sql, params)
    _counted(volunteer, vote, correct=correct, exam=exam)


def _count_update(
    volunteer: Volunteer, vote: Vote, *, correct: bool | None, exam: bool
) -> tuple[str, list]:
    """The UPDATE of :func:`count_vote` (its WHERE clause last, so a caller can add to it)."""
    today, streak, best = _streak(volunteer, vote)
    unsure, n_gold, n_correct, n_exam, n_exam_correct = _deltas(vote, correct, exam)
    return (
        f"UPDATE {connection.ops.quote_name(Volunteer._meta.db_table)} SET "  # noqa: S608
        "n_votes = n_votes + 1, n_unsure = n_unsure + %s, n_gold = n_gold + %s, "
        "n_gold_correct = n_gold_correct + %s, n_exam = n_exam + %s, "
        "n_exam_correct = n_exam_correct + %s, last_vote_at = %s, last_active_day = %s, "
        "streak_days = %s, best_streak_days = %s WHERE id = %s",
        [unsure, n_gold, n_correct, n_exam, n_exam_correct,
         connection.ops.adapt_datetimefield_value(vote.created_at),
         connection.ops.adapt_datefield_value(today), streak, best, volunteer.pk],
    )  # fmt: skip


def _deltas(vote: Vote, correct: bool | None, exam: bool) -> tuple[int, int, int, int, int]:
    """What one vote adds to n_unsure, n_gold, n_gold_correct, n_exam, n_exam_correct."""
    n_gold, n_correct = int(correct is not None), int(bool(correct))
    exam_counts = (n_gold, n_correct) if exam else (0, 0)
    return (int(vote.answer == Vote.Answer.UNSURE), n_gold, n_correct, *exam_counts)


def _streak(volunteer: Volunteer, vote: Vote):
    """(the vote's UTC day, the streak of days with a vote, the best streak) after it."""
    today = vote.created_at.date()  # UTC day (created_at is aware, in UTC)
    if volunteer.last_active_day == today:
        streak = volunteer.streak_days
    elif volunteer.last_active_day == today - dt.timedelta(days=1):
        streak = volunteer.streak_days + 1
    else:
        streak = 1
    return today, streak, max(volunteer.best_streak_days, streak)


def _counted(volunteer: Volunteer, vote: Vote, *, correct: bool | None, exam: bool) -> None:
    """Keep the in-memory volunteer in step with :func:`_count_update` once it ran (for the
    response; the exact values are in the row)."""
    today, streak, best = _streak(volunteer, vote)
    unsure, n_gold, n_correct, n_exam, n_exam_correct = _deltas(vote, correct, exam)
    volunteer.n_votes += 1
    volunteer.n_unsure += unsure
    volunteer.n_gold += n_gold
    volunteer.n_gold_correct += n_correct
    volunteer.n_exam += n_exam
    volunteer.n_exam_correct += n_exam_correct
    volunteer.last_vote_at, volunteer.last_active_day = vote.created_at, today
    volunteer.streak_days = streak
    volunteer.best_streak_days = best


def undo_last_vote(*, volunteer: Volunteer, within_s: int | None = None) -> Vote:
    """Take back ``volunteer``'s most recent vote if it is younger than ``within_s`` seconds.

    Returns the deleted vote (its ``candidate`` still set) so the page can show that
    candidate again. Raises NothingToUndo otherwise, and for a yes/no on a teaching gold
    candidate (its answer was revealed with the vote: it is final). A vote on exam gold is
    undone like any other (nothing was revealed, and refusing would tell it is gold).
    """
    within_s = settings.VOTE_UNDO_WINDOW_S if within_s is None else within_s
    since = timezone.now() - dt.timedelta(seconds=within_s)
    with transaction.atomic():
        vote = (
            Vote.objects.select_related("candidate")
            .filter(volunteer=volunteer)
            .order_by("-created_at", "-pk")
            .first()
        )
        if vote is None or vote.created_at < since:
            raise NothingToUndo(
                gettext("no answer of yours from the last %(s)s s to take back") % {"s": within_s}
            )
        gold = GoldStandard.objects.filter(candidate_id=vote.candidate_id).first()
        exam = bool(vote.was_gold and gold is not None and gold.exam)
        if vote.was_gold and not exam and vote.answer != Vote.Answer.UNSURE:
            # its answer was shown: undoing and answering again would fake a right answer
            raise NothingToUndo(
                gettext("the answer to a teaching example is final once its explanation was shown")
            )
        deleted, _ = Vote.objects.filter(pk=vote.pk).delete()
        if not deleted:  # a concurrent undo took it first
            raise NothingToUndo(gettext("that answer was already taken back"))
        correct = (
            gold_answer_correct(answer=vote.answer, gold=gold) if vote.was_gold and gold else None
        )
        changes = {"n_votes": F("n_votes") - 1}
        if vote.answer == Vote.Answer.UNSURE:
            changes["n_unsure"] = F("n_unsure") - 1
        if correct is not None:
            changes["n_gold"] = F("n_gold") - 1
            if correct:
                changes["n_gold_correct"] = F("n_gold_correct") - 1
            if exam:
                changes["n_exam"] = F("n_exam") - 1
                if correct:
                    changes["n_exam_correct"] = F("n_exam_correct") - 1
        if vote.peer_n:  # the comparisons with proven peers this vote added
            changes["n_peer"] = F("n_peer") - vote.peer_n
            changes["n_peer_agree"] = F("n_peer_agree") - vote.peer_agree
        if vote.model_agree is not None:  # ... and with the live model's call
            changes["n_model"] = F("n_model") - 1
            changes["n_model_agree"] = F("n_model_agree") - int(vote.model_agree)
        Volunteer.objects.filter(pk=volunteer.pk).update(**changes)
        if exam and correct:  # a right exam answer taken back may take the proof with it
            from labelapp.services.crowd.peers import is_proven_volunteer, recheck_settled_by

            was_proven = is_proven_volunteer(volunteer)
            volunteer.refresh_from_db()
            if was_proven and not is_proven_volunteer(volunteer):
                recheck_settled_by(volunteer_id=volunteer.pk)
        if vote.peer_n or vote.model_agree is not None:  # a pass may have rested on them
            from labelapp.services.crowd.peers import revoke_probation_if_unearned

            revoke_probation_if_unearned(volunteer_id=volunteer.pk)
        if vote.peer_credits:  # ... and those it gave the earlier voters
            from labelapp.services.crowd.peers import credit_peers

            credits = vote.peer_credits
            transaction.on_commit(lambda: credit_peers(credits, sign=-1), robust=True)
    volunteer.refresh_from_db()
    after_undo(vote)
    return vote


def set_vote_reason(*, volunteer: Volunteer, detectid: int, reason: str) -> Vote:
    """Attach (or change) the optional reason of a 'no' answer."""
    if reason not in Vote.Reason.values:
        raise InvalidVote(f"reason must be one of {', '.join(Vote.Reason.values)}, not {reason!r}")
    vote = Vote.objects.filter(volunteer=volunteer, candidate__detectid=detectid).first()
    if vote is None:
        raise UnknownCandidate(f"you have no answer for candidate {detectid}")
    if vote.answer != Vote.Answer.NO:
        raise InvalidVote("a reason goes with a 'no' answer only")
    Vote.objects.filter(pk=vote.pk).update(reason=reason)
    vote.reason = reason
    return vote


def after_vote(vote: Vote) -> None:
    """Called once per NEW vote (never for repeats), inside the vote's transaction: the
    live consensus is recomputed and the retirement rule applied (services.consensus). If
    it fails, the vote is rolled back with it (the client's retry records both)."""
    from labelapp.services.crowd.consensus import record_vote
    from labelapp.services.crowd.peers import (
        credit_peers,
        recheck_on_promotion,
        recheck_settled_by,
    )

    update = record_vote(vote=vote)
    if update is None:
        return
    if update.voter_demoted:
        # they just lost proven status: what they helped settle may not be settled without it
        recheck_settled_by(volunteer_id=vote.volunteer_id)
    if update.voter_promoted:  # passed probation: what they voted on unproven counts now
        vid = vote.volunteer_id
        transaction.on_commit(lambda: recheck_on_promotion(volunteer_id=vid), robust=True)
    if update.peer_credits:
        credits = update.peer_credits
        # robust: the vote is committed by then; a failed credit is logged, not a 500
        transaction.on_commit(lambda: credit_peers(credits, sign=+1), robust=True)


def after_undo(vote: Vote) -> None:
    """Called after a vote was taken back (``vote`` is already deleted): the consensus is
    recomputed without it (or its gold learning reversed)."""
    from labelapp.services.crowd.consensus import forget_vote

    forget_vote(vote=vote)
