"""Batch aggregation: all votes -> Dawid-Skene (or majority) -> labels, skills, retirements.

``aggregate_votes`` snapshots the vote table at ``max_vote_id``, runs the maths in
:mod:`mlcore.aggregation` (sparse, vectorised), and writes in one transaction:
an :class:`AggregationRun`, one :class:`Label` per voted candidate, every volunteer's
:class:`VolunteerSkill` per regime, and the refreshed live posteriors. Votes that arrive
while it runs are not lost: the live posterior of a candidate that got a vote after the
snapshot is left alone (the next vote recomputes it with the new skills), and the next run
includes them.
"""

from __future__ import annotations

import logging
import math
import time

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Q

from labelapp.errors import InvalidInput
from labelapp.models import (
    AggregationRun,
    Candidate,
    CandidateScore,
    ConsensusState,
    GoldStandard,
    Label,
    ModelVersion,
    RetirementEvent,
    Volunteer,
    VolunteerSkill,
    Vote,
)
from labelapp.services.bulk import insert_rows, update_rows
from labelapp.services.crowd.consensus import proof_rule, retirement_rule
from mlcore.aggregation import (
    ACTIVE,
    RETIRED,
    VoteTable,
    dawid_skene,
    expected_information,
    majority_vote,
    regime_index,
)
from mlcore.aggregation.evidence import is_proven, proven_net_votes

logger = logging.getLogger(__name__)


class AggregationError(InvalidInput):
    pass


def _load_votes(max_vote_id: int) -> dict[str, np.ndarray]:
    rows = (
        Vote.objects.filter(pk__lte=max_vote_id)
        .exclude(answer=Vote.Answer.UNSURE)
        .order_by("candidate_id")
        .values_list("candidate_id", "volunteer_id", "answer", "candidate__sn")
    )
    data = list(rows.iterator(chunk_size=20000))
    if not data:
        return {}
    cand, vol, answer, sn = zip(*data, strict=True)
    return {
        "candidate": np.asarray(cand, np.int64),
        "volunteer": np.asarray(vol, np.int64),
        "label": np.where(np.asarray(answer) == Vote.Answer.YES, 1, 0).astype(np.int8),
        "sn": np.asarray(sn, np.float64),
    }


def aggregate_votes(
    *,
    method: str = AggregationRun.Method.DAWID_SKENE,
    by_regime: bool = True,
    model_version: ModelVersion | None = None,
    retire: bool = True,
) -> AggregationRun:
    """Aggregate every yes/no vote cast so far. Returns the finished run."""
    if method not in AggregationRun.Method.values:
        raise AggregationError(f"method must be one of {AggregationRun.Method.values}")
    t0 = time.perf_counter()
    max_vote_id = Vote.objects.aggregate(m=Max("pk"))["m"] or 0
    run = AggregationRun.objects.create(
        method=method, by_regime=by_regime, model_version=model_version, max_vote_id=max_vote_id
    )
    try:
        _run(run, max_vote_id=max_vote_id, retire=retire)
    except Exception as exc:
        AggregationRun.objects.filter(pk=run.pk).update(
            status=AggregationRun.Status.FAILED,
            error=repr(exc)[:2000],
            seconds=time.perf_counter() - t0,
        )
        raise
    run.seconds = time.perf_counter() - t0
    AggregationRun.objects.filter(pk=run.pk).update(seconds=run.seconds)
    logger.info(
        "aggregation run %s (%s): votes up to id %s, %s candidates, %.1f s",
        run.pk, run.method, max_vote_id, run.n_candidates, run.seconds,
    )  # fmt: skip
    return run


def _run(run: AggregationRun, *, max_vote_id: int, retire: bool) -> None:
    raw = _load_votes(max_vote_id)
    if not raw:
        run.status = AggregationRun.Status.DONE
        run.save()
        return
    cand_ids, cand_idx = np.unique(raw["candidate"], return_inverse=True)
    vol_ids, vol_idx = np.unique(raw["volunteer"], return_inverse=True)
    sn = np.zeros(len(cand_ids))
    sn[cand_idx] = raw["sn"]
    regime = regime_index(sn) if run.by_regime else None
    votes = VoteTable.from_arrays(
        cand_idx, vol_idx, raw["label"], n_candidates=len(cand_ids), n_volunteers=len(vol_ids)
    )
    gold_rows = GoldStandard.objects.filter(active=True, candidate_id__in=cand_ids.tolist())
    gold = {int(np.searchsorted(cand_ids, g.candidate_id)): int(g.is_real) for g in gold_rows}
    if run.method == AggregationRun.Method.MAJORITY:
        result = majority_vote(votes, regime=regime)
    else:
        scores = _model_scores(run.model_version, cand_ids)
        result = dawid_skene(votes, regime=regime, gold=gold or None, model_scores=scores)
    skills = result.skills
    typical = {
        "sensitivity": [float(x) for x in np.atleast_1d(skills.typical()[0])],
        "specificity": [float(x) for x in np.atleast_1d(skills.typical()[1])],
    }
    reg_for_info = regime if regime is not None else np.zeros(len(cand_ids), np.int64)
    sens_t = np.resize(np.asarray(typical["sensitivity"]), 2)
    spec_t = np.resize(np.asarray(typical["specificity"]), 2)
    info = expected_information(
        result.posterior, sensitivity=sens_t, specificity=spec_t, regime=reg_for_info
    )
    with transaction.atomic():
        insert_rows(
            Label,
            ("run", "candidate", "posterior", "is_real", "confidence", "n_votes", "info_gain"),
            zip(
                [run.pk] * len(cand_ids),
                cand_ids.tolist(),
                result.posterior.tolist(),
                (result.posterior > 0.5).tolist(),
                result.confidence.tolist(),
                result.n_votes.tolist(),
                info.info_gain.tolist(),
                strict=True,
            ),
        )
        _write_skills(run, vol_ids, skills)
        # Live posteriors: only where no vote arrived since the snapshot (same vote count).
        update_rows(
            ConsensusState,
            ("posterior",),
            ("candidate", "n_votes"),
            zip(result.posterior.tolist(), cand_ids.tolist(), result.n_votes.tolist(), strict=True),
        )
        support = _proven_support(raw, cand_idx, vol_ids, vol_idx, len(cand_ids))
        n_retired = _retire_confident(run, cand_ids, result, gold, support) if retire else 0
        run.status = AggregationRun.Status.DONE
        run.n_votes, run.n_candidates, run.n_volunteers = (
            len(raw["label"]),
            len(cand_ids),
            len(vol_ids),
        )
        run.iterations, run.converged = result.iterations, bool(result.converged)
        run.class_prior = [float(x) for x in np.resize(result.class_prior, 2)]
        run.typical_skill = {"sensitivity": sens_t.tolist(), "specificity": spec_t.tolist()}
        run.n_retired = n_retired
        run.save()


def _model_scores(model_version: ModelVersion | None, cand_ids: np.ndarray) -> np.ndarray | None:
    if model_version is None:
        return None
    scores = np.full(len(cand_ids), np.nan)
    rows = CandidateScore.objects.filter(
        model_version=model_version, candidate_id__in=cand_ids.tolist()
    ).values_list("candidate_id", "prob")
    data = np.asarray(list(rows.iterator(chunk_size=20000)), dtype=np.float64)
    if len(data):  # every row matches: the query asked only for these candidates
        scores[np.searchsorted(cand_ids, data[:, 0].astype(np.int64))] = data[:, 1]
    return scores


def _write_skills(run: AggregationRun, vol_ids: np.ndarray, skills) -> None:
    n_reg = skills.sens_alpha.shape[1]
    objs = [
        VolunteerSkill(
            volunteer_id=int(v),
            regime=r,
            run=run,
            sens_alpha=float(skills.sens_alpha[j, r]),
            sens_beta=float(skills.sens_beta[j, r]),
            spec_alpha=float(skills.spec_alpha[j, r]),
            spec_beta=float(skills.spec_beta[j, r]),
            n_votes=int(skills.n_votes[j, r]),
        )
        for j, v in enumerate(vol_ids.tolist())
        for r in range(n_reg)
    ]
    VolunteerSkill.objects.bulk_create(
        objs,
        batch_size=5000,
        update_conflicts=True,
        unique_fields=["volunteer", "regime"],
        update_fields=["sens_alpha", "sens_beta", "spec_alpha", "spec_beta", "n_votes", "run"],
    )


def _proven_support(raw, cand_idx, vol_ids, vol_idx, n_candidates: int) -> np.ndarray:
    """Per candidate: proven yes votes minus proven no votes (mlcore.aggregation.evidence).
    Dawid-Skene learns skills from agreement, so a crowd of sybils agreeing with each other
    would look skilled to it: only volunteers proven by exam gold (and experts) give support."""
    rows = Volunteer.objects.filter(pk__in=vol_ids.tolist()).values_list(
        "pk",
        "n_exam",
        "n_exam_correct",
        "n_peer",
        "n_peer_agree",
        "n_model",
        "n_model_agree",
        "probation_passed",
    )
    counts = np.zeros(
        (7, len(vol_ids))
    )  # exam gold, right; peer comparisons, agreed; model, agreed; probation passed
    for pk, *c in rows.iterator(chunk_size=20000):
        counts[:, int(np.searchsorted(vol_ids, pk))] = c
    proven = is_proven(
        counts[0],
        counts[1],
        n_peer=counts[2],
        n_peer_agree=counts[3],
        n_model=counts[4],
        n_model_agree=counts[5],
        probation_passed=counts[6].astype(bool),
        **proof_rule(),
    )
    experts = Volunteer.objects.filter(pk__in=vol_ids.tolist()).filter(
        Q(user__is_staff=True) | Q(user__groups__name=settings.EXPERT_GROUP)
    )
    for pk in experts.values_list("pk", flat=True):
        proven[int(np.searchsorted(vol_ids, pk))] = True
    return proven_net_votes(cand_idx, raw["label"], proven[vol_idx], n_candidates)


def _retire_confident(run, cand_ids, result, gold, support=None) -> int:
    """Open, non-gold candidates the run found confident are retired (and recorded) -- only
    where the proven votes lean the same way (``support``: proven yes minus no). Open: active,
    or waiting for an expert with no expert answer yet (sent there uncertain at the vote cap
    while most of its voters were unproven; proven since, their votes may settle it)."""
    decision = retirement_rule().decide(result.posterior, result.n_votes)
    if support is not None:
        # as many net proven votes as PROVEN_SUPPORT_LLR is worth at the default skill
        need = max(1, math.ceil(settings.PROVEN_SUPPORT_LLR / math.log(3) - 1e-9))
        agrees = np.where(result.posterior >= 0.5, support >= need, support <= -need)
        decision = np.where(agrees, decision, ACTIVE)  # unsupported: not retired here
    pick = np.flatnonzero(decision == RETIRED)
    pick = np.array([i for i in pick.tolist() if i not in gold], dtype=np.int64)
    if not len(pick):
        return 0
    ids = cand_ids[pick].tolist()
    Status = Candidate.Status
    open_ = Q(status=Status.ACTIVE) | Q(status=Status.EXPERT, consensus__expert_label__isnull=True)
    was = dict(
        Candidate.objects.filter(open_, pk__in=ids)
        .select_for_update(no_key=True, of=("self",))  # does not block FK checks of votes
        .values_list("pk", "status")
    )
    chosen = [i for i in pick.tolist() if int(cand_ids[i]) in was]
    Candidate.objects.filter(
        pk__in=[int(cand_ids[i]) for i in chosen], status__in=(Status.ACTIVE, Status.EXPERT)
    ).update(status=Status.RETIRED)
    RetirementEvent.objects.bulk_create(
        [
            RetirementEvent(
                candidate_id=int(cand_ids[i]),
                from_status=was[int(cand_ids[i])],
                to_status="retired",
                reason=RetirementEvent.Reason.BATCH,
                posterior=float(result.posterior[i]),
                n_votes=int(result.n_votes[i]),
                run=run,
            )
            for i in chosen
        ],
        batch_size=5000,
    )
    return len(chosen)
