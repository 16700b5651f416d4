"""Models: every version with its card, the paper's metrics across rounds, promote / roll back;
the pretrained encoders (never live) on their own, and retiring one."""

from django.contrib import messages
from django.db import transaction
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from labelapp.models import ModelVersion, PretrainedEncoder
from labelapp.selectors import models as sel
from labelapp.services.learning.encoders import EncoderError, campaign_encoder, retire_encoder
from labelapp.services.learning.steering import PRETRAIN_APPROACHES
from labelapp.services.operations.audit import record_audit
from labelapp.views.console.access import scientist_required


@scientist_required
@require_GET
def model_list(request):
    rows = sel.model_table()
    return render(
        request,
        "console/models.html",
        {
            "rows": rows,
            "live": sel.live_model(),
            "test_fig": sel.metrics_figure(rows, "test"),
            "gate_fig": sel.metrics_figure(rows, "gate"),
            "regimes": sel.REGIMES,
            "regime_names": sel.REGIME_NAMES,
            "encoders": sel.encoder_table(),
            "approaches": PRETRAIN_APPROACHES,
        },
    )


@scientist_required
@require_GET
def encoder_detail(request, pk: int):
    enc = get_object_or_404(PretrainedEncoder, pk=pk)
    ctx = sel.encoder_detail(enc)
    campaign = campaign_encoder()
    ctx["is_campaign_start"] = campaign is not None and campaign.pk == enc.pk
    return render(request, "console/encoder_detail.html", ctx)


@scientist_required
@require_POST
def encoder_retire(request, pk: int):
    """Retire an encoder (kept for provenance, no longer offered to retrains); refused
    while the campaign's retrains start from it. Audited."""
    enc = get_object_or_404(PretrainedEncoder, pk=pk)
    try:
        changed = retire_encoder(
            user=request.user, encoder_id=enc.pk, reason=request.POST.get("reason", "")
        )
    except EncoderError as exc:
        messages.error(request, f"Not retired: {exc}.")
    else:
        if changed:
            messages.success(
                request, f"Encoder v{pk} retired: it is kept, but no retrain starts from it."
            )
        else:
            messages.info(request, f"Encoder v{pk} was already retired.")
    return redirect("console-encoder", pk=pk)


@scientist_required
@require_GET
def model_detail(request, pk: int):
    mv = get_object_or_404(ModelVersion, pk=pk)
    ctx = sel.model_detail(mv)
    ctx["live"] = sel.live_model()
    ctx["regime_names"] = sel.REGIME_NAMES
    return render(request, "console/model_detail.html", ctx)


@scientist_required
@require_POST
def model_promote(request, pk: int):
    """Make this version live (a roll back when it is an earlier one). The promotion gate
    is for new models; a scientist's explicit choice overrides it and is audited."""
    from labelapp.services.learning.promotion import PromotionError, roll_back_to  # imports torch

    mv = get_object_or_404(ModelVersion, pk=pk)
    previous = sel.live_model()
    try:
        with transaction.atomic():
            roll_back_to(model_version=mv, user=request.user)
            record_audit(
                user=request.user,
                action="promote",
                target=f"model:{mv.pk}",
                detail={"previous_live": previous.pk if previous else None},
            )
    except PromotionError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(
            request,
            f"v{mv.pk} is live. Score the catalogue with it so the next round uses it.",
        )
    return redirect("console-model", pk=mv.pk)
