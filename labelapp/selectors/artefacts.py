"""Level-3 artefact-type answers as training targets: one per candidate.

Read by the follow-up task's service (``services.crowd.levels``, which re-exports it), the
CSV export and the training service (``services.learning.training``), which joins them to
its training rows by detectid.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from labelapp.models import ArtefactAnswer, Candidate


@dataclass(frozen=True)
class ArtefactTarget:
    candidate_id: int
    detectid: int
    kind: str  # the most named kind (ties: the first in ArtefactAnswer.Kind's order)
    share: float  # the fraction of the candidate's answers naming it
    n_answers: int
    counts: dict[str, int]


def artefact_targets(*, min_answers: int = 1) -> list[ArtefactTarget]:
    """One target per candidate with at least ``min_answers`` level-3 answers, in detectid
    order: the most named artefact type and its share (a CNN can train on the kind, weighted
    by the share). Joined by candidate id, never by position."""
    order = {k: i for i, k in enumerate(ArtefactAnswer.Kind.values)}
    per: dict[int, Counter] = {}
    for cid, kind in ArtefactAnswer.objects.values_list("candidate_id", "kind"):
        per.setdefault(cid, Counter())[kind] += 1
    detectids = dict(Candidate.objects.filter(pk__in=per).values_list("pk", "detectid"))
    out = []
    for cid, counts in per.items():
        n = sum(counts.values())
        if n < min_answers or cid not in detectids:
            continue
        kind = min(counts, key=lambda k: (-counts[k], order[k]))
        out.append(ArtefactTarget(cid, detectids[cid], kind, counts[kind] / n, n, dict(counts)))
    return sorted(out, key=lambda t: t.detectid)
