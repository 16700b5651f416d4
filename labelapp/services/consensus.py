"""The live path from a vote to a label: recompute, decide retirement, learn from gold.

After every new vote (``labelapp.services.votes.after_vote``) the candidate's posterior is
recomputed from *all* its votes with the current skills, under a row lock on the candidate:

    log-odds = logit(class prior of its regime) + sum over yes/no votes of the vote's LLR

So the live posterior never drifts from its votes, a batch run's new skills take effect
at the next vote, an undone vote simply disappears from the sum, and two concurrent votes
on one candidate are serialised by the lock (the second sees the first). A candidate has
at most RETIRE_MAX_VOTES votes, so this is a handful of rows per vote.

Gold candidates are never retired by votes (they keep teaching); a vote on one updates the
volunteer's skill in that regime instead (Beta counts with the known truth). An expert's
answer (staff or the EXPERT_GROUP) settles the label at once.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db import transaction

from labelapp.models import (
    AggregationRun,
    Candidate,
    ConsensusState,
    GoldStandard,
    RetirementEvent,
    Volunteer,
    VolunteerSkill,
    Vote,
)
from mlcore.aggregation import RetirementRule, log_odds_of, posterior_of, skill_update, vote_llr
from mlcore.aggregation import regime_index as _regime_index

# Pseudo-counts of the prior a volunteer's skill starts from (the default skill times this).
PRIOR_PSEUDO_VOTES = 4.0


def retirement_rule() -> RetirementRule:
    return RetirementRule(
        p_real_hi=settings.RETIRE_P_HI,
        p_real_lo=settings.RETIRE_P_LO,
        min_votes=settings.RETIRE_MIN_VOTES,
        max_votes=settings.RETIRE_MAX_VOTES,
    )


def regime_of(sn: float) -> int:
    return int(_regime_index([sn])[0])


@dataclass(frozen=True)
class Population:
    """What we assume of a volunteer we have not measured, and P(real) per regime."""

    sensitivity: tuple[float, float]
    specificity: tuple[float, float]
    class_prior: tuple[float, float]


def population() -> Population:
    """From the latest finished batch run, else the configured defaults."""
    run = (
        AggregationRun.objects.filter(status=AggregationRun.Status.DONE)
        .only("typical_skill", "class_prior")
        .first()
    )
    if run and run.typical_skill and run.class_prior:
        return Population(
            sensitivity=tuple(run.typical_skill["sensitivity"]),
            specificity=tuple(run.typical_skill["specificity"]),
            class_prior=tuple(run.class_prior),
        )
    s, c = settings.DEFAULT_SENSITIVITY, settings.DEFAULT_SPECIFICITY
    return Population(sensitivity=(s, s), specificity=(c, c), class_prior=(0.5, 0.5))


def _prior_skill(pop: Population, regime: int) -> dict[str, float]:
    s, c, m = pop.sensitivity[regime], pop.specificity[regime], PRIOR_PSEUDO_VOTES
    return {
        "sens_alpha": s * m,
        "sens_beta": (1 - s) * m,
        "spec_alpha": c * m,
        "spec_beta": (1 - c) * m,
    }


def is_expert(volunteer: Volunteer) -> bool:
    user = volunteer.user if volunteer.user_id else None
    if user is None:
        return False
    return user.is_staff or user.groups.filter(name=settings.EXPERT_GROUP).exists()


@dataclass(frozen=True)
class ConsensusUpdate:
    posterior: float
    n_votes: int
    status: str
    changed_status: bool


def record_vote(*, vote: Vote) -> ConsensusUpdate | None:
    """Fold one new vote in: skill learning for gold, else recompute + retirement."""
    candidate = vote.candidate
    gold = GoldStandard.objects.filter(candidate_id=candidate.pk, active=True).first()
    if gold is not None:
        if vote.answer != Vote.Answer.UNSURE:
            _learn_from_gold(vote=vote, regime=regime_of(candidate.sn), truth=gold.is_real, sign=+1)
        return None
    return update_consensus(candidate_id=candidate.pk, trigger=vote)


def forget_vote(*, vote: Vote) -> ConsensusUpdate | None:
    """Undo of a vote (already deleted): reverse its gold learning or recompute."""
    gold = GoldStandard.objects.filter(candidate_id=vote.candidate_id, active=True).first()
    if gold is not None:
        if vote.answer != Vote.Answer.UNSURE:
            _learn_from_gold(
                vote=vote, regime=regime_of(vote.candidate.sn), truth=gold.is_real, sign=-1
            )
        return None
    return update_consensus(candidate_id=vote.candidate_id, trigger=None)


def _learn_from_gold(*, vote: Vote, regime: int, truth: bool, sign: int) -> None:
    with transaction.atomic():
        skill, _ = VolunteerSkill.objects.select_for_update().get_or_create(
            volunteer_id=vote.volunteer_id,
            regime=regime,
            defaults=_prior_skill(population(), regime),
        )
        label = 1 if vote.answer == Vote.Answer.YES else 0
        (sa, sb), (ca, cb) = skill_update((0.0, 0.0), (0.0, 0.0), 1.0 if truth else 0.0, label)
        skill.sens_alpha += sign * sa
        skill.sens_beta += sign * sb
        skill.spec_alpha += sign * ca
        skill.spec_beta += sign * cb
        skill.n_votes = max(0, skill.n_votes + sign)
        skill.save()


def update_consensus(*, candidate_id: int, trigger: Vote | None = None) -> ConsensusUpdate:
    """Recompute one candidate's live posterior from its votes and apply the retirement rule."""
    pop = population()
    rule = retirement_rule()
    with transaction.atomic():
        # Serialise on the candidate's ConsensusState row, not the Candidate row: a FOR UPDATE
        # on a candidate would block (and can deadlock with) every FK check against it --
        # vote inserts, label inserts -- while this row is touched by nothing else but the
        # batch run, which updates such rows in id order in one statement series.
        ConsensusState.objects.bulk_create(
            [ConsensusState(candidate_id=candidate_id, posterior=0.5, n_votes=0)],
            ignore_conflicts=True,
        )
        state = ConsensusState.objects.select_for_update().get(candidate_id=candidate_id)
        candidate = Candidate.objects.only("id", "sn", "status").get(pk=candidate_id)
        regime = regime_of(candidate.sn)
        votes = list(
            Vote.objects.filter(candidate_id=candidate_id).select_related("volunteer__user")
        )
        binary = [v for v in votes if v.answer != Vote.Answer.UNSURE]
        skills = {
            s.volunteer_id: s
            for s in VolunteerSkill.objects.filter(
                volunteer_id__in=[v.volunteer_id for v in binary], regime=regime
            )
        }
        log_odds = log_odds_of(pop.class_prior[regime])
        expert_label = None
        for v in binary:
            label = 1 if v.answer == Vote.Answer.YES else 0
            if is_expert(v.volunteer):
                expert_label = bool(label)
            skill = skills.get(v.volunteer_id)
            sens = skill.sensitivity if skill else pop.sensitivity[regime]
            spec = skill.specificity if skill else pop.specificity[regime]
            log_odds += vote_llr(sens, spec, label)
        posterior = posterior_of(log_odds)
        if expert_label is not None:
            posterior = 1.0 if expert_label else 0.0
        state.posterior, state.n_votes = posterior, len(binary)
        state.n_unsure, state.expert_label = len(votes) - len(binary), expert_label
        state.save()
        old = candidate.status
        if expert_label is not None:
            new, reason = Candidate.Status.RETIRED, RetirementEvent.Reason.EXPERT
        else:
            new = rule.decide_one(posterior, len(binary))
            reason = (
                RetirementEvent.Reason.MAX_VOTES
                if new == Candidate.Status.EXPERT
                else RetirementEvent.Reason.CONFIDENT
            )
        changed = False
        if new != old and old == Candidate.Status.ACTIVE:
            # conditional: only the transaction that moves it out of the queue records it
            changed = bool(
                Candidate.objects.filter(pk=candidate_id, status=Candidate.Status.ACTIVE).update(
                    status=new
                )
            )
        if changed:
            RetirementEvent.objects.create(
                candidate_id=candidate_id,
                from_status=old,
                to_status=new,
                reason=reason,
                posterior=posterior,
                n_votes=len(binary),
                vote=trigger,
            )
    return ConsensusUpdate(
        posterior=posterior,
        n_votes=len(binary),
        status=new if changed else old,
        changed_status=changed,
    )


def set_candidate_status(*, candidate_id: int, status: str, user=None) -> RetirementEvent:
    """A scientist retires, un-retires or sends a candidate to the experts (recorded)."""
    if status not in Candidate.Status.values:
        raise ValueError(f"status must be one of {Candidate.Status.values}, not {status!r}")
    with transaction.atomic():
        candidate = Candidate.objects.select_for_update().get(pk=candidate_id)
        state = ConsensusState.objects.filter(candidate_id=candidate_id).first()
        event = RetirementEvent.objects.create(
            candidate_id=candidate_id,
            from_status=candidate.status,
            to_status=status,
            reason=RetirementEvent.Reason.MANUAL,
            user=user,
            posterior=state.posterior if state else None,
            n_votes=state.n_votes if state else 0,
        )
        Candidate.objects.filter(pk=candidate_id).update(status=status)
    return event
