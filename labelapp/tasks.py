"""Celery tasks: thin wrappers that call services.

Every task is keyed by what it works on (a model version, a chunk id), so a redelivered
or duplicated message repeats harmless work at most: training writes a new version only
once its files are complete, scoring chunks replace their own rows, the join is a
compare-and-swap (services.loop), a round is opened by exactly the worker that won it.
"""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from labelapp.services import aggregation, health

# A scoring task that meets the database down (PostgreSQL restarting, a connection dropped)
# is retried with backoff (up to 1, 2, 4 ... 60 s; 10 tries, at most ~5 minutes) instead of being
# acknowledged as failed: a dropped chunk would leave its scoring run, and the round that
# follows it, unfinished. Both tasks are idempotent, so a retry repeats harmless work at most.
DB_RETRY = {
    "autoretry_for": (OperationalError, InterfaceError),
    "retry_backoff": True,
    "retry_backoff_max": 60,
    "max_retries": 10,
}

# The loop's services import torch (via mlcore.cnn): imported inside the tasks that need
# them, so web processes that only send messages never load it.


@shared_task(ignore_result=True)
def record_heartbeat() -> None:
    health.record_heartbeat(hostname=record_heartbeat.request.hostname or "unknown")


@shared_task(ignore_result=True, acks_late=True)
def aggregate_votes() -> None:
    # Safe to redeliver: a run reads a snapshot of the votes and writes a new run's rows.
    aggregation.aggregate_votes()


@shared_task(ignore_result=True, acks_late=True)
def retrain_model(
    label_source: str = "consensus",
    epochs: int = 12,
    max_time_s: float | None = None,
    progress_key: str | None = None,
    seed: int = 0,
) -> int | None:
    """gpu queue: train, gate, and on promotion score the catalogue. A redelivery after a
    crash trains again from scratch (the half-trained files were never registered)."""
    from labelapp.services import progress, promotion, training

    key = progress_key or retrain_model.request.id or "direct"
    with progress.tracked(name="retrain_model", key=key, total=epochs) as row:

        def on_epoch(rec: dict, n_epochs: int) -> None:
            progress.set_progress(
                row,
                done=rec["epoch"] + 1,
                total=n_epochs,
                message=f"epoch {rec['epoch'] + 1}/{n_epochs}: val loss {rec['val_loss']:.3f}",
            )

        version = training.train_model_version(
            label_source=label_source,
            epochs=epochs,
            seed=seed,
            max_time_s=max_time_s,
            log=lambda m: None,
            on_epoch=on_epoch,
        )
        decision = promotion.gate_model(model_version=version)
        progress.set_progress(row, done=epochs, message=f"v{version.pk}: {decision.reason}")
    if decision.promoted:
        score_catalogue.delay(version.pk)
    return version.pk


@shared_task(ignore_result=True, acks_late=True, **DB_RETRY)
def score_catalogue(model_version_id: int) -> None:
    """Fan the scoring run out as chunks on the cpu queue (any number of workers)."""
    from labelapp.models import ModelVersion
    from labelapp.services import loop

    version = ModelVersion.objects.get(pk=model_version_id)
    for chunk in loop.plan_scoring(model_version=version):
        score_chunk.delay(chunk.pk)


@shared_task(ignore_result=True, acks_late=True, **DB_RETRY)
def score_chunk(chunk_id: int) -> None:
    from labelapp.services import loop

    if loop.run_chunk(chunk_id=chunk_id):
        start_round.delay()


@shared_task(ignore_result=True, acks_late=True)
def start_round(progress_key: str | None = None, **acquisition) -> int:
    """Open the next round with the console's saved acquisition settings (overridable)."""
    from labelapp.services import progress, rounds

    key = progress_key or start_round.request.id or "direct"
    with progress.tracked(name="start_round", key=key, total=1) as row:
        rnd = rounds.start_round(config=rounds.acquisition_config(**acquisition))
        progress.set_progress(row, done=1, message=f"round {rnd.number}: {rnd.n_queued} queued")
    return rnd.pk


@shared_task(ignore_result=True)
def retrain_if_enough_labels() -> bool:
    """Scheduled (nightly): retrain only when enough new consensus labels arrived."""
    from django.conf import settings

    from labelapp.services import training

    if training.new_labels_since_live_model() < settings.RETRAIN_MIN_NEW_LABELS:
        return False
    retrain_model.delay()
    return True


@shared_task(ignore_result=True)
def check_vote_flow() -> str:
    """Scheduled (every few minutes): warn when volunteers are active but no votes arrive."""
    from labelapp.services import vote_watch

    return vote_watch.check_vote_flow().status
