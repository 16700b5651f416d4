"""Pretrained encoders as the platform sees them: which one a retrain may start from
(the architecture check is :func:`labelapp.selectors.models.architecture_problem`), the
campaign's setting of where retrains start, retiring an encoder, and what a classifier's
card says about its encoder. Torch-free (the console's web process imports it);
pretraining itself is :mod:`labelapp.services.learning.pretraining`.

Where a retrain starts (:func:`resolve_start`):

* The campaign setting (``CampaignSettings.retrain_encoder``, the console's Acquisition
  settings > Retraining): none (from scratch, the default) or one encoder. Every retrain
  the platform starts by itself (the nightly ``retrain_if_enough_labels``, and any
  ``retrain_model`` task sent without an ``encoder_id``) starts there; so does the console's
  Retrain form unless the scientist picks another start.
* A request may override it: no encoder, another encoder, or fine-tuning from the live
  model. Fine-tuning wins over the campaign's encoder (the live model already carries
  whatever it started from); asking for fine-tuning *and* naming an encoder is refused.
* An encoder a retrain cannot start from (retired, or an architecture the retrain does not
  build) is refused with the reason, never silently replaced by a start from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from labelapp.errors import InvalidInput
from labelapp.models import CampaignSettings, PretrainedEncoder
from labelapp.selectors.models import architecture_problem, models_from
from labelapp.services.operations.audit import record_audit

# ``encoder_id=CAMPAIGN``: whatever the campaign setting says (the default of the
# retrain_model task, so no retrain the platform starts by itself can miss it)
CAMPAIGN = "campaign"
CHOSEN_BY = ("request", "campaign setting")


class EncoderError(InvalidInput):
    pass


@dataclass(frozen=True)
class RetrainStart:
    """Where one retrain starts, and who chose it (recorded on the card as ``start``)."""

    fine_tune: bool
    encoder_id: int | None
    chosen_by: str  # one of CHOSEN_BY

    @property
    def label(self) -> str:
        if self.fine_tune:
            return "live model"
        return "scratch" if self.encoder_id is None else f"pretrained encoder v{self.encoder_id}"

    def card(self) -> dict:
        return {"from": self.label, "encoder": self.encoder_id, "chosen_by": self.chosen_by}


def usable_encoder(pk) -> PretrainedEncoder:
    """The encoder ``pk`` if a retrain can start from it; else an :class:`EncoderError`
    that says why (no such encoder, retired, or another architecture)."""
    try:
        pk = int(pk)
    except (TypeError, ValueError):
        raise EncoderError(f"an encoder is chosen by its number, not {pk!r}") from None
    enc = PretrainedEncoder.objects.filter(pk=pk).first()
    if enc is None:
        raise EncoderError(f"there is no pretrained encoder v{pk}")
    if enc.retired_at is not None:
        why = f": {enc.retired_reason}" if enc.retired_reason else ""
        raise EncoderError(
            f"encoder v{pk} was retired on {enc.retired_at:%Y-%m-%d} by "
            f"{enc.retired_by or 'someone'}{why}; choose another encoder, or none"
        )
    problem = architecture_problem(enc)
    if problem:
        raise EncoderError(problem)
    return enc


def campaign_encoder() -> PretrainedEncoder | None:
    """The encoder the campaign's retrains start from (None: from scratch), unchecked."""
    row = CampaignSettings.objects.select_related("retrain_encoder").filter(pk=1).first()
    return row.retrain_encoder if row else None


def resolve_start(*, fine_tune: bool = False, encoder_id=CAMPAIGN) -> RetrainStart:
    """Where a retrain starts (the rules are in the module docstring). ``encoder_id``:
    :data:`CAMPAIGN` (the campaign setting), None (no encoder) or an encoder's number.
    Raises :class:`EncoderError` with the reason when the start cannot be used."""
    if encoder_id == CAMPAIGN:
        if fine_tune:  # fine-tuning wins over the campaign's encoder
            return RetrainStart(fine_tune=True, encoder_id=None, chosen_by="request")
        enc = campaign_encoder()
        if enc is None:
            return RetrainStart(fine_tune=False, encoder_id=None, chosen_by="campaign setting")
        try:
            usable_encoder(enc.pk)
        except EncoderError as exc:
            raise EncoderError(
                f"the campaign's retrain setting starts from encoder v{enc.pk}, which a "
                f"retrain cannot start from ({exc}): choose another start in the console's "
                "Acquisition settings > Retraining"
            ) from exc
        return RetrainStart(fine_tune=False, encoder_id=enc.pk, chosen_by="campaign setting")
    if fine_tune and encoder_id is not None:
        raise EncoderError(
            "choose one start: fine-tune from the live model or a pretrained encoder, not both"
        )
    enc = None if encoder_id is None else usable_encoder(encoder_id)
    return RetrainStart(
        fine_tune=fine_tune, encoder_id=None if enc is None else enc.pk, chosen_by="request"
    )


def set_campaign_encoder(*, user, encoder_id) -> PretrainedEncoder | None:
    """Set where the campaign's retrains start: an encoder a retrain can start from, or
    None (from scratch). Audited (``retrain_settings``)."""
    with transaction.atomic():
        enc = None
        if encoder_id is not None:
            # locked: a concurrent retire_encoder waits, then sees the setting and refuses
            usable_encoder(encoder_id)
            enc = PretrainedEncoder.objects.select_for_update().get(pk=int(encoder_id))
            usable_encoder(enc.pk)  # re-checked under the lock
        before = campaign_encoder()
        CampaignSettings.objects.update_or_create(
            pk=1, defaults={"retrain_encoder": enc, "updated_by": user.get_username()}
        )
        record_audit(
            user=user,
            action="retrain_settings",
            target="campaign",
            detail={"retrain_encoder": [_pk(before), _pk(enc)]},
        )
    return enc


def retire_encoder(*, user, encoder_id: int, reason: str = "") -> bool:
    """Retire an encoder: it stays (the models started from it keep their provenance) but
    is no longer offered to retrains, and the campaign setting cannot name it. Refused
    while the campaign setting names it (change the setting first: retiring never changes
    where the nightly retrain starts behind the scientists' backs). Audited
    (``encoder_retire``). False when it already was retired."""
    reason = (reason or "").strip()
    if len(reason) > 500:
        raise EncoderError("say why in at most 500 characters")
    with transaction.atomic():
        enc = PretrainedEncoder.objects.select_for_update().filter(pk=encoder_id).first()
        if enc is None:
            raise EncoderError(f"there is no pretrained encoder v{encoder_id}")
        if enc.retired_at is not None:
            return False
        if CampaignSettings.objects.filter(pk=1, retrain_encoder=enc).exists():
            raise EncoderError(
                f"encoder v{enc.pk} is where the campaign's retrains start (Acquisition "
                "settings > Retraining): choose another start there before retiring it"
            )
        enc.retired_at = timezone.now()
        enc.retired_by = user.get_username()
        enc.retired_reason = reason
        enc.save(update_fields=["retired_at", "retired_by", "retired_reason"])
        record_audit(
            user=user,
            action="encoder_retire",
            target=f"encoder:{enc.pk}",
            detail={"reason": reason, "approach": enc.approach, "used_by": models_from(enc.pk)},
        )
    return True


def _pk(enc: PretrainedEncoder | None) -> int | None:
    return None if enc is None else enc.pk


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
