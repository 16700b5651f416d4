"""Campaign overview, live progress of long tasks, and the audit log."""

from django.core.paginator import Paginator
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from labelapp.models import AuditEvent
from labelapp.selectors import campaign as sel
from labelapp.selectors import models as models_sel
from labelapp.services.learning.acquisition_settings import acquisition_settings
from labelapp.services.learning.encoders import campaign_encoder
from labelapp.views.console.access import scientist_required


@scientist_required
@require_GET
def campaign(request):
    ctx = sel.campaign_overview()
    ctx["activity_fig"] = sel.activity_figure(ctx["activity"])
    ctx["acquisition"] = acquisition_settings()
    # the Retrain form offers the encoders a retrain can start from (not retired, the
    # retrain's architecture), and the campaign setting as its default
    ctx["encoders"] = [r for r in models_sel.encoder_table() if r["offered"]]
    ctx["campaign_encoder"] = campaign_encoder()
    return render(request, "console/campaign.html", ctx)


@scientist_required
@require_GET
def progress_json(request):
    return JsonResponse({"tasks": sel.progress_payload()})


@scientist_required
@require_GET
def audit_log(request):
    events = AuditEvent.objects.all()
    action = request.GET.get("action", "")
    if action:
        events = events.filter(action=action)
    page = Paginator(events, 50).get_page(request.GET.get("page"))
    actions = AuditEvent.objects.order_by().values_list("action", flat=True).distinct()
    return render(
        request,
        "console/audit.html",
        {"page": page, "action": action, "actions": sorted(actions)},
    )
