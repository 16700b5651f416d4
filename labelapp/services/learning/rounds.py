"""Labelling rounds: choose what volunteers see next and record how it was chosen.

``start_round`` closes the open round (counting the votes and retirements it gained) and
opens the next: the live model's scores go through :func:`mlcore.acquisition.select_batch`
(BALD / entropy / margin / random, a random share, low-S/N weight, wavelength diversity),
optionally led by the candidates that took votes in the open round but did not settle
(``carry_fraction`` of the batch at most, most votes first; 0 by default, see
bench/RESULTS.md), then, with ``shift_fraction`` > 0, by the best-ranked candidates of the
groups whose newest shift report says the model is out of its depth there (the groups are
recorded in the round), and every active candidate's queue priority is rewritten in ONE
transaction, so volunteers keep being served from the old order until the new one is
complete. With no scored model
yet, the queue stays low-S/N first (ingest's ``priority = -sn``).
"""

from __future__ import annotations

import logging
from dataclasses import asdict

import numpy as np
from django.db import transaction
from django.db.models import Exists, Max, OuterRef
from django.utils import timezone

from labelapp.errors import InvalidInput
from labelapp.models import (
    Candidate,
    CandidateScore,
    GoldStandard,
    ModelVersion,
    RetirementEvent,
    Round,
    RoundCandidate,
    ShiftReport,
    Vote,
)
from labelapp.selectors.shift import latest_reports
from labelapp.services.bulk import insert_rows, set_column
from labelapp.services.learning.acquisition_settings import acquisition_settings
from labelapp.services.learning.holdout import QUEUE_OFFSET, holdout_ids
from mlcore.acquisition import AcquisitionConfig, priorities, select_batch
from mlcore.nights import in_nights

logger = logging.getLogger(__name__)


class RoundError(InvalidInput):
    pass


def acquisition_config(**overrides) -> AcquisitionConfig:
    """The console's saved settings (services.learning.acquisition_settings) with
    ``overrides`` on top."""
    try:
        return AcquisitionConfig(**(asdict(acquisition_settings()) | overrides))
    except TypeError as exc:
        raise RoundError(f"unknown acquisition setting: {exc}") from exc


def _active_arrays(model_version: ModelVersion | None) -> dict[str, np.ndarray]:
    rows = list(
        Candidate.objects.filter(status=Candidate.Status.ACTIVE)
        .order_by("pk")
        .values_list("pk", "sn", "wave", "batch_id", "field", "shotid")
        .iterator(chunk_size=50000)
    )
    ids = np.asarray([r[0] for r in rows], np.int64)
    out = {
        "id": ids,
        "sn": np.asarray([r[1] for r in rows]),
        "wave": np.asarray([r[2] for r in rows]),
        "batch": np.asarray([r[3] for r in rows], np.int64),
        "field": np.asarray([r[4] for r in rows], dtype=object),
        "shotid": np.asarray([r[5] for r in rows], np.int64),
    }
    prob = np.full(len(ids), np.nan)
    bald = np.full(len(ids), np.nan)
    if model_version is not None:
        scores = CandidateScore.objects.filter(model_version=model_version).values_list(
            "candidate_id", "prob", "bald"
        )
        rows = np.asarray(list(scores.iterator(chunk_size=50000)), dtype=np.float64)
        if len(rows):
            k, hit = _rows_of(ids, rows[:, 0].astype(np.int64))
            prob[k], bald[k] = rows[hit, 1], rows[hit, 2]
    gold = set(GoldStandard.objects.filter(active=True).values_list("candidate_id", flat=True))
    held = list(holdout_ids())
    out.update(prob=prob, bald=bald, gold=np.isin(ids, list(gold)), holdout=np.isin(ids, held))
    return out


def start_round(
    *,
    model_version: ModelVersion | None,
    config: AcquisitionConfig | None = None,
    request_key: str | None = None,
) -> Round:
    """Close the open round and open the next one with a freshly ordered queue, ordered by
    ``model_version``'s scores (None: no model yet, low S/N first). The caller names the
    version: a round after a scoring run uses the version that run scored, even if another
    was promoted in between (it has no scores yet).

    ``request_key`` (the Celery task id) makes a repeat of the same request return the
    round it opened instead of opening another: a redelivered message, or a retry after the
    database failed at COMMIT time, when the round may or may not have been stored.
    """
    config = config or AcquisitionConfig()
    if request_key and (done := _round_for(request_key)) is not None:
        return done
    arr = _active_arrays(model_version)
    scored = np.isfinite(arr["prob"]) & ~arr["gold"] & ~arr["holdout"]
    result = None
    shifted, shifted_groups = None, []
    if model_version is not None and config.shift_fraction > 0:
        shifted, shifted_groups = shifted_mask(
            model_version, arr["batch"], arr["field"], arr["shotid"]
        )
    if model_version is not None and scored.any():
        embeddings = None
        if config.diversity == "kcenter":  # torch: only on the worker that opens rounds
            from labelapp.services.learning.scoring import CandidateEmbeddings

            embeddings = CandidateEmbeddings(model_version=model_version, ids=arr["id"])
        result = select_batch(
            prob=np.nan_to_num(arr["prob"], nan=0.5),
            bald=np.nan_to_num(arr["bald"], nan=0.0),
            sn=arr["sn"],
            wave=arr["wave"],
            embeddings=embeddings,
            eligible=scored,
            carry=_unsettled_rows(arr["id"]) if config.carry_fraction > 0 else None,
            shifted=shifted,
            config=config,
        )
        prio = priorities(result)
        prio[~scored] = -arr["sn"][~scored] - 100.0  # unscored last, still low S/N first
    else:
        prio = -arr["sn"]
    # The held-out evaluation sample is never trained on: votes there would be wasted.
    prio[arr["holdout"]] = -arr["sn"][arr["holdout"]] - QUEUE_OFFSET
    with transaction.atomic():
        open_round = Round.objects.select_for_update().filter(status=Round.Status.OPEN).first()
        # Checked again under the lock: a twin of this request that held it first has
        # closed that round and committed its own (READ COMMITTED sees it now).
        if request_key and (done := _round_for(request_key)) is not None:
            return done
        _close_round(open_round)
        number = (Round.objects.aggregate(m=Max("number"))["m"] or 0) + 1
        rnd = Round.objects.create(
            number=number,
            scored_by=model_version if result is not None else None,
            acquisition=asdict(config)
            | {"fallback": result is None}
            | ({"shifted_groups": shifted_groups} if config.shift_fraction > 0 else {})
            | ({"request_key": request_key} if request_key else {}),
            max_vote_id_start=Vote.objects.aggregate(m=Max("pk"))["m"] or 0,
        )
        set_column(Candidate, "priority", arr["id"].tolist(), prio.tolist())
        if result is not None:
            insert_rows(
                RoundCandidate,
                ("round", "candidate", "rank", "reason", "score"),
                (
                    (rnd.pk, int(arr["id"][i]), k, reason, float(result.score[k]))
                    for k, (i, reason) in enumerate(zip(result.index, result.reason, strict=True))
                ),
            )
            rnd.n_queued = len(result.index)
            rnd.save(update_fields=["n_queued"])
    logger.info(
        "round %d opened: %d queued, ordered by %s", rnd.number, rnd.n_queued,
        f"model v{model_version.pk}'s scores" if result is not None else "low S/N first",
    )  # fmt: skip
    return rnd


def shifted_mask(
    model_version: ModelVersion, batch: np.ndarray, field: np.ndarray, shotid: np.ndarray
) -> tuple[np.ndarray, list[dict]]:
    """(N,) True where the candidate's (batch, field, nights) group is out of
    ``model_version``'s training distribution by the newest shift report of that group
    (verdict shifted or far; services.learning.shift), and the groups as recorded in the
    round. A report without a batch covers the field in every batch; one without a field,
    the whole batch; one for a group of nights, the candidates whose shot was observed in
    those nights (within its batch and field, if it has them)."""
    mask = np.zeros(len(batch), bool)
    groups = []
    for r in latest_reports(model_version):
        if r.verdict == ShiftReport.Verdict.IN_DISTRIBUTION:
            continue
        hit = np.ones(len(batch), bool)
        if r.batch_id is not None:
            hit &= batch == r.batch_id
        if r.field:
            hit &= field == r.field
        if r.night_first is not None:
            hit &= in_nights(shotid, r.night_first, r.night_last)
        mask |= hit
        groups.append(
            {"report": r.pk, "batch": r.batch_id, "field": r.field or None,
             "nights": r.nights, "verdict": r.verdict, "n_active": int(hit.sum())}
        )  # fmt: skip
    return mask, groups


def _rows_of(ids: np.ndarray, cid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Vectorised join of candidate ids on the sorted ``ids`` (a catalogue has millions of
    scores): (rows in ``ids`` of the ``cid`` found there, mask of those found)."""
    if len(ids) == 0:
        return np.empty(0, np.int64), np.zeros(len(cid), bool)
    k = np.minimum(np.searchsorted(ids, cid), len(ids) - 1)
    hit = ids[k] == cid
    return k[hit], hit


def _unsettled_rows(active_ids: np.ndarray) -> np.ndarray:
    """Rows (into the sorted ``active_ids``) of candidates that took a vote in the open round
    and are still active: most yes/no votes first, then by id. (More votes did not mean
    fewer left to settle in the campaigns: what stays unsettled is mostly the hard ones.)"""
    rnd = Round.objects.filter(status=Round.Status.OPEN).first()
    if rnd is None:
        return np.empty(0, np.int64)
    voted = Vote.objects.filter(candidate_id=OuterRef("pk"), pk__gt=rnd.max_vote_id_start)
    started = (
        Candidate.objects.filter(status=Candidate.Status.ACTIVE, consensus__n_votes__gt=0)
        .filter(Exists(voted))
        .order_by("-consensus__n_votes", "pk")
        .values_list("pk", flat=True)
    )
    return _rows_of(active_ids, np.asarray(list(started), np.int64))[0]


def _round_for(request_key: str) -> Round | None:
    return Round.objects.filter(acquisition__request_key=request_key).first()


def _close_round(rnd: Round | None) -> None:
    if rnd is None:
        return
    end = Vote.objects.aggregate(m=Max("pk"))["m"] or 0
    rnd.status, rnd.closed_at, rnd.max_vote_id_end = Round.Status.CLOSED, timezone.now(), end
    rnd.votes_gained = Vote.objects.filter(pk__gt=rnd.max_vote_id_start, pk__lte=end).count()
    rnd.labels_gained = RetirementEvent.objects.filter(
        created_at__gte=rnd.started_at, to_status=Candidate.Status.RETIRED
    ).count()
    rnd.save()
