"""Which candidate a volunteer sees next.

* Only active candidates (never retired or waiting for an expert), never one this volunteer
  has answered: an anti-join (NOT EXISTS) on the Vote (volunteer, candidate) unique index.
* Ordered by ``-priority`` on the ``candidate_queue`` index (status, -priority): the scan
  walks the index from the top and stops after a few unseen rows, so it never reads the
  table. The active-learning loop sets priorities; until it does, ingest's ``priority =
  -sn`` puts low S/N first.
* One of the top ``TOP_K`` unseen rows is picked at random, so volunteers asking at the same
  moment spread over several candidates instead of all piling onto one.
* Gold-standard candidates are mixed in at a rate that falls with experience
  (:func:`gold_rate`), like Zooniverse's subject selector; they are kept out of the regular
  path so the rate is what the schedule says.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from django.db.models import Exists, OuterRef, QuerySet

from labelapp.models import Candidate, GoldStandard, Volunteer, Vote

# (classifications made so far < n) -> fraction of gold; 10% after the last step.
GOLD_SCHEDULE: tuple[tuple[int, float], ...] = ((20, 0.40), (40, 0.30), (60, 0.20))
GOLD_RATE_EXPERIENCED = 0.10
TOP_K = 8
QUEUE_FIELDS = ("id", "detectid", "wave", "field")


def gold_rate(n_votes: int) -> float:
    """Fraction of gold candidates for a volunteer who has made ``n_votes`` classifications."""
    for below, rate in GOLD_SCHEDULE:
        if n_votes < below:
            return rate
    return GOLD_RATE_EXPERIENCED


def _unseen(qs: QuerySet, volunteer: Volunteer | None, field: str) -> QuerySet:
    if volunteer is None or volunteer.pk is None:
        return qs
    seen = Vote.objects.filter(volunteer_id=volunteer.pk, candidate_id=OuterRef(field))
    return qs.filter(~Exists(seen))


def queue_queryset(*, volunteer: Volunteer | None, exclude: Sequence[int] = ()) -> QuerySet:
    """Active, unseen, non-gold candidates in queue order (the query EXPLAIN checks)."""
    qs = Candidate.objects.filter(status=Candidate.Status.ACTIVE)
    qs = _unseen(qs, volunteer, "pk")
    qs = qs.filter(~Exists(GoldStandard.objects.filter(candidate_id=OuterRef("pk"), active=True)))
    if exclude:
        qs = qs.exclude(detectid__in=list(exclude))
    return qs.order_by("-priority")


def _regular(volunteer, exclude, count, rng) -> list[dict]:
    rows = list(queue_queryset(volunteer=volunteer, exclude=exclude).values(*QUEUE_FIELDS)[:TOP_K])
    return rng.sample(rows, min(count, len(rows)))


def _gold(volunteer, exclude) -> dict | None:
    # The gold set is small (hundreds to a few thousand), so a random pick over the unseen
    # ones is cheap; it is still an index anti-join, never a scan of the candidate table.
    qs = GoldStandard.objects.filter(active=True, candidate__status=Candidate.Status.ACTIVE)
    qs = _unseen(qs, volunteer, "candidate_id")
    if exclude:
        qs = qs.exclude(candidate__detectid__in=list(exclude))
    row = (
        qs.order_by("?")
        .values("candidate_id", "candidate__detectid", "candidate__wave", "candidate__field")
        .first()
    )
    if row is None:
        return None
    return {"id": row["candidate_id"], "detectid": row["candidate__detectid"],
            "wave": row["candidate__wave"], "field": row["candidate__field"]}  # fmt: skip


def next_candidates(
    *,
    volunteer: Volunteer | None,
    count: int = 1,
    exclude: Sequence[int] = (),
    rng: random.Random | None = None,
) -> list[dict]:
    """Up to ``count`` candidates for ``volunteer`` (None: someone with no votes yet).

    ``exclude``: detectids the page already holds (shown or preloaded), so they are not
    handed out twice. Returns dicts with ``id``, ``detectid``, ``wave``, ``field``; an
    empty list when nothing is left for this volunteer.
    """
    rng = rng or random
    n_votes = volunteer.n_votes if volunteer is not None else 0
    held = list(exclude)
    picked: list[dict] = []
    n_gold = sum(rng.random() < gold_rate(n_votes + k) for k in range(count))
    for _ in range(n_gold):
        row = _gold(volunteer, held)
        if row is None:
            break
        picked.append(row)
        held.append(row["detectid"])
    if len(picked) < count:
        picked += _regular(volunteer, held, count - len(picked), rng)
    rng.shuffle(picked)
    return picked


def next_candidate(*, volunteer: Volunteer | None, exclude: Sequence[int] = ()) -> dict | None:
    """The single next candidate for ``volunteer``, or None when the queue is empty for them."""
    rows = next_candidates(volunteer=volunteer, count=1, exclude=exclude)
    return rows[0] if rows else None
