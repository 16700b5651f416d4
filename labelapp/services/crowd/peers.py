"""Proven status from agreement with peers, and re-checking what a voter settled.

A proven volunteer who agrees with other proven volunteers far less often than chance
(mlcore.aggregation.evidence.peer_disagrees) is not proven any more: colluders who pass gold
and lie elsewhere. Live consensus (services.crowd.consensus) counts the comparisons of each
new vote; :func:`credit_peers` gives the earlier voters theirs after commit; when a voter
loses proven status, :func:`recheck_settled_by` re-opens what is no longer settled without
it. Voiding a volunteer's votes (services.crowd.moderation) re-opens with the same
:func:`reopen_if_unsettled`. The other way round, when a volunteer's gold answers prove them,
:func:`recheck_on_promotion` re-counts what they voted on while unproven.
"""

from __future__ import annotations

from contextlib import contextmanager

from django.conf import settings
from django.db import connection, transaction

from labelapp.models import Candidate, ConsensusState, RetirementEvent, Volunteer, Vote
from labelapp.services.crowd.consensus import (
    passes_site_probation,
    proof_rule,
    update_consensus,
)
from labelapp.services.operations.audit import record_audit
from mlcore.aggregation.evidence import is_proven


def credit_peers(credits: list, *, sign: int) -> None:
    """Add (sign=+1) or take back (-1) peer comparisons ``[[volunteer_id, agreed], ...]``
    that a proven vote gave the earlier voters on its candidate. After the vote's commit,
    one row per statement, each statement its own transaction (autocommit: no BEGIN and
    COMMIT round trips around it), so no transaction ever holds two volunteers' rows. A
    voter this makes disagree with proven peers significantly
    (mlcore.aggregation.evidence.peer_disagrees) loses proven status, and what they settled
    is re-checked (:func:`recheck_settled_by`)."""

    rule = proof_rule()

    def proven(row) -> bool:
        return is_proven(
            row[0], row[1], n_peer=row[2], n_peer_agree=row[3], n_model=row[4],
            n_model_agree=row[5], probation_passed=row[6], **rule,
        )  # fmt: skip

    table = connection.ops.quote_name(Volunteer._meta.db_table)
    with _fast_commits():
        for volunteer_id, agreed in credits:
            with connection.cursor() as cur:  # one UPDATE ... RETURNING: atomic alone
                cur.execute(
                    f"UPDATE {table} SET n_peer = n_peer + %s, "  # noqa: S608
                    "n_peer_agree = n_peer_agree + %s WHERE id = %s RETURNING n_exam, "
                    "n_exam_correct, n_peer, n_peer_agree, n_model, n_model_agree, "
                    "probation_passed",
                    [sign, sign * agreed, volunteer_id],
                )
                after = cur.fetchone()
                if after is None:  # the volunteer is gone
                    continue
                before = (after[0], after[1], after[2] - sign, after[3] - sign * agreed, *after[4:])
            if sign > 0 and proven(before) and not proven(after):
                with transaction.atomic():  # savepoints; rare (a demotion)
                    recheck_settled_by(volunteer_id=volunteer_id)
            elif sign < 0 and after[6]:  # a credit taken back: was the pass earned without it?
                with transaction.atomic():
                    revoke_probation_if_unearned(volunteer_id=volunteer_id)
            elif sign > 0 and not after[6] and passes_site_probation(*after[2:6]):
                # this credit passed probation (kept from now on; a credit taken back never
                # sets it): once per volunteer
                Volunteer.objects.filter(pk=volunteer_id).update(probation_passed=True)
                if proven((*after[:6], True)) and not proven(before):
                    recheck_on_promotion(volunteer_id=volunteer_id)  # it proved them


def revoke_probation_if_unearned(*, volunteer_id: int) -> bool:
    """After comparisons were taken back (the volunteer's own vote undone, or a peer's vote
    that credited them): a kept probation pass whose checks no longer pass
    (:func:`mlcore.aggregation.evidence.passes_probation`) is cleared, and if that leaves
    them unproven, what they settled is re-checked. Without this, a pass could rest on a
    comparison that no longer exists. The cost: a volunteer whose running checks dipped
    under the bar since they passed also loses the pass here (undo is rare, and the next
    passing comparison gives it back). Returns whether the pass was cleared. Runs in the
    caller's transaction."""
    vol = Volunteer.objects.select_for_update().filter(pk=volunteer_id).first()
    if vol is None or not vol.probation_passed or not settings.PROOF_MIN_CHECKS:
        return False  # (probation off: a pass is not judged)
    if passes_site_probation(vol.n_peer, vol.n_peer_agree, vol.n_model, vol.n_model_agree):
        return False
    was_proven = is_proven_volunteer(vol)
    Volunteer.objects.filter(pk=volunteer_id).update(probation_passed=False)
    vol.probation_passed = False
    if was_proven and not is_proven_volunteer(vol):
        recheck_settled_by(volunteer_id=volunteer_id)
    return True


@contextmanager
def _fast_commits():
    """On PostgreSQL, the credits' one-row commits do not wait for the WAL flush
    (``synchronous_commit = off`` for this session, then back): a vote credits up to a
    dozen earlier voters, and a flush per credit was most of a vote's latency
    (bench/bench_votes.py). A crash can lose the last credits of a fraction of a second:
    counters, not votes (the vote's own commit stays synchronous), and never inconsistent
    ones. Not while an outer transaction is open: then the caller's commit decides."""
    pg = connection.vendor == "postgresql" and not connection.in_atomic_block
    if pg:
        with connection.cursor() as cur:
            cur.execute("SET synchronous_commit = off")
    try:
        yield
    finally:
        if pg:
            with connection.cursor() as cur:
                cur.execute("RESET synchronous_commit")


def recheck_settled_by(*, volunteer_id: int) -> list[int]:
    """The volunteer just lost proven status (they disagree with proven peers far more
    often than chance: mlcore.aggregation.evidence.peer_disagrees). Every non-gold candidate
    they voted on that votes retired is recomputed without their proof and re-opened where
    it is no longer settled (reason ``recheck``); one audit record names them. Returns the
    re-opened detectids. Runs in the caller's transaction (the vote that demoted them)."""
    retired = list(
        Vote.objects.filter(
            volunteer_id=volunteer_id,
            was_gold=False,
            candidate__status=Candidate.Status.RETIRED,
        )
        .order_by("candidate_id")
        .values_list("candidate_id", flat=True)
    )
    reopened = [
        cid
        for cid in retired
        if reopen_if_unsettled(
            candidate_id=cid, user=None, reason=RetirementEvent.Reason.PEER_RECHECK
        )
    ]
    detectids = dict(Candidate.objects.filter(pk__in=reopened).values_list("pk", "detectid"))
    record_audit(
        user=None,
        action="peer_demotion",
        target=f"volunteer:{volunteer_id}",
        detail={"rechecked": len(retired), "reopened": [detectids[c] for c in reopened]},
    )
    return [detectids[c] for c in reopened]


def is_proven_volunteer(volunteer: Volunteer, *, n_exam=None, n_exam_correct=None) -> bool:
    """Is ``volunteer`` proven (mlcore.aggregation.evidence.is_proven) with its exam gold
    answers, or with the exam counts given instead?"""
    n_exam = volunteer.n_exam if n_exam is None else n_exam
    right = volunteer.n_exam_correct if n_exam_correct is None else n_exam_correct
    return bool(
        is_proven(
            n_exam,
            right,
            n_peer=volunteer.n_peer,
            n_peer_agree=volunteer.n_peer_agree,
            n_model=volunteer.n_model,
            n_model_agree=volunteer.n_model_agree,
            probation_passed=volunteer.probation_passed,
            **proof_rule(),
        )
    )


def just_proven_by_gold(volunteer: Volunteer, *, n_exam_before: int, right_before: int) -> bool:
    """Did the exam gold answer just counted (the in-memory counters are after it) make the
    volunteer proven? Peer and model comparisons as loaded with the volunteer."""
    before = is_proven_volunteer(volunteer, n_exam=n_exam_before, n_exam_correct=right_before)
    return is_proven_volunteer(volunteer) and not before


RECHECK_MAX = 100  # candidates re-counted in the promoting request (~4 queries each)


def recheck_on_promotion(*, volunteer_id: int) -> int:
    """The volunteer's gold answers just proved them: their earlier votes, cast while they
    were unproven, now count in full (services.crowd.consensus counts proof at recompute
    time), but the candidates they voted on are recomputed only when another vote arrives.
    Recompute those still open now -- active, or waiting for an expert without an answer
    (sent there at the vote cap while the evidence was unproven) -- so what is now settled
    retires at once instead of drawing more votes. Each candidate in its own short
    transaction, after the promoting vote committed. Returns how many retired.

    In a fresh campaign every volunteer starts unproven at the same time, and the queue's top
    candidates took up to the vote cap from newcomers in their first minutes: this is most of
    what proving costs honest newcomers (docs/security.md)."""
    open_ = (Candidate.Status.ACTIVE, Candidate.Status.EXPERT)
    # Their latest RECHECK_MAX votes (this runs in the promoting vote's request); anything
    # older waits for its next vote or the batch aggregation run, which settles it the same.
    ids = list(
        Vote.objects.filter(volunteer_id=volunteer_id, was_gold=False, candidate__status__in=open_)
        .order_by("-pk")
        .values_list("candidate_id", flat=True)[:RECHECK_MAX]
    )
    ids.sort()  # candidate order, as every other recompute takes the consensus locks
    retired = 0
    for cid in ids:
        with transaction.atomic():
            update = update_consensus(candidate_id=cid, settle_expert=True)
        retired += update.changed_status and update.status == Candidate.Status.RETIRED
    return retired


def reopen_if_unsettled(
    *, candidate_id: int, user, reason: str = RetirementEvent.Reason.MANUAL
) -> bool:
    """Recompute the candidate; re-open it if it was retired by votes and the remaining
    votes no longer retire it. True when re-opened."""
    state = ConsensusState.objects.filter(candidate_id=candidate_id).first()
    status = Candidate.objects.filter(pk=candidate_id).values_list("status", flat=True).first()
    if status != Candidate.Status.RETIRED or (state and state.expert_label is not None):
        update_consensus(candidate_id=candidate_id)  # active/expert: just the new posterior
        return False
    sid = transaction.savepoint()
    Candidate.objects.filter(pk=candidate_id).update(status=Candidate.Status.ACTIVE)
    result = update_consensus(candidate_id=candidate_id)
    if result.status == Candidate.Status.RETIRED:
        transaction.savepoint_rollback(sid)  # still settled without the voided votes: keep
        update_consensus(candidate_id=candidate_id)  # its retirement, with the new posterior
        return False
    transaction.savepoint_commit(sid)
    RetirementEvent.objects.create(
        candidate_id=candidate_id,
        from_status=Candidate.Status.RETIRED,
        to_status=Candidate.Status.ACTIVE,
        reason=reason,
        user=user if getattr(user, "is_authenticated", False) else None,
        posterior=result.posterior,
        n_votes=result.n_votes,
    )
    return True
