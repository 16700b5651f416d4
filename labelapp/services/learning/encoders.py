"""Pretrained encoders as the platform sees them: which one a retrain may start from
(the architecture check is :func:`labelapp.selectors.models.architecture_problem`), and
what a classifier's card says about its encoder. Torch-free (the console's web
process imports it); pretraining itself is :mod:`labelapp.services.learning.pretraining`.
"""

from __future__ import annotations

from labelapp.errors import InvalidInput
from labelapp.models import PretrainedEncoder
from labelapp.selectors.models import architecture_problem


class EncoderError(InvalidInput):
    pass


def usable_encoder(pk) -> PretrainedEncoder:
    """The encoder ``pk`` if a retrain can start from it; else an :class:`EncoderError`
    that says why."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise EncoderError(f"an encoder is chosen by its number, not {pk!r}") from None
    enc = PretrainedEncoder.objects.filter(pk=pk).first()
    if enc is None:
        raise EncoderError(f"there is no pretrained encoder v{pk}")
    problem = architecture_problem(enc)
    if problem:
        raise EncoderError(problem)
    return enc


def encoder_summary(enc: PretrainedEncoder) -> dict:
    """What a classifier's card says about the encoder it started from: the encoder's id
    and its card's summary (data, candidates, method, epochs, loss)."""
    card = enc.card or {}
    curve = card.get("loss_curve") or []
    return {
        "encoder": enc.pk,
        "approach": card.get("approach", enc.approach),
        "n_candidates": card.get("n_candidates", enc.n_candidates),
        "epochs": card.get("epochs"),
        "loss_curve": curve,
        "final_loss": curve[-1] if curve else None,
        "data_source": card.get("data_source"),
        "data_hash": card.get("data_hash", enc.data_hash),
        "weights_sha256": card.get("weights_sha256"),
        "created_utc": card.get("created_utc"),
    }
