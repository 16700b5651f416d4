"""Who is classifying: volunteers for a session or an account, merging, personal figures.

Anonymous volunteers are created on their first vote (not on a page view, so crawlers make
no rows) and found again through ``SESSION_KEY`` in their session. Signing up attaches the
anonymous volunteer to the new account; logging in to an existing account merges it in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.sessions.backends.base import SessionBase
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Q, Sum

from labelapp.models import Candidate, CandidateTruth, GoldStandard, Volunteer, Vote
from labelapp.services.crowd.consensus import passes_site_probation
from labelapp.services.crowd.levels import refresh_level
from mlcore.nz import LINE_REST_A, line_redshifts

SESSION_KEY = "volunteer_id"
TUTORIAL_KEY = "tutorial_done"


def get_volunteer(
    *, session: SessionBase, user: AbstractBaseUser | None, create: bool = False
) -> Volunteer | None:
    """The volunteer behind a request's session/user; a new one only when ``create``."""
    if user is not None and user.is_authenticated:
        volunteer = _volunteer_where("user_id = %s", user.pk)
        if volunteer is None and create:
            try:
                with transaction.atomic():
                    volunteer = Volunteer.objects.create(
                        user=user, tutorial_done=bool(session.get(TUTORIAL_KEY))
                    )
            except IntegrityError:  # the same account in two tabs
                volunteer = Volunteer.objects.get(user_id=user.pk)
        return volunteer
    volunteer_id = session.get(SESSION_KEY)
    if volunteer_id is not None:
        volunteer = _volunteer_where("id = %s AND user_id IS NULL", volunteer_id)
        if volunteer is not None:
            return volunteer
    if not create:
        return None
    volunteer = Volunteer.objects.create(tutorial_done=bool(session.get(TUTORIAL_KEY)))
    session[SESSION_KEY] = volunteer.pk
    return volunteer


def _volunteer_where(where: str, value) -> Volunteer | None:
    """One Volunteer by a fixed condition: the SELECT the ORM would send, without its query
    building (every API call asks this; the ORM cost about four times the round trip)."""
    sql, names, converters = _volunteer_select(connection.alias)
    with connection.cursor() as cur:
        cur.execute(sql + where, [value])
        row = cur.fetchone()
    if row is None:
        return None
    if converters:  # SQLite: datetimes come back naive strings/values without them
        row = list(row)
        for i, expression, funcs in converters:
            for func in funcs:
                row[i] = func(row[i], expression, connection)
    return Volunteer.from_db(connection.alias, names, row)


@lru_cache(maxsize=4)
def _volunteer_select(alias: str):
    fields = Volunteer._meta.concrete_fields
    qn = connection.ops.quote_name
    table = qn(Volunteer._meta.db_table)
    sql = f"SELECT {', '.join(qn(f.column) for f in fields)} FROM {table} WHERE "  # noqa: S608
    converters = []
    for i, f in enumerate(fields):
        col = f.get_col(Volunteer._meta.db_table)
        funcs = connection.ops.get_db_converters(col) + f.get_db_converters(connection)
        if funcs:
            converters.append((i, col, funcs))
    return sql, [f.attname for f in fields], converters


def tutorial_done(*, session: SessionBase, volunteer: Volunteer | None) -> bool:
    return bool(session.get(TUTORIAL_KEY)) or (volunteer is not None and volunteer.tutorial_done)


def mark_tutorial_done(*, session: SessionBase, volunteer: Volunteer | None) -> None:
    session[TUTORIAL_KEY] = True
    if volunteer is not None and not volunteer.tutorial_done:
        Volunteer.objects.filter(pk=volunteer.pk).update(tutorial_done=True)
        volunteer.tutorial_done = True


@transaction.atomic
def merge_volunteers(*, source: Volunteer, target: Volunteer) -> int:
    """Move ``source``'s votes to ``target`` and delete ``source``; returns votes moved.

    Where both answered the same candidate, ``target``'s answer is kept (one vote per
    volunteer per candidate). Counters are recomputed from the votes.
    """
    if source.pk == target.pk:
        return 0
    kept = [_kept_at_upgrade(v) for v in (target, source)]
    seen = Vote.objects.filter(volunteer=target).values("candidate_id")
    moved = (
        Vote.objects.filter(volunteer=source)
        .exclude(candidate_id__in=seen)
        .update(volunteer=target)
    )
    if source.tutorial_done and not target.tutorial_done:
        target.tutorial_done = True
        target.save(update_fields=["tutorial_done"])
    source.delete()  # cascades to the duplicate votes left behind
    refresh_counters(
        volunteer=target,
        exam_kept=(kept[0][0] + kept[1][0], kept[0][1] + kept[1][1]),
        probation_passed=target.probation_passed or source.probation_passed,
    )
    refresh_level(volunteer=target)  # the gold answers moved in may show (or undo) skill
    return moved


def attach_session_volunteer(*, session: SessionBase, user: AbstractBaseUser) -> Volunteer | None:
    """After sign-up or log-in: the session's anonymous votes become the account's."""
    volunteer_id = session.pop(SESSION_KEY, None)
    anonymous = (
        Volunteer.objects.filter(pk=volunteer_id, user__isnull=True).first()
        if volunteer_id is not None
        else None
    )
    existing = Volunteer.objects.filter(user_id=user.pk).first()
    if anonymous is None:
        return existing
    if existing is None:
        anonymous.user = user
        anonymous.save(update_fields=["user"])
        return anonymous
    merge_volunteers(source=anonymous, target=existing)
    return existing


def _gold_right() -> Q:
    """Votes (joined to their candidate's gold standard) that match the gold answer."""
    return Q(answer=Vote.Answer.YES, candidate__gold__is_real=True) | Q(
        answer=Vote.Answer.NO, candidate__gold__is_real=False
    )


def _exam_answers() -> Q:
    return Q(was_gold=True, candidate__gold__exam=True)


def _kept_at_upgrade(volunteer: Volunteer) -> tuple[int, int]:
    """The exam answers (all, right) the volunteer holds that no vote of theirs on exam gold
    accounts for: their gold answers from before migration 0032, kept as exam answers so that
    proven volunteers stayed proven. A recount from the votes alone would drop them."""
    counted = Vote.objects.filter(_exam_answers(), volunteer=volunteer).aggregate(
        n=Count("pk"), ok=Count("pk", filter=_gold_right())
    )
    return (
        max(0, volunteer.n_exam - counted["n"]),
        max(0, volunteer.n_exam_correct - counted["ok"]),
    )


def refresh_counters(
    *, volunteer: Volunteer, exam_kept: tuple[int, int] = (0, 0), probation_passed: bool = False
) -> None:
    """Recompute the volunteer's counters from their votes (after a merge or a void).
    ``exam_kept``: exam answers kept at the upgrade (``_kept_at_upgrade``) to add back,
    never more than the gold answers the votes hold. ``probation_passed``: kept from before
    (a merge: either side had passed); otherwise passed only if the recounted comparisons
    pass now (a void starts over)."""
    votes = Vote.objects.filter(volunteer=volunteer)
    right = _gold_right()
    exam = _exam_answers()
    agg = votes.aggregate(
        n=Count("pk"),
        unsure=Count("pk", filter=Q(answer=Vote.Answer.UNSURE)),
        gold=Count("pk", filter=Q(was_gold=True)),
        gold_ok=Count("pk", filter=Q(was_gold=True) & right),
        exam=Count("pk", filter=exam),
        exam_ok=Count("pk", filter=exam & right),
        peer_n=Sum("peer_n"),
        peer_agree=Sum("peer_agree"),
        model_n=Count("pk", filter=Q(model_agree__isnull=False)),
        model_agree=Count("pk", filter=Q(model_agree=True)),
    )
    days = sorted({d.date() for d in votes.values_list("created_at", flat=True)})
    best = run = 0
    for k, day in enumerate(days):
        run = run + 1 if k and (day - days[k - 1]).days == 1 else 1
        best = max(best, run)
    last = votes.order_by("-created_at").values_list("created_at", flat=True).first()
    volunteer.n_votes, volunteer.n_unsure = agg["n"], agg["unsure"]
    volunteer.n_gold, volunteer.n_gold_correct = agg["gold"], agg["gold_ok"]
    volunteer.n_exam = min(agg["exam"] + exam_kept[0], agg["gold"])
    volunteer.n_exam_correct = min(agg["exam_ok"] + exam_kept[1], agg["gold_ok"])
    volunteer.n_peer, volunteer.n_peer_agree = agg["peer_n"] or 0, agg["peer_agree"] or 0
    volunteer.n_model, volunteer.n_model_agree = agg["model_n"], agg["model_agree"]
    volunteer.probation_passed = probation_passed or passes_site_probation(
        volunteer.n_peer, volunteer.n_peer_agree, volunteer.n_model, volunteer.n_model_agree
    )
    volunteer.last_vote_at = last
    volunteer.last_active_day = days[-1] if days else None
    volunteer.streak_days, volunteer.best_streak_days = run, max(best, volunteer.best_streak_days)
    volunteer.save()


@dataclass
class VolunteerStats:
    n_votes: int
    n_unsure: int
    n_gold: int  # teaching gold answers (exam answers are never shown)
    n_gold_correct: int
    streak_days: int
    best_streak_days: int
    agreement: float | None  # fraction of yes/no answers agreeing with the settled consensus
    n_compared: int  # how many answers that fraction is over
    discoveries: list[dict] = field(default_factory=list)


RECENT_LIMIT = 5000  # the personal page looks at this many most recent votes


def _settled() -> Q:
    """Candidates whose consensus is settled: retired by the skill-weighted posterior, or
    answered by an expert. (An open candidate's posterior can still flip.)"""
    return Q(candidate__status=Candidate.Status.RETIRED) | Q(
        candidate__consensus__expert_label__isnull=False
    )


def _consensus_real(posterior: float | None, expert_label: bool | None) -> bool | None:
    if expert_label is not None:
        return expert_label
    return None if posterior is None else posterior >= 0.5


def volunteer_stats(*, volunteer: Volunteer) -> VolunteerStats:
    """Figures for the personal page.

    Agreement compares the volunteer's yes/no answers with the consensus of the candidates
    that are settled (retired by the skill-weighted posterior, or answered by an expert),
    over their most recent ``RECENT_LIMIT`` answers: one query.
    """
    consensus = ("candidate__consensus__posterior", "candidate__consensus__expert_label")
    rows = (
        Vote.objects.filter(volunteer=volunteer)
        .exclude(answer=Vote.Answer.UNSURE)
        .filter(_settled())
        .order_by("-created_at")
        .values_list("answer", *consensus)[:RECENT_LIMIT]
    )
    compared = [
        (answer == "yes", real)
        for answer, post, expert in rows
        if (real := _consensus_real(post, expert)) is not None
    ]
    agree = sum(a == r for a, r in compared)
    # teaching gold only: a count that moved with exam answers would tell them
    right = _gold_right()
    taught = Vote.objects.filter(
        volunteer=volunteer, was_gold=True, candidate__gold__exam=False
    ).aggregate(n=Count("pk"), ok=Count("pk", filter=right))
    streak = volunteer.streak_days
    from django.utils import timezone

    today = timezone.now().date()
    if volunteer.last_active_day is None or (today - volunteer.last_active_day).days > 1:
        streak = 0  # the streak is broken once a whole day went by without a vote
    return VolunteerStats(
        n_votes=volunteer.n_votes,
        n_unsure=volunteer.n_unsure,
        n_gold=taught["n"],
        n_gold_correct=taught["ok"],
        streak_days=streak,
        best_streak_days=volunteer.best_streak_days,
        agreement=agree / len(compared) if compared else None,
        n_compared=len(compared),
        discoveries=confirmed_real_seen(volunteer=volunteer),
    )


def confirmed_real_seen(*, volunteer: Volunteer, limit: int = 24) -> list[dict]:
    """Candidates this volunteer saw that turned out to be real lines: a scientist's gold
    standard says so, an expert answered "real", or the candidate was retired with a
    skill-weighted consensus posterior >= 0.5."""
    seen = Vote.objects.filter(volunteer=volunteer)
    # gold only where this volunteer's yes/no is in (final, its answer shown): a 'not sure'
    # must not reveal a gold answer here either (it could be undone and answered again)
    # and never exam gold: nothing may tell an exam answer (docs/security.md)
    gold_real = GoldStandard.objects.filter(
        active=True,
        exam=False,
        is_real=True,
        candidate__votes__volunteer=volunteer,
        candidate__votes__answer__in=(Vote.Answer.YES, Vote.Answer.NO),
    ).values_list("candidate_id", flat=True)
    settled = seen.filter(_settled()).values_list(
        "candidate_id", "candidate__consensus__posterior", "candidate__consensus__expert_label"
    )[:RECENT_LIMIT]
    real = {c for c, post, expert in settled if _consensus_real(post, expert)} | set(gold_real)
    rows = list(
        seen.filter(candidate_id__in=real)
        .select_related("candidate")
        .order_by("-created_at")[:limit]
    )
    kinds = line_kinds(candidate_ids=[v.candidate_id for v in rows])
    return [
        {
            "detectid": v.candidate.detectid,
            "wave": v.candidate.wave,
            # the line's redshift under each hypothesis (Lya, [OII]) while its type is not
            # known; the one hypothesis that holds where a gold standard or truth says
            "redshifts": line_redshifts(v.candidate.wave, kinds.get(v.candidate_id)),
            "line_known": v.candidate_id in kinds,
            "your_answer": v.answer,
            "when": v.created_at,
        }
        for v in rows
    ]


def line_kinds(*, candidate_ids: list[int]) -> dict[int, str]:
    """The known line type ("lae" or "oii") of those candidates that have one: a scientist's
    gold standard says so, or else the survey's truth table (simulated surveys carry one).
    Candidates with no known type are absent."""
    real_kinds = tuple(LINE_REST_A)
    known = dict(
        CandidateTruth.objects.filter(
            candidate_id__in=candidate_ids, is_real=True, kind__in=real_kinds
        ).values_list("candidate_id", "kind")
    )
    known.update(
        GoldStandard.objects.filter(
            candidate_id__in=candidate_ids, is_real=True, kind__in=real_kinds
        ).values_list("candidate_id", "kind")
    )  # a scientist's word wins over a table
    return known
