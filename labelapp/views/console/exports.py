"""Console downloads: the catalogue (FITS/CSV), the classification records, model cards and
weights. Thin: the work is in labelapp.services.science.exports; every download is audited."""

from __future__ import annotations

from django.db.models import Sum
from django.http import FileResponse, Http404, JsonResponse, StreamingHttpResponse
from django.shortcuts import render

from labelapp.models import AggregationRun, IngestBatch, ModelVersion
from labelapp.selectors.campaign import activity
from labelapp.selectors.models import live_model
from labelapp.services.operations.audit import record_audit
from labelapp.services.science import exports as svc
from labelapp.views.console.access import scientist_required


@scientist_required
def exports(request):
    live = live_model()
    run = AggregationRun.objects.filter(status=AggregationRun.Status.DONE).order_by("-pk").first()
    return render(
        request,
        "console/exports.html",
        {
            # the catalogue only grows by ingest: the batches know its size without a scan
            "n_candidates": IngestBatch.objects.aggregate(n=Sum("n_candidates"))["n"] or 0,
            "n_votes": activity()["votes_total"],  # cached for a minute with the campaign page
            "models": ModelVersion.objects.order_by("-pk"),
            "live": live,
            "run": run,
        },
    )


@scientist_required
def export_catalogue(request, fmt: str):
    if fmt not in svc.CATALOGUE_FORMATS:
        raise Http404(
            f"Unknown catalogue format '{fmt}': download catalogue.fits, .csv, .ecsv or .vot."
        )
    model_id = request.GET.get("model") or None
    if model_id is not None and not model_id.isdigit():
        raise Http404(f"'{model_id}' is not a model version number.")
    try:
        export = svc.open_catalogue_export(
            fmt=fmt, model_version_id=int(model_id) if model_id else None
        )
    except svc.ExportError as exc:
        raise Http404(str(exc)) from exc
    record_audit(
        user=request.user, action="export", target=f"catalogue.{fmt}", detail=export.detail
    )
    return _streaming(export)


@scientist_required
def export_votes(request):
    export = svc.open_votes_export()
    record_audit(
        user=request.user, action="export", target="classifications.csv", detail=export.detail
    )
    return _streaming(export)


@scientist_required
def model_card(request, pk: int):
    try:
        card = svc.model_card(svc.get_model_version(pk))
    except svc.ExportError as exc:
        raise Http404(str(exc)) from exc
    record_audit(user=request.user, action="export", target=f"model-v{pk}/card.json")
    response = JsonResponse(card, json_dumps_params={"indent": 2})
    response["Content-Disposition"] = f'inline; filename="hetdex-model-v{pk}-card.json"'
    return response


@scientist_required
def model_weights(request, pk: int):
    try:
        path = svc.model_weights_path(svc.get_model_version(pk))
    except svc.ExportError as exc:
        raise Http404(str(exc)) from exc
    record_audit(
        user=request.user,
        action="export",
        target=f"model-v{pk}/weights.pt",
        detail={"bytes": path.stat().st_size},
    )
    return FileResponse(
        open(path, "rb"),
        as_attachment=True,
        filename=f"hetdex-model-v{pk}.pt",
        content_type="application/octet-stream",
    )


def _streaming(export: svc.Export) -> StreamingHttpResponse:
    response = StreamingHttpResponse(export.chunks, content_type=export.content_type)
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    if export.size is not None:
        response["Content-Length"] = str(export.size)
    response["X-Export-Rows"] = str(export.n_rows)
    return response
