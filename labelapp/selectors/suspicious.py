"""Suspicious volunteers for the console (issue #24): who, and what flagged them.

Rules (each one line of "why"; any one flags a volunteer):
  * gold: at least ``GOLD_MIN`` gold answers and fewer than ``GOLD_MAX_ACCURACY`` of them
    right (a random clicker gets half right; a liar almost none);
  * one answer: at least ``ONE_ANSWER_MIN_VOTES`` yes/no votes and one answer ``ONE_ANSWER_SHARE``
    of the time (always-yes / always-no scripts);
  * against the consensus: at least ``CONSENSUS_MIN`` answers on settled candidates (retired
    or answered by an expert) and under ``CONSENSUS_MAX_AGREEMENT`` agreeing with them;
  * against proven peers: agreeing with other proven volunteers on the same candidates
    significantly less often than chance (mlcore.aggregation.evidence.peer_disagrees, the
    rule that also takes proven status away: it catches colluders who pass gold and settle
    the labels they vote on, which the consensus rule cannot see).

:func:`flag_reasons` asks about one volunteer (a few indexed queries, used by the attack
benchmark after each batch of votes); :func:`suspicious_volunteers` lists them for the page.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import Count, Q

from labelapp.models import Candidate, Volunteer, Vote
from mlcore.aggregation.evidence import peer_disagrees

GOLD_MIN = 4
GOLD_MAX_ACCURACY = 0.5
ONE_ANSWER_MIN_VOTES = 20
ONE_ANSWER_SHARE = 0.95
CONSENSUS_MIN = 10
CONSENSUS_MAX_AGREEMENT = 0.4
PAGE_LIMIT = 200


def _gold_reason(n_gold: int, n_ok: int) -> str | None:
    if n_gold >= GOLD_MIN and n_ok < GOLD_MAX_ACCURACY * n_gold:
        return f"{n_ok} of {n_gold} gold answers right"
    return None


def _one_answer_reason(yes: int, no: int) -> str | None:
    n = yes + no
    if n >= ONE_ANSWER_MIN_VOTES and max(yes, no) >= ONE_ANSWER_SHARE * n:
        which = "yes" if yes >= no else "no"
        return f"answers '{which}' {max(yes, no) / n:.0%} of {n} times"
    return None


def _settled_agreement(volunteer_ids: list[int]) -> dict[int, tuple[int, int]]:
    """volunteer -> (answers on settled candidates, of which agreeing with the label)."""
    settled = Q(candidate__status=Candidate.Status.RETIRED) | Q(
        candidate__consensus__expert_label__isnull=False
    )
    rows = (
        Vote.objects.filter(volunteer_id__in=volunteer_ids)
        .exclude(answer=Vote.Answer.UNSURE)
        .filter(settled, candidate__consensus__isnull=False)
        .values_list("volunteer_id", "answer", "candidate__consensus__posterior",
                     "candidate__consensus__expert_label")
    )  # fmt: skip
    out: dict[int, list[int]] = {}
    for vid, answer, post, expert in rows:
        real = expert if expert is not None else post >= 0.5
        n_ok = out.setdefault(vid, [0, 0])
        n_ok[0] += 1
        n_ok[1] += (answer == Vote.Answer.YES) == real
    return {k: (v[0], v[1]) for k, v in out.items()}


def _consensus_reason(n: int, agree: int) -> str | None:
    if n >= CONSENSUS_MIN and agree < CONSENSUS_MAX_AGREEMENT * n:
        return f"agrees with {agree} of {n} settled labels"
    return None


def _peer_reason(n_peer: int, n_agree: int) -> str | None:
    if peer_disagrees(n_peer, n_agree, min_peer=settings.PEER_MIN_COMPARISONS, z=settings.PEER_Z):
        return f"agrees with proven volunteers {n_agree} of {n_peer} times (not proven)"
    return None


def _model_reason(n_model: int, n_agree: int) -> str | None:
    if peer_disagrees(n_model, n_agree, min_peer=settings.MODEL_MIN_COMPARISONS, z=settings.PEER_Z):
        return f"agrees with the model's confident calls {n_agree} of {n_model} times (not proven)"
    return None


def flag_reasons(volunteer: Volunteer) -> list[str]:
    """Why ``volunteer`` looks suspicious (empty: it does not)."""
    why = [_gold_reason(volunteer.n_gold, volunteer.n_gold_correct)]
    counts = Vote.objects.filter(volunteer=volunteer).aggregate(
        yes=Count("pk", filter=Q(answer=Vote.Answer.YES)),
        no=Count("pk", filter=Q(answer=Vote.Answer.NO)),
    )
    why.append(_one_answer_reason(counts["yes"], counts["no"]))
    n, agree = _settled_agreement([volunteer.pk]).get(volunteer.pk, (0, 0))
    why.append(_consensus_reason(n, agree))
    why.append(_peer_reason(volunteer.n_peer, volunteer.n_peer_agree))
    why.append(_model_reason(volunteer.n_model, volunteer.n_model_agree))
    return [w for w in why if w]


def suspicious_volunteers(*, limit: int = PAGE_LIMIT) -> list[dict]:
    """Flagged volunteers, most votes first: id, name, votes, gold, reasons."""
    candidates = (
        Volunteer.objects.filter(n_votes__gt=0)
        .annotate(
            yes=Count("votes", filter=Q(votes__answer=Vote.Answer.YES)),
            no=Count("votes", filter=Q(votes__answer=Vote.Answer.NO)),
        )
        .values(
            "pk",
            "user__username",
            "n_votes",
            "n_gold",
            "n_gold_correct",
            "n_peer",
            "n_peer_agree",
            "n_model",
            "n_model_agree",
            "yes",
            "no",
        )
        .order_by("-n_votes")
    )
    rows = list(candidates[: limit * 20])
    agreement = _settled_agreement([r["pk"] for r in rows])
    out = []
    for r in rows:
        why = [
            _gold_reason(r["n_gold"], r["n_gold_correct"]),
            _one_answer_reason(r["yes"], r["no"]),
            _consensus_reason(*agreement.get(r["pk"], (0, 0))),
            _peer_reason(r["n_peer"], r["n_peer_agree"]),
            _model_reason(r["n_model"], r["n_model_agree"]),
        ]
        why = [w for w in why if w]
        if why:
            out.append(
                {
                    "volunteer": r["pk"],
                    "name": r["user__username"] or f"anonymous #{r['pk']}",
                    "n_votes": r["n_votes"],
                    "gold": f"{r['n_gold_correct']}/{r['n_gold']}",
                    "why": "; ".join(why),
                }
            )
        if len(out) >= limit:
            break
    return out
