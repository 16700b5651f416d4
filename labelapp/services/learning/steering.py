"""How scientists steer the loop from the console: acquisition settings for the next rounds,
and the long tasks they can start (each dispatched to Celery and written to the audit log)."""

from __future__ import annotations

import uuid
from dataclasses import asdict, fields

from django.db import transaction

from labelapp.models import CampaignSettings, ModelVersion, TaskProgress
from labelapp.services.operations.audit import record_audit
from mlcore.acquisition import AcquisitionConfig

# What the console form may change; the rest of AcquisitionConfig keeps its defaults.
EDITABLE = (
    "strategy",
    "batch_size",
    "random_fraction",
    "low_sn_weight",
    "diversity",
    "wave_bin_A",
    "max_bin_fraction",
    "power",
    "carry_fraction",
    "seed",
)


class SteeringError(Exception):
    pass


def acquisition_settings() -> AcquisitionConfig:
    """The settings the next round uses: the console's saved values over the defaults."""
    row = CampaignSettings.objects.filter(pk=1).first()
    saved = row.acquisition if row else {}
    known = {f.name for f in fields(AcquisitionConfig)}
    return AcquisitionConfig(**{k: v for k, v in saved.items() if k in known})


def set_acquisition_settings(*, user, values: dict) -> AcquisitionConfig:
    """Validate (AcquisitionConfig checks every value) and save; audited."""
    unknown = sorted(set(values) - set(EDITABLE))
    if unknown:
        raise SteeringError(f"not an editable acquisition setting: {', '.join(unknown)}")
    current = asdict(acquisition_settings())
    merged = {k: current[k] for k in EDITABLE} | values
    try:
        config = AcquisitionConfig(**merged)
    except ValueError as exc:
        raise SteeringError(str(exc)) from exc
    before = {k: current[k] for k in EDITABLE}
    with transaction.atomic():
        CampaignSettings.objects.update_or_create(
            pk=1, defaults={"acquisition": merged, "updated_by": user.get_username()}
        )
        changed = {k: [before[k], merged[k]] for k in EDITABLE if before[k] != merged[k]}
        record_audit(user=user, action="acquisition_settings", target="campaign", detail=changed)
    return config


def _dispatch(send) -> None:
    # After commit, so a worker never picks up a task whose progress row is not visible yet.
    transaction.on_commit(send)


def request_round(*, user) -> TaskProgress:
    """Queue ``start_round`` with the saved settings (the task reads them itself)."""
    from labelapp import tasks

    config = acquisition_settings()
    with transaction.atomic():
        progress = _queued("start_round", f"queued by {user.get_username()}")
        record_audit(user=user, action="start_round", target="round:next", detail=asdict(config))
        _dispatch(lambda: tasks.start_round.delay(progress_key=progress.key))
    return progress


def request_retrain(*, user, label_source: str, epochs: int) -> TaskProgress:
    from labelapp import tasks

    if label_source not in ("consensus", "truth"):
        raise SteeringError(f"label source must be 'consensus' or 'truth', not {label_source!r}")
    if not 1 <= epochs <= 200:
        raise SteeringError(f"epochs must be between 1 and 200, got {epochs}")
    with transaction.atomic():
        progress = _queued("retrain_model", f"{label_source} labels, {epochs} epochs")
        record_audit(
            user=user,
            action="retrain",
            target="model:new",
            detail={"label_source": label_source, "epochs": epochs},
        )
        _dispatch(
            lambda: tasks.retrain_model.delay(
                label_source=label_source, epochs=epochs, progress_key=progress.key
            )
        )
    return progress


def request_scoring(*, user, model_version: ModelVersion | None) -> None:
    from labelapp import tasks

    if model_version is None:
        raise SteeringError("there is no live model to score with: train and promote one first")
    with transaction.atomic():
        record_audit(user=user, action="score", target=f"model:{model_version.pk}")
        _dispatch(lambda: tasks.score_catalogue.delay(model_version.pk))


def _queued(name: str, message: str) -> TaskProgress:
    """A 'queued' row so the console shows the request at once; the task, given its key,
    takes the same row over (services.progress.tracked)."""
    return TaskProgress.objects.create(
        name=name, key=f"console-{uuid.uuid4().hex[:12]}", message=message
    )
