"""Read queries of the science API (labelapp.services.science.api): catalogue pages and
vote pages, each one keyset page (``key > after ORDER BY key LIMIT n``).

A keyset page depends only on the rows' keys, never on their position: rows written,
scored or voted on between two pages cannot shift a row into the next page twice or out of
it (an OFFSET page can). The key is ``detectid`` for the catalogue (unique) and the vote's
id for votes.
"""

from __future__ import annotations

from django.db.models import FilteredRelation, Q

from labelapp.models import AggregationRun, Candidate, RoundCandidate, Vote
from labelapp.selectors.volunteers import pseudonym

# Candidate columns, then the joined ones under the API's names.
_CANDIDATE_FIELDS = (
    "detectid",
    "ra",
    "dec",
    "wave",
    "sn",
    "flux",
    "flux_err",
    "linewidth",
    "field",
    "status",
    "cutout_flags",
)
_JOINED = {
    "s__prob": "cnn_prob",
    "s__entropy": "cnn_entropy",
    "s__bald": "cnn_bald",
    "l__is_real": "label",
    "l__posterior": "label_posterior",
    "l__n_votes": "label_n_votes",
    "consensus__posterior": "consensus_posterior",
    "consensus__n_votes": "consensus_n_votes",
    "consensus__n_unsure": "consensus_n_unsure",
    "consensus__expert_label": "expert_label",
}
NO_ID = -1  # matches no model version or run (the join then gives NULLs)


def latest_aggregation_run() -> AggregationRun | None:
    """The run whose labels are the labels of record (as in the catalogue export)."""
    return AggregationRun.objects.filter(status=AggregationRun.Status.DONE).order_by("-pk").first()


def catalogue_page(
    *,
    model_version_id: int | None,
    run_id: int | None,
    after: int | None,
    limit: int,
    sn_min: float | None = None,
    sn_max: float | None = None,
    wave_min: float | None = None,
    wave_max: float | None = None,
    field: str | None = None,
    score_min: float | None = None,
    score_max: float | None = None,
    label: str | None = None,
    status: str | None = None,
) -> list[dict]:
    """Up to ``limit`` catalogue rows with ``detectid > after`` in detectid order, each with
    the model's scores, the label of record, the live consensus and its rounds."""
    qs = Candidate.objects.annotate(
        s=FilteredRelation(
            "scores", condition=Q(scores__model_version_id=model_version_id or NO_ID)
        ),
        l=FilteredRelation("labels", condition=Q(labels__run_id=run_id or NO_ID)),
    )
    filters = Q()
    if after is not None:
        filters &= Q(detectid__gt=after)
    for name, lookup, value in (
        ("sn", "gte", sn_min),
        ("sn", "lte", sn_max),
        ("wave", "gte", wave_min),
        ("wave", "lte", wave_max),
        ("s__prob", "gte", score_min),
        ("s__prob", "lte", score_max),
    ):
        if value is not None:
            filters &= Q(**{f"{name}__{lookup}": value})
    if field:
        filters &= Q(field=field)
    if status:
        filters &= Q(status=status)
    if label == "real":
        filters &= Q(l__is_real=True)
    elif label == "not_real":
        filters &= Q(l__is_real=False)
    elif label == "none":
        filters &= Q(l__is_real__isnull=True)
    rows = list(
        qs.filter(filters)
        .order_by("detectid")
        .values("pk", *_CANDIDATE_FIELDS, *_JOINED, "s__adaptation")[:limit]
    )
    rounds: dict[int, list[int]] = {}
    pks = [r["pk"] for r in rows]
    for cid, number in (
        RoundCandidate.objects.filter(candidate_id__in=pks)
        .order_by("round__number")
        .values_list("candidate_id", "round__number")
    ):
        rounds.setdefault(cid, []).append(number)
    out = []
    for r in rows:
        row = {k: r[k] for k in _CANDIDATE_FIELDS}
        row.update({api: r[k] for k, api in _JOINED.items()})
        # scored with its batch's own statistics (AdaBN: the model card's "adaptation")
        row["cnn_adapted"] = None if r["s__prob"] is None else r["s__adaptation"] is not None
        row["rounds"] = rounds.get(r["pk"], [])
        out.append(row)
    return out


def vote_page(*, after: int | None, limit: int, detectid: int | None = None) -> list[dict]:
    """Up to ``limit`` votes with id > ``after`` in id order; volunteers as pseudonyms only
    (no user name, account id or address is read)."""
    qs = Vote.objects.all()
    if after is not None:
        qs = qs.filter(pk__gt=after)
    if detectid is not None:
        qs = qs.filter(candidate__detectid=detectid)
    rows = qs.order_by("pk").values_list(
        "pk",
        "candidate__detectid",
        "volunteer_id",
        "answer",
        "reason",
        "created_at",
        "was_gold",
        "volunteer__user_id",
        "client",
    )[:limit]
    names: dict[int, str] = {}
    out = []
    for vid, d, vol, answer, reason, created, gold, user_id, client in rows:
        if vol not in names:
            names[vol] = pseudonym(vol)
        out.append(
            {
                "vote_id": vid,
                "detectid": d,
                "volunteer": names[vol],
                "answer": answer,
                "reason": reason,
                "created_at": created,
                "was_gold": gold,
                "registered": user_id is not None,
                "client": client,
            }
        )
    return out
