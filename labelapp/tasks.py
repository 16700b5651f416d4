"""Celery tasks: thin wrappers that call services.

Every task is keyed by what it works on (a model version, a chunk id), so a redelivered
or duplicated message repeats harmless work at most: training writes a new version only
once its files are complete, scoring chunks replace their own rows, the join is a
compare-and-swap (services.learning.scoring_runs), a round is opened by exactly the worker
that won it.
"""

from celery import shared_task
from django.db import InterfaceError, OperationalError

from labelapp.services.crowd import aggregation
from labelapp.services.operations import health

# The scoring tasks and start_round are idempotent (planning is get-or-create, a chunk
# replaces its own rows, a round is keyed by its task id), so they are never dropped
# half-way: one that meets the database down (PostgreSQL restarting, a connection cut) is
# retried with backoff (up to 1, 2, 4 ... 60 s; 10 tries, ~5 minutes at most) instead of
# being acknowledged as failed, and one whose pool process is killed (the OOM killer,
# SIGKILL) is put back on the queue instead of acknowledged (reject_on_worker_lost; a chunk
# that killed its process every time would come back every time, which the worker log
# shows). A dropped chunk left its run, and the round after it, unfinished
# (bench/bench_load_faults.py).
IDEMPOTENT_TASK = {
    "acks_late": True,
    "reject_on_worker_lost": True,
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


def _epoch_progress(row, what):
    """A training loop's ``on_epoch`` that reports "epoch k/n: <what(rec)>" on ``row``."""
    from labelapp.services.operations import progress

    def on_epoch(rec: dict, n_epochs: int) -> None:
        done = rec["epoch"] + 1
        progress.set_progress(
            row, done=done, total=n_epochs, message=f"epoch {done}/{n_epochs}: {what(rec)}"
        )

    return on_epoch


@shared_task(ignore_result=True, acks_late=True)
def retrain_model(
    label_source: str = "consensus",
    epochs: int = 12,
    max_time_s: float | None = None,
    progress_key: str | None = None,
    seed: int = 0,
    keep: str = "best",
    members: int | None = None,
    fine_tune: bool = False,
    encoder_id: int | str | None = "campaign",
    start_chosen_by: str = "request",
    self_train: bool | None = None,
) -> int | None:
    """gpu queue: train (``fine_tune``: from the live model's weights; ``encoder_id``: from
    a pretrained encoder's trunks, None from scratch, "campaign" by default: where the
    campaign setting says, so no retrain the platform starts by itself misses it), gate,
    and on promotion score the catalogue. A start that cannot be used fails the task with
    the reason (the console's Tasks list it). ``self_train`` (None: the campaign setting):
    self-train on the unlabelled catalogue. A redelivery after a crash trains again from
    the start (the half-trained files were never registered)."""
    from labelapp.services.learning import promotion, training
    from labelapp.services.operations import progress

    key = progress_key or retrain_model.request.id or "direct"
    with progress.tracked(name="retrain_model", key=key, total=epochs) as row:
        on_epoch = _epoch_progress(row, lambda rec: f"val loss {rec['val_loss']:.3f}")
        version = training.train_model_version(
            label_source=label_source,
            epochs=epochs,
            seed=seed,
            keep=keep,
            members=members,
            max_time_s=max_time_s,
            on_epoch=on_epoch,
            fine_tune=fine_tune,
            encoder_id=encoder_id,
            start_chosen_by=start_chosen_by,
            self_train=self_train,
        )
        decision = promotion.gate_model(model_version=version)
        # total too: an ensemble reported members x epochs, and early stopping fewer
        progress.set_progress(
            row, done=epochs, total=epochs, message=f"v{version.pk}: {decision.reason}"
        )
    if decision.promoted:
        score_catalogue.delay(version.pk)
    return version.pk


@shared_task(ignore_result=True, acks_late=True)
def pretrain_encoder(
    approach: str = "masked",
    epochs: int = 5,
    n: int | None = None,
    field: str = "",
    seed: int = 0,
    max_time_s: float | None = None,
    progress_key: str | None = None,
) -> int:
    """gpu queue: pretrain an encoder on the catalogue's candidates and record it (never
    live: a retrain starts from it). A redelivery pretrains again from the start (the
    half-written directory was never recorded)."""
    from labelapp.services.learning import pretraining
    from labelapp.services.operations import progress

    key = progress_key or pretrain_encoder.request.id or "direct"
    with progress.tracked(name="pretrain_encoder", key=key, total=epochs) as row:
        on_epoch = _epoch_progress(row, lambda rec: f"loss {rec['loss']:.4f}")
        enc = pretraining.pretrain_encoder(
            approach=approach, epochs=epochs, n=n, field=field, seed=seed,
            max_time_s=max_time_s, on_epoch=on_epoch,
        )  # fmt: skip
        done = enc.card.get("epochs", epochs)
        progress.set_progress(
            row,
            done=done,
            total=done,
            message=f"encoder v{enc.pk}: {approach} on {enc.n_candidates} candidates, "
            f"{done} epochs, loss {enc.card['loss_curve'][-1]:.4f}",
        )
    return enc.pk


@shared_task(ignore_result=True, **IDEMPOTENT_TASK)
def score_catalogue(model_version_id: int) -> None:
    """Fan the scoring run out as chunks on the cpu queue (any number of workers)."""
    from labelapp.models import ModelVersion
    from labelapp.services.learning import scoring_runs as loop

    version = ModelVersion.objects.get(pk=model_version_id)
    chunks = loop.plan_scoring(model_version=version)
    for chunk in chunks:
        score_chunk.delay(chunk.pk)
    if not chunks:  # sent again after every chunk was done: finish an interrupted join
        loop.finish_run(model_version_id=version.pk, on_complete=_round_after_scoring)


@shared_task(ignore_result=True, **IDEMPOTENT_TASK)
def score_chunk(chunk_id: int) -> None:
    from labelapp.services.learning import scoring_runs as loop

    loop.run_chunk(chunk_id=chunk_id, on_complete=_round_after_scoring)


@shared_task(ignore_result=True, **IDEMPOTENT_TASK)
def build_batch_shift_reports(batch_id: int, model_version_id: int) -> None:
    """cpu queue, sent by an ingest while a model is live: the new batch's shift reports
    against that model (none when one exists already, or the campaign setting is off)."""
    from labelapp.services.learning import auto_shift

    auto_shift.after_ingest(batch_id=batch_id, model_version_id=model_version_id)


@shared_task(ignore_result=True, **IDEMPOTENT_TASK)
def build_night_shift_reports(model_version_id: int) -> None:
    """cpu queue, sent when a model's scoring run completes: the night-group shift reports
    of every batch, then the reports of every field across the catalogue, against it, that
    are not there yet (the campaign setting ``auto_shift_reports``; bounded by
    SHIFT_AUTO_BUDGET_S)."""
    from labelapp.services.learning import auto_shift

    auto_shift.after_scoring(model_version_id=model_version_id)


def _round_after_scoring(model_version_id: int) -> None:
    # The round is handed the version whose scores were just completed: another model may
    # have been promoted meanwhile, and it has no scores yet. The night-group reports run
    # beside it (they take a second or more per group), for the rounds after it.
    start_round.delay(model_version_id=model_version_id)
    build_night_shift_reports.delay(model_version_id=model_version_id)


# start_round is keyed by its task id (services.rounds.start_round(request_key=...)), so a
# retry or a redelivery returns the round it already opened: retried on database errors
# like the scoring tasks, so a round due after a scoring run is not lost to a restart.
@shared_task(ignore_result=True, **IDEMPOTENT_TASK)
def start_round(
    model_version_id: int | None = None, progress_key: str | None = None, **acquisition
) -> int:
    """Open the next round ordered by ``model_version_id``'s scores (None: no model, low S/N
    first) with the console's saved acquisition settings (overridable)."""
    from labelapp.models import ModelVersion
    from labelapp.services.learning import rounds
    from labelapp.services.operations import progress

    task_id = start_round.request.id
    key = progress_key or task_id or "direct"
    with progress.tracked(name="start_round", key=key, total=1) as row:
        version = (
            None if model_version_id is None else ModelVersion.objects.get(pk=model_version_id)
        )
        rnd = rounds.start_round(
            config=rounds.acquisition_config(**acquisition),
            model_version=version,
            request_key=task_id,
        )
        progress.set_progress(row, done=1, message=f"round {rnd.number}: {rnd.n_queued} queued")
    return rnd.pk


@shared_task(ignore_result=True)
def resume_stalled_scoring() -> list[int]:
    """Scheduled: re-send ``score_catalogue`` for a scoring run no chunk has advanced for
    SCORING_STALL_S (lost messages after a broker restart, a killed worker's chunk)."""
    import logging

    from django.conf import settings

    from labelapp.services.learning import scoring_runs as loop

    stalled = loop.stalled_runs(idle_s=settings.SCORING_STALL_S)
    for model_version_id in stalled:
        logging.getLogger(__name__).warning(
            "scoring run of model v%s made no progress for %s s: sending score_catalogue again",
            model_version_id,
            settings.SCORING_STALL_S,
        )
        score_catalogue.delay(model_version_id)
    return stalled


@shared_task(ignore_result=True)
def retrain_if_enough_labels() -> bool:
    """Scheduled (nightly): retrain only when enough new consensus labels arrived, from
    where the campaign setting says (retrain_model's default ``encoder_id="campaign"``,
    resolved when it trains: a setting it cannot use fails that task with the reason)."""
    from django.conf import settings

    from labelapp.services.learning import training

    if training.new_labels_since_live_model() < settings.RETRAIN_MIN_NEW_LABELS:
        return False
    retrain_model.delay(encoder_id="campaign")
    return True


@shared_task(ignore_result=True)
def check_vote_flow() -> str:
    """Scheduled (every few minutes): warn when volunteers are active but no votes arrive."""
    from labelapp.services.operations import vote_watch

    return vote_watch.check_vote_flow().status


@shared_task(ignore_result=True)
def refresh_results_nz() -> None:
    """Rebuild the public results page's N(z) (sent by the page when its copy is stale)."""
    from labelapp.services.science.public_nz import refresh_public_nz

    refresh_public_nz()
