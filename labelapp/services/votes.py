"""Votes: submit (idempotent), undo the last one, add a reason to a 'no'.

``submit_vote`` is safe to call twice for the same volunteer and candidate (two tabs, a
retry after a network error): the unique constraint on (volunteer, candidate) lets exactly
one INSERT win, and every other call returns that vote with ``created=False``. Counters on
the Volunteer row move only with the winning insert, in the same transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from labelapp.models import Candidate, GoldStandard, Volunteer, Vote
from labelapp.services.ratelimit import hit_rate_limit


class VoteError(Exception):
    """A vote that cannot be taken; ``status`` is the HTTP status the API answers with."""

    status = 400
    code = "invalid"

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.message = message
        self.extra = extra


class InvalidVote(VoteError):
    status, code = 400, "invalid"


class UnknownCandidate(VoteError):
    status, code = 404, "unknown_candidate"


class CandidateNotInQueue(VoteError):
    status, code = 409, "not_in_queue"


class RateLimited(VoteError):
    status, code = 429, "rate_limited"


class NothingToUndo(VoteError):
    status, code = 404, "nothing_to_undo"


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


def _check_fields(answer: str, reason: str, client: str, response_ms: int | None) -> None:
    if answer not in Vote.Answer.values:
        raise InvalidVote(f"answer must be one of {', '.join(Vote.Answer.values)}, not {answer!r}")
    if reason and reason not in Vote.Reason.values:
        raise InvalidVote(f"reason must be one of {', '.join(Vote.Reason.values)}, not {reason!r}")
    if reason and answer != Vote.Answer.NO:
        raise InvalidVote("a reason goes with a 'no' answer only")
    if client not in Vote.Client.values:
        raise InvalidVote(f"client must be one of {', '.join(Vote.Client.values)}, not {client!r}")
    if response_ms is not None and not 0 <= response_ms <= 86_400_000:
        raise InvalidVote("response_ms must be between 0 and 86400000")


def submit_vote(
    *,
    volunteer: Volunteer,
    detectid: int,
    answer: str,
    reason: str = "",
    response_ms: int | None = None,
    client: str = Vote.Client.API,
) -> VoteResult:
    """Record ``volunteer``'s answer for candidate ``detectid`` (once; repeats are harmless).

    Raises UnknownCandidate (no such detectid), CandidateNotInQueue (retired or with the
    experts, and this volunteer has not voted on it), RateLimited, InvalidVote.
    """
    _check_fields(answer, reason, client, response_ms)
    candidate = Candidate.objects.select_related("gold").filter(detectid=detectid).first()
    if candidate is None:
        raise UnknownCandidate(f"there is no candidate with detectid {detectid}")
    gold = getattr(candidate, "gold", None)
    if gold is not None and not gold.active:
        gold = None

    limit = hit_rate_limit(
        key=f"vote:{volunteer.pk}",
        limit=settings.VOTE_RATE_LIMIT,
        window_s=settings.VOTE_RATE_WINDOW_S,
    )
    if not limit.allowed or candidate.status != Candidate.Status.ACTIVE:
        # A repeat of a vote we already hold is still a success: the candidate may have
        # been retired by that very vote, and a retry must not turn into an error.
        existing = Vote.objects.filter(volunteer=volunteer, candidate=candidate).first()
        if existing is not None:
            return _result(existing, created=False, gold=gold)
        if not limit.allowed:
            raise RateLimited(
                f"too many votes: at most {settings.VOTE_RATE_LIMIT} every "
                f"{settings.VOTE_RATE_WINDOW_S} s; wait {limit.retry_after_s} s",
                retry_after_s=limit.retry_after_s,
            )
        raise CandidateNotInQueue(
            f"candidate {detectid} is no longer in the queue "
            f"({candidate.get_status_display()}); ask for the next one"
        )

    correct = gold_answer_correct(answer=answer, gold=gold) if gold else None
    try:
        with transaction.atomic():
            vote = Vote.objects.create(
                volunteer=volunteer,
                candidate=candidate,
                answer=answer,
                reason=reason,
                was_gold=gold is not None,
                response_ms=response_ms,
                client=client,
            )
            _count_vote(volunteer, vote, correct=correct)
    except IntegrityError:
        existing = Vote.objects.filter(volunteer=volunteer, candidate=candidate).first()
        if existing is None:
            raise
        return _result(existing, created=False, gold=gold)
    after_vote(vote)
    return VoteResult(vote=vote, created=True, gold=gold, correct=correct)


def _result(vote: Vote, *, created: bool, gold: GoldStandard | None) -> VoteResult:
    correct = gold_answer_correct(answer=vote.answer, gold=gold) if gold else None
    return VoteResult(vote=vote, created=created, gold=gold, correct=correct)


def _count_vote(volunteer: Volunteer, vote: Vote, *, correct: bool | None) -> None:
    """Move the volunteer's counters for one new vote: one UPDATE, atomic increments."""
    today = timezone.now().date()
    if volunteer.last_active_day == today:
        streak = volunteer.streak_days
    elif volunteer.last_active_day == today - dt.timedelta(days=1):
        streak = volunteer.streak_days + 1
    else:
        streak = 1
    changes = {
        "n_votes": F("n_votes") + 1,
        "last_vote_at": vote.created_at,
        "last_active_day": today,
        "streak_days": streak,
        "best_streak_days": max(volunteer.best_streak_days, streak),
    }
    if vote.answer == Vote.Answer.UNSURE:
        changes["n_unsure"] = F("n_unsure") + 1
    if correct is not None:
        changes["n_gold"] = F("n_gold") + 1
        if correct:
            changes["n_gold_correct"] = F("n_gold_correct") + 1
    Volunteer.objects.filter(pk=volunteer.pk).update(**changes)
    # Keep the in-memory object in step for the response (exact values are in the row).
    volunteer.n_votes += 1
    volunteer.n_unsure += vote.answer == Vote.Answer.UNSURE
    volunteer.n_gold += correct is not None
    volunteer.n_gold_correct += bool(correct)
    volunteer.last_vote_at, volunteer.last_active_day = vote.created_at, today
    volunteer.streak_days = streak
    volunteer.best_streak_days = changes["best_streak_days"]


def undo_last_vote(*, volunteer: Volunteer, within_s: int | None = None) -> Vote:
    """Take back ``volunteer``'s most recent vote if it is younger than ``within_s`` seconds.

    Returns the deleted vote (its ``candidate`` still set) so the page can show that
    candidate again. Raises NothingToUndo otherwise.
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
            raise NothingToUndo(f"no answer of yours from the last {within_s} s to take back")
        deleted, _ = Vote.objects.filter(pk=vote.pk).delete()
        if not deleted:  # a concurrent undo took it first
            raise NothingToUndo("that answer was already taken back")
        gold = GoldStandard.objects.filter(candidate_id=vote.candidate_id).first()
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
        Volunteer.objects.filter(pk=volunteer.pk).update(**changes)
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
    """Called once per NEW vote, after it is committed (never for repeats): the live
    consensus is recomputed and the retirement rule applied (services.consensus)."""
    from labelapp.services.consensus import record_vote

    record_vote(vote=vote)


def after_undo(vote: Vote) -> None:
    """Called after a vote was taken back (``vote`` is already deleted): the consensus is
    recomputed without it (or its gold learning reversed)."""
    from labelapp.services.consensus import forget_vote

    forget_vote(vote=vote)
