"""The loop's plumbing between tasks: plan a scoring run, finish chunks, join them.

A scoring run is split into :class:`ScoreChunk` rows. Any worker scores any chunk (the
chunk replaces its own scores, so a redelivered or repeated chunk does no harm); marking a
chunk done is a compare-and-swap, and the worker whose swap leaves no chunk undone -- and
that wins the swap on the run's progress row -- is the one that starts the next step.
Nothing is joined in a result backend, so a worker killed mid-run loses nothing but its
own chunk, which the broker redelivers.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable

from django.db import transaction
from django.utils import timezone

from labelapp.models import IngestBatch, ModelVersion, ScoreChunk, TaskProgress
from labelapp.services.learning import adaptation, auto_shift
from labelapp.services.learning.scoring import CHUNK, score_chunk, score_chunks
from labelapp.services.operations.progress import start_progress

logger = logging.getLogger(__name__)

SCORING = "score_catalogue"


def plan_scoring(*, model_version: ModelVersion, chunk: int = CHUNK) -> list[ScoreChunk]:
    """Create (once) the chunks of a scoring run; returns those not yet done. Before a
    batch's chunks are made -- every batch the first time, a batch ingested since on a
    later planning -- build its shift reports against this model where none exists
    (:func:`labelapp.services.learning.auto_shift.ensure_reports`; the campaign setting
    ``auto_shift_reports``), then decide whether it is scored with batch statistics (AdaBN,
    :func:`labelapp.services.learning.adaptation.prepare_batch`): once per batch, so a
    resumed run scores its remaining chunks as it scored the first ones."""
    planned = set(
        ScoreChunk.objects.filter(model_version=model_version).values_list("batch_id", flat=True)
    )
    new = [b for b in IngestBatch.objects.order_by("pk") if b.pk not in planned]
    if new:
        auto_shift.ensure_reports(model_version=model_version, batches=new)
        for batch in new:
            adaptation.prepare_batch(model_version=model_version, batch=batch)
    total = 0
    for batch_id, start, stop in score_chunks(chunk=chunk):
        ScoreChunk.objects.get_or_create(
            model_version=model_version,
            batch_id=batch_id,
            start=start,
            defaults={"stop": stop},
        )
        total += stop - start
    key = f"model-{model_version.pk}"
    if not TaskProgress.objects.filter(name=SCORING, key=key).exists():
        start_progress(
            name=SCORING, key=key, total=total, message=f"scoring with model v{model_version.pk}"
        )
    undone = list(ScoreChunk.objects.filter(model_version=model_version, done=False))
    logger.info(
        "scoring run of model v%s: %d candidates, %d chunks to score",
        model_version.pk, total, len(undone),
    )  # fmt: skip
    return undone


def run_chunk(
    *,
    chunk_id: int,
    n_samples: int | None = None,
    on_complete: Callable[[int], None] | None = None,
) -> bool:
    """Score one chunk; True when this call completed the whole run (and ran ``on_complete``,
    the next step, see :func:`finish_run`)."""
    chunk = ScoreChunk.objects.select_related("model_version", "batch").get(pk=chunk_id)
    n = score_chunk(
        model_version=chunk.model_version,
        batch=chunk.batch,
        start=chunk.start,
        stop=chunk.stop,
        n_samples=n_samples,
    )
    key = f"model-{chunk.model_version_id}"
    with transaction.atomic():
        first = ScoreChunk.objects.filter(pk=chunk_id, done=False).update(done=True)
        if first:
            TaskProgress.objects.filter(name=SCORING, key=key).update(
                done=_done_count(chunk.model_version_id), updated_at=timezone.now()
            )
    return finish_run(
        model_version_id=chunk.model_version_id,
        message=f"scored {n} in the last chunk; run complete",
        on_complete=on_complete,
    )


def finish_run(
    *,
    model_version_id: int,
    message: str = "run complete",
    on_complete: Callable[[int], None] | None = None,
) -> bool:
    """The join: once no chunk is undone, exactly one caller moves the run from running to
    done (compare-and-swap) and runs ``on_complete(model_version_id)`` (send the next task,
    handed the version this run scored: never "whatever is live" by then) in the same
    transaction, so a failure to send (the broker down) undoes the swap and the next caller
    -- a redelivered chunk, or ``score_catalogue`` sent again -- can still finish the run."""
    if ScoreChunk.objects.filter(model_version_id=model_version_id, done=False).exists():
        return False
    with transaction.atomic():
        won = TaskProgress.objects.filter(
            name=SCORING, key=f"model-{model_version_id}", state=TaskProgress.State.RUNNING
        ).update(state=TaskProgress.State.DONE, message=message)
        if won:
            logger.info("scoring run of model v%s complete", model_version_id)
        if won and on_complete is not None:
            on_complete(model_version_id)
    return bool(won)


def stalled_runs(*, idle_s: float) -> list[int]:
    """Model versions whose scoring run is still running but no chunk finished for
    ``idle_s`` seconds: its messages were lost (a broker restarted without persistence) or
    a killed worker's chunk waits out the visibility timeout. Sending ``score_catalogue``
    again re-sends the undone chunks (idempotent) or finishes an interrupted join."""
    cutoff = timezone.now() - dt.timedelta(seconds=idle_s)
    keys = TaskProgress.objects.filter(
        name=SCORING, state=TaskProgress.State.RUNNING, updated_at__lt=cutoff
    ).values_list("key", flat=True)
    return sorted(int(k.removeprefix("model-")) for k in keys if k.startswith("model-"))


def _done_count(model_version_id: int) -> int:
    from django.db.models import F, Sum

    agg = ScoreChunk.objects.filter(model_version_id=model_version_id, done=True).aggregate(
        n=Sum(F("stop") - F("start"))
    )
    return agg["n"] or 0
