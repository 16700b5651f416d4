"""How scientists steer the loop from the console: the long tasks they can start, each
dispatched to Celery and written to the audit log. The saved acquisition settings live in
:mod:`labelapp.services.learning.acquisition_settings`."""

from __future__ import annotations

import uuid
from dataclasses import asdict

from django.db import transaction

from labelapp.errors import InvalidInput
from labelapp.models import CandidateScore, ModelVersion, TaskProgress
from labelapp.selectors.models import live_model
from labelapp.services.learning.acquisition_settings import acquisition_settings
from labelapp.services.learning.encoders import CAMPAIGN, EncoderError, resolve_start
from labelapp.services.operations.audit import record_audit
from labelapp.services.operations.dispatch import send_after_commit

# mlcore.cnn.pretrain.APPROACHES, written out: this module is imported by the web process,
# which does not import torch (tests/test_pretrain_service.py checks the two agree)
PRETRAIN_APPROACHES = ("contrastive", "masked")


class SteeringError(InvalidInput):
    pass


def request_round(*, user) -> TaskProgress:
    """Queue ``start_round`` with the saved settings (the task reads them itself), ordered by
    the model that is live now: its id travels with the task."""
    model = live_model()
    if model is None:
        # a round without a model would only rebuild the low-S/N-first order it already has
        raise SteeringError(
            "there is no live model yet, so a round has nothing to choose by (the queue "
            "already serves the lowest S/N first): retrain, promote a model and score the "
            "catalogue, then start a round"
        )
    if not CandidateScore.objects.filter(model_version=model).exists():
        raise SteeringError(
            f"the live model v{model.pk} has not scored the catalogue yet: score it first "
            "(a round orders the queue by its scores)"
        )
    config = acquisition_settings()
    with transaction.atomic():
        progress = _queued("start_round", f"queued by {user.get_username()}")
        detail = asdict(config) | {"model_version": model.pk if model else None}
        record_audit(user=user, action="start_round", target="round:next", detail=detail)
        send_after_commit(
            "start_round", model_version_id=model.pk if model else None, progress_key=progress.key
        )
    return progress


def request_retrain(
    *, user, label_source: str, epochs: int, fine_tune: bool = False, encoder_id=CAMPAIGN
) -> TaskProgress:
    """Queue a retrain. ``encoder_id``: CAMPAIGN (default: the campaign setting, which
    ``fine_tune`` overrides), None (no encoder) or an encoder's number; ``fine_tune``
    starts from the live model's weights (never together with a named encoder). The
    rules: :mod:`labelapp.services.learning.encoders`."""
    if label_source not in ("consensus", "truth"):
        raise SteeringError(f"label source must be 'consensus' or 'truth', not {label_source!r}")
    if not 1 <= epochs <= 200:
        raise SteeringError(f"epochs must be between 1 and 200, got {epochs}")
    try:
        start = resolve_start(fine_tune=fine_tune, encoder_id=encoder_id)
    except EncoderError as exc:
        raise SteeringError(str(exc)) from exc
    if start.fine_tune and live_model() is None:
        raise SteeringError("there is no live model to fine-tune from: retrain afresh first")
    how = ", fine-tuned from the live model" if start.fine_tune else ""
    if start.encoder_id is not None:
        how = f", from pretrained encoder v{start.encoder_id}"
    if start.chosen_by == "campaign setting":
        how += " (the campaign setting)"
    detail = {"label_source": label_source, "epochs": epochs, "fine_tune": start.fine_tune}
    if start.encoder_id is not None:
        detail["encoder"] = start.encoder_id
    detail["start_chosen_by"] = start.chosen_by
    with transaction.atomic():
        progress = _queued("retrain_model", f"{label_source} labels, {epochs} epochs{how}")
        record_audit(user=user, action="retrain", target="model:new", detail=detail)
        send_after_commit(
            "retrain_model", label_source=label_source, epochs=epochs,
            progress_key=progress.key, fine_tune=start.fine_tune,
            encoder_id=start.encoder_id, start_chosen_by=start.chosen_by,
        )  # fmt: skip
    return progress


def request_pretrain(
    *, user, approach: str, epochs: int, n: int | None = None, field: str = ""
) -> TaskProgress:
    """Queue the pretraining of an encoder on the catalogue (gpu queue)."""
    if approach not in PRETRAIN_APPROACHES:
        raise SteeringError(f"approach must be one of {PRETRAIN_APPROACHES}, not {approach!r}")
    if not 1 <= epochs <= 200:
        raise SteeringError(f"epochs must be between 1 and 200, got {epochs}")
    if n is not None and n < 2:
        raise SteeringError(f"a sample needs at least 2 candidates, not {n}")
    what = f"{approach}, {epochs} epochs, " + (f"{n} candidates" if n else "every candidate")
    if field:
        what += f" of {field}"
    detail = {"approach": approach, "epochs": epochs, "n": n, "field": field or None}
    with transaction.atomic():
        progress = _queued("pretrain_encoder", what)
        record_audit(user=user, action="pretrain", target="encoder:new", detail=detail)
        send_after_commit(
            "pretrain_encoder", approach=approach, epochs=epochs, n=n, field=field,
            progress_key=progress.key,
        )  # fmt: skip
    return progress


def request_scoring(*, user, model_version: ModelVersion | None) -> None:
    if model_version is None:
        raise SteeringError("there is no live model to score with: train and promote one first")
    with transaction.atomic():
        record_audit(user=user, action="score", target=f"model:{model_version.pk}")
        send_after_commit("score_catalogue", model_version_id=model_version.pk)


def _queued(name: str, message: str) -> TaskProgress:
    """A 'queued' row so the console shows the request at once; the task, given its key,
    takes the same row over (services.progress.tracked)."""
    return TaskProgress.objects.create(
        name=name, key=f"console-{uuid.uuid4().hex[:12]}", message=message
    )
