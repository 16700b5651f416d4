"""Curation by scientists: the expert queue, the gold standards, and flagging candidates.

Every mutation here runs in one transaction together with its ``record_audit`` call, so an
action that rolls back leaves no audit event and an event never lacks its action.

**One source of truth for expert labels.** An expert's answer is recorded as a :class:`Vote`
of the expert's own Volunteer row, and the live consensus (``consensus.update_consensus``)
derives ``ConsensusState.expert_label`` and the posterior from the candidate's votes, as it
does for every vote. So the label stays a pure function of the votes: a later recompute (a
vote taken back, a batch run) can never drop or contradict it, and the label's provenance is
the expert's vote row (who, when, how fast). The only thing added here is the queue move:
the live path only retires *active* candidates, so this service moves the candidate from
``expert`` to ``retired`` itself, with a ``RetirementEvent`` (reason ``expert``) that points
at that vote and the expert. Setting ``expert_label`` directly instead would be overwritten
by the next recompute, which rebuilds the row from votes.

Lock order follows ``services.consensus``: the Vote row, the Volunteer row (counters), the
ConsensusState row (``update_consensus``), then the Candidate row (a conditional UPDATE
``WHERE status = 'expert'``: of two concurrent answers exactly one moves it, the other rolls
back and is answered as a repeat or a 409).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.contrib.auth.base_user import AbstractBaseUser
from django.db import transaction
from django.db.models import (
    Case,
    Count,
    F,
    FloatField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Cast

from labelapp import errors
from labelapp.errors import UnknownCandidate
from labelapp.models import (
    Candidate,
    CandidateScore,
    ConsensusState,
    GoldStandard,
    RetirementEvent,
    Volunteer,
    Vote,
)
from labelapp.selectors.models import live_model
from labelapp.services.crowd.consensus import set_candidate_status, update_consensus
from labelapp.services.crowd.gold import mark_gold
from labelapp.services.crowd.levels import forget_levels_in_force
from labelapp.services.crowd.votes import MAX_RESPONSE_MS, count_vote
from labelapp.services.operations.audit import record_audit
from mlcore.survey import LYA_REST, REAL_TYPES, TRUTH_TYPES

FEEDBACK_MAX = 600  # characters of gold feedback: a volunteer reads it on a phone
EXPERT_ANSWERS = {Vote.Answer.YES: True, Vote.Answer.NO: False}
EXCLUDE_MAX = 500  # ids a client may ask to leave out (the ones it holds or skipped)


class CurationError(errors.PlatformError):
    """A curation action that cannot be done."""


class InvalidInput(CurationError, errors.InvalidInput):
    code = "invalid"


class NotGold(CurationError, errors.NotFound):
    code = "not_gold"


class NotInExpertQueue(CurationError, errors.Conflict):
    code = "not_in_expert_queue"


def _target(detectid: int) -> str:
    return f"candidate:{detectid}"


def _candidate(detectid: int) -> Candidate:
    candidate = Candidate.objects.filter(detectid=detectid).first()
    if candidate is None:
        raise UnknownCandidate(f"there is no candidate with detectid {detectid}")
    return candidate


# --- the expert queue -------------------------------------------------------------------


def expert_queue_size() -> int:
    return Candidate.objects.filter(status=Candidate.Status.EXPERT).count()


def expert_queue(*, limit: int = 5, exclude: list[int] | tuple[int, ...] = ()) -> list[dict]:
    """The next ``limit`` candidates waiting for an expert, oldest in the queue first.

    "Entered the queue" is the newest RetirementEvent that moved it to ``expert`` (by the
    retirement rule or by a scientist); candidates without one come first. Each row carries
    what the expert page shows: the candidate, the crowd's live posterior and vote counts,
    why it is here, and the live model's P(real) when a model is promoted. One query.
    """
    entered = RetirementEvent.objects.filter(
        candidate=OuterRef("pk"), to_status=Candidate.Status.EXPERT
    ).order_by("-created_at", "-pk")
    model = live_model()
    if model is not None:
        prob = Subquery(
            CandidateScore.objects.filter(candidate=OuterRef("pk"), model_version=model).values(
                "prob"
            )[:1],
            output_field=FloatField(),
        )
    else:
        prob = Value(None, output_field=FloatField())
    rows = (
        Candidate.objects.filter(status=Candidate.Status.EXPERT)
        .exclude(detectid__in=list(exclude))
        .annotate(
            entered_at=Subquery(entered.values("created_at")[:1]),
            entered_reason=Subquery(entered.values("reason")[:1]),
            n_yes=Count("votes", filter=Q(votes__answer=Vote.Answer.YES)),
            n_no=Count("votes", filter=Q(votes__answer=Vote.Answer.NO)),
            n_unsure_votes=Count("votes", filter=Q(votes__answer=Vote.Answer.UNSURE)),
            model_prob=prob,
            posterior=F("consensus__posterior"),
        )
        .order_by(F("entered_at").asc(nulls_first=True), "pk")
        .values(
            "detectid", "wave", "sn", "field", "flux", "linewidth", "entered_at",
            "entered_reason", "n_yes", "n_no", "n_unsure_votes", "model_prob", "posterior",
        )[:limit]
    )  # fmt: skip
    reasons = dict(RetirementEvent.Reason.choices)
    out = []
    for r in rows:
        out.append(
            {
                "detectid": r["detectid"],
                "wave": round(r["wave"], 1),
                "sn": round(r["sn"], 2),
                "field": r["field"],
                "flux": round(r["flux"], 2),
                "linewidth": round(r["linewidth"], 2),
                "z_lya": round(r["wave"] / LYA_REST - 1, 3),
                "posterior": None if r["posterior"] is None else round(r["posterior"], 3),
                "votes": {"yes": r["n_yes"], "no": r["n_no"], "unsure": r["n_unsure_votes"]},
                "model_prob": None if r["model_prob"] is None else round(r["model_prob"], 3),
                "model_version": model.pk if model is not None else None,
                "entered_at": r["entered_at"].isoformat() if r["entered_at"] else None,
                "entered_why": reasons.get(r["entered_reason"], "sent by hand (no record)"),
            }
        )
    return out


@dataclass(frozen=True)
class ExpertAnswer:
    detectid: int
    answer: str
    is_real: bool
    created: bool  # False: a repeat of an answer already recorded (nothing changed)
    posterior: float


def answer_expert_candidate(
    *,
    user: AbstractBaseUser,
    volunteer: Volunteer,
    detectid: int,
    answer: str,
    response_ms: int | None = None,
) -> ExpertAnswer:
    """Record an expert's yes/no for a candidate in the expert queue, and retire it.

    ``volunteer`` is the expert's own Volunteer row (``volunteers.get_volunteer``). See the
    module docstring for why this is a vote. Raises InvalidInput, UnknownCandidate, and
    NotInExpertQueue (409) when the candidate is not waiting for an expert -- unless this
    expert already gave this very answer, which is a harmless repeat (``created=False``).
    """
    if answer not in EXPERT_ANSWERS:
        raise InvalidInput("answer must be 'yes' (a real line) or 'no' (not real)")
    if response_ms is not None and not 0 <= response_ms <= MAX_RESPONSE_MS:
        raise InvalidInput(f"response_ms must be between 0 and {MAX_RESPONSE_MS}")
    candidate = _candidate(detectid)
    if candidate.status != Candidate.Status.EXPERT:
        return _repeat_or_conflict(candidate=candidate, volunteer=volunteer, answer=answer)
    try:
        with transaction.atomic():
            vote, previous = _expert_vote(
                volunteer=volunteer, candidate=candidate, answer=answer, response_ms=response_ms
            )
            update = update_consensus(candidate_id=candidate.pk, trigger=vote)
            moved = Candidate.objects.filter(
                pk=candidate.pk, status=Candidate.Status.EXPERT
            ).update(status=Candidate.Status.RETIRED)
            if not moved:  # another answer moved it first: undo ours, answer as a repeat
                raise _Lost
            RetirementEvent.objects.create(
                candidate=candidate,
                from_status=Candidate.Status.EXPERT,
                to_status=Candidate.Status.RETIRED,
                reason=RetirementEvent.Reason.EXPERT,
                posterior=update.posterior,
                n_votes=update.n_votes,
                vote=vote,
                user=user,
            )
            record_audit(
                user=user,
                action="expert_answer",
                target=_target(detectid),
                detail={
                    "answer": answer,
                    "is_real": EXPERT_ANSWERS[answer],
                    "vote_id": vote.pk,
                    "previous_answer": previous,
                    "posterior": update.posterior,
                    "n_votes": update.n_votes,
                    "response_ms": response_ms,
                },
            )
    except _Lost:
        candidate.refresh_from_db(fields=["status"])
        return _repeat_or_conflict(candidate=candidate, volunteer=volunteer, answer=answer)
    return ExpertAnswer(
        detectid=detectid,
        answer=answer,
        is_real=EXPERT_ANSWERS[answer],
        created=True,
        posterior=update.posterior,
    )


class _Lost(Exception):
    """Raised inside the transaction to roll it back when a concurrent answer won."""


def _expert_vote(
    *, volunteer: Volunteer, candidate: Candidate, answer: str, response_ms: int | None
) -> tuple[Vote, str | None]:
    """The expert's Vote on the candidate: new, or their earlier vote (cast as a volunteer,
    e.g. 'not sure' before the candidate went to the experts) changed to this answer.
    Returns it and the earlier answer (None when new). Keeps the volunteer's counters."""
    vote, created = Vote.objects.get_or_create(
        volunteer=volunteer,
        candidate=candidate,
        defaults={
            "answer": answer,
            "client": Vote.Client.KEYBOARD,
            "response_ms": response_ms,
            "was_gold": False,  # an expert is not being taught; the answer is the truth
        },
    )
    if created:
        count_vote(volunteer, vote, correct=None)
        return vote, None
    previous = vote.answer
    if previous != answer:
        Vote.objects.filter(pk=vote.pk).update(
            answer=answer, reason=vote.reason if answer == Vote.Answer.NO else ""
        )
        if previous == Vote.Answer.UNSURE:
            Volunteer.objects.filter(pk=volunteer.pk, n_unsure__gt=0).update(
                n_unsure=F("n_unsure") - 1
            )
        vote.answer = answer
    return vote, previous


def _repeat_or_conflict(*, candidate: Candidate, volunteer: Volunteer, answer: str) -> ExpertAnswer:
    """A candidate that is not (or no longer) in the expert queue: a repeat of this expert's
    own settled answer is a success that changes nothing; anything else is a 409."""
    state = ConsensusState.objects.filter(candidate=candidate).first()
    mine = Vote.objects.filter(volunteer=volunteer, candidate=candidate).first()
    settled = state is not None and state.expert_label is not None
    if (
        candidate.status == Candidate.Status.RETIRED
        and mine is not None
        and mine.answer == answer
        and settled
        and state.expert_label == EXPERT_ANSWERS[answer]
    ):
        return ExpertAnswer(
            detectid=candidate.detectid,
            answer=answer,
            is_real=EXPERT_ANSWERS[answer],
            created=False,
            posterior=state.posterior,
        )
    if settled:
        truth = "a real line" if state.expert_label else "not real"
        why = f"an expert already answered it ({truth})"
    else:
        why = f"it is {candidate.get_status_display()}"
    raise NotInExpertQueue(
        f"candidate {candidate.detectid} is no longer in the expert queue: {why}. "
        "Nothing was recorded; go on with the next one."
    )


# --- gold standards ---------------------------------------------------------------------

GOLD_ORDERS = {
    "detectid": ("candidate__detectid",),
    "hardest": (F("pct_correct").asc(nulls_last=True), "candidate__detectid"),
    "answers": ("-n_answers", "candidate__detectid"),
    "newest": ("-created_at", "-pk"),
}


def active_gold_counts() -> dict[str, int]:
    """Active gold standards, and how many of them are exam gold: one aggregate."""
    return GoldStandard.objects.filter(active=True).aggregate(
        n=Count("pk"), exam=Count("pk", filter=Q(exam=True))
    )


def gold_standards(*, active: bool | None = None, order: str = "detectid") -> QuerySet:
    """Gold standards with how many volunteers answered each while it was gold and the share
    they got right, counted by the database (one grouped query; 'not sure' counts as an
    answer that is not correct, as in ``votes.gold_answer_correct``)."""
    was_gold = Q(candidate__votes__was_gold=True)
    right = was_gold & (
        Q(is_real=True, candidate__votes__answer=Vote.Answer.YES)
        | Q(is_real=False, candidate__votes__answer=Vote.Answer.NO)
    )
    qs = GoldStandard.objects.select_related("candidate", "created_by").annotate(
        n_answers=Count("candidate__votes", filter=was_gold),
        n_correct=Count("candidate__votes", filter=right),
    )
    qs = qs.annotate(
        pct_correct=Case(
            When(n_answers=0, then=Value(None, output_field=FloatField())),
            default=Cast(F("n_correct"), FloatField()) * 100.0 / Cast(F("n_answers"), FloatField()),
            output_field=FloatField(),
        )
    )
    if active is not None:
        qs = qs.filter(active=active)
    return qs.order_by(*GOLD_ORDERS.get(order, GOLD_ORDERS["detectid"]))


def check_feedback(feedback: str, *, required: bool = True) -> str:
    """Feedback as stored: stripped, non-empty when required, at most FEEDBACK_MAX. It is
    plain text: pages escape it (templates autoescape, the classify page sets textContent)."""
    text = (feedback or "").strip()
    if required and not text:
        raise InvalidInput("the feedback text is required: say briefly what to look at")
    if len(text) > FEEDBACK_MAX:
        raise InvalidInput(
            f"the feedback text is {len(text)} characters; at most {FEEDBACK_MAX} are allowed"
        )
    return text


def update_gold(
    *, detectid: int, feedback: str, active: bool, user: AbstractBaseUser
) -> tuple[GoldStandard, dict]:
    """Edit a gold standard's feedback text and active flag. Returns it and what changed
    ({field: [old, new]}; empty when nothing did, and then nothing is audited)."""
    text = check_feedback(feedback)
    with transaction.atomic():
        gold = (
            GoldStandard.objects.select_for_update()
            .select_related("candidate")
            .filter(candidate__detectid=detectid)
            .first()
        )
        if gold is None:
            raise NotGold(f"candidate {detectid} is not a gold standard")
        changed = {}
        if gold.feedback != text:
            changed["feedback"] = [gold.feedback, text]
        if gold.active != bool(active):
            changed["active"] = [gold.active, bool(active)]
        if changed:
            gold.feedback, gold.active = text, bool(active)
            gold.save(update_fields=["feedback", "active"])
            record_audit(
                user=user,
                action="gold_edit",
                target=_target(detectid),
                detail={"changed": changed},
            )
    return gold, changed


def deactivate_gold(*, detectid: int, user: AbstractBaseUser) -> bool:
    """Stop using a gold standard (kept, with its answers; reactivate from its edit page).
    Returns False when it already was inactive (nothing audited)."""
    with transaction.atomic():
        gold = GoldStandard.objects.select_for_update().filter(candidate__detectid=detectid).first()
        if gold is None:
            raise NotGold(f"candidate {detectid} is not a gold standard")
        if not gold.active:
            return False
        GoldStandard.objects.filter(pk=gold.pk).update(active=False)
        forget_levels_in_force()  # an update() sends no post_save
        record_audit(
            user=user, action="gold_deactivate", target=_target(detectid), detail={"active": False}
        )
    return True


# --- flags from the gallery and the candidate pages ---------------------------------------


def parse_is_real(raw) -> bool:
    value = str(raw if raw is not None else "").strip().lower()
    if value in ("1", "true", "yes", "real", "on"):
        return True
    if value in ("0", "false", "no", "not_real", "off"):
        return False
    raise InvalidInput("is_real must be 'true' (a real line) or 'false' (not real)")


def flag_gold(
    *, detectid: int, is_real: bool, kind: str, feedback: str = "", user: AbstractBaseUser
) -> GoldStandard:
    """Make (or re-make, and reactivate) a candidate a gold standard. ``kind`` is one of the
    truth types and must agree with ``is_real``; empty feedback takes the kind's text."""
    if kind not in TRUTH_TYPES:
        raise InvalidInput(f"kind must be one of {', '.join(TRUTH_TYPES)}, not {kind!r}")
    if is_real != (kind in REAL_TYPES):
        raise InvalidInput(
            f"kind {kind!r} is {'a real line' if kind in REAL_TYPES else 'not a real line'}, "
            f"but is_real says {'real' if is_real else 'not real'}: pick a matching kind"
        )
    text = check_feedback(feedback, required=False)
    candidate = _candidate(detectid)
    with transaction.atomic():
        existed = GoldStandard.objects.filter(candidate=candidate).exists()
        gold = mark_gold(
            candidate=candidate, is_real=is_real, kind=kind, feedback=text, created_by=user
        )
        record_audit(
            user=user,
            action="gold_mark",
            target=_target(detectid),
            detail={
                "is_real": is_real,
                "kind": kind,
                "feedback": gold.feedback,
                "was_gold": existed,
                "exam": gold.exam,
            },
        )
    return gold


def flag_expert(*, detectid: int, user: AbstractBaseUser) -> bool:
    """Send a candidate to the expert queue (recorded as a manual RetirementEvent). Returns
    False when it already waits there (nothing changed, nothing audited)."""
    candidate = _candidate(detectid)
    with transaction.atomic():
        status = (
            Candidate.objects.select_for_update()
            .values_list("status", flat=True)
            .get(pk=candidate.pk)
        )
        if status == Candidate.Status.EXPERT:
            return False
        set_candidate_status(candidate_id=candidate.pk, status=Candidate.Status.EXPERT, user=user)
        record_audit(
            user=user,
            action="expert_send",
            target=_target(detectid),
            detail={"from_status": status},
        )
    return True
