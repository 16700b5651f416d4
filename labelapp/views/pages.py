"""Pages to look at candidates (the volunteer classify pages build on these)."""

from django.db.models import Count
from django.http import FileResponse, HttpResponseBadRequest
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from labelapp.errors import InvalidInput
from labelapp.models import Candidate, IngestBatch
from labelapp.selectors.regimes import regime_q
from labelapp.services.survey.rendering import check_cutout_view, cutout_png_path, spectrum_figure
from mlcore.render import DEFAULT_CMAP, DEFAULT_STRETCH


@require_GET
def home(request):
    stats = Candidate.objects.aggregate(
        total=Count("id"),
        low=Count("id", filter=regime_q("low")),
    )
    examples = Candidate.objects.order_by("sn").values("detectid", "wave", "sn", "field")[:12]
    return render(
        request,
        "home.html",
        {
            "stats": stats,
            "batches": IngestBatch.objects.all()[:10],
            "examples": examples,
        },
    )


@require_GET
def candidate_detail(request, detectid: int):
    candidate = get_object_or_404(Candidate.objects.select_related("batch"), detectid=detectid)
    return render(
        request,
        "candidate_detail.html",
        {
            "candidate": candidate,
            "spectrum": spectrum_figure(candidate),
        },
    )


@require_GET
@cache_control(max_age=86400, public=True)  # a rendering never changes for a render version
def candidate_cutout(request, detectid: int):
    """The cutout PNG; ``?stretch=linear|asinh|log|sqrt&cmap=viridis|cividis|grey`` (the
    classify page's image tools) pick another view, rendered once and cached on disk."""
    stretch = request.GET.get("stretch", DEFAULT_STRETCH)
    cmap = request.GET.get("cmap", DEFAULT_CMAP)
    try:
        check_cutout_view(stretch=stretch, cmap=cmap)
    except InvalidInput as exc:
        return HttpResponseBadRequest(exc.message, content_type="text/plain; charset=utf-8")
    candidate = get_object_or_404(Candidate.objects.select_related("batch"), detectid=detectid)
    path = cutout_png_path(candidate, stretch=stretch, cmap=cmap)
    return FileResponse(open(path, "rb"), content_type="image/png")
