"""The attribution gallery and the console's candidate dossier."""

from django.http import FileResponse, Http404
from django.shortcuts import get_object_or_404, render
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET

from labelapp.models import Candidate, ModelVersion
from labelapp.selectors import candidates as sel
from labelapp.selectors.models import live_model
from labelapp.services.survey.rendering import spectrum_figure
from labelapp.views.console.access import scientist_required
from mlcore.survey import TRUTH_TYPES


def _model_from(request) -> ModelVersion | None:
    pk = request.GET.get("model", "")
    if pk:
        if not pk.isdigit():
            raise Http404("model must be a model version number")
        return get_object_or_404(ModelVersion, pk=int(pk))
    return live_model()


@scientist_required
@require_GET
def gallery(request):
    mv = _model_from(request)
    regime = request.GET.get("regime", "")
    if regime not in ("", "low", "high"):
        regime = ""
    lists = sel.gallery(model_version_id=mv.pk, regime=regime) if mv else {}
    sections = [(key, title, lists.get(key, [])) for key, title in sel.SECTIONS]
    return render(
        request,
        "console/gallery.html",
        {
            "mv": mv,
            "regime": regime,
            "sections": sections,
            "models": ModelVersion.objects.exclude(status=ModelVersion.Status.REJECTED)[:20],
        },
    )


@scientist_required
@require_GET
def candidate(request, detectid: int):
    cand = get_object_or_404(Candidate.objects.select_related("batch"), detectid=detectid)
    dossier = sel.candidate_dossier(cand)
    return render(
        request,
        "console/candidate.html",
        {
            **dossier,
            "spectrum": spectrum_figure(cand),
            "posterior_fig": sel.posterior_figure(dossier),
            "live": live_model(),
            "truth_types": TRUTH_TYPES,
        },
    )


@scientist_required
@require_GET
@cache_control(max_age=86400, private=True)  # a model's map of a candidate never changes
def attribution_png(request, detectid: int, pk: int):
    from labelapp.services.learning.attribution import attribution_png_path  # torch, lazily

    cand = get_object_or_404(Candidate.objects.select_related("batch"), detectid=detectid)
    mv = get_object_or_404(ModelVersion, pk=pk)
    try:
        path = attribution_png_path(candidate=cand, model_version=mv)
    except FileNotFoundError as exc:
        raise Http404(str(exc)) from None
    return FileResponse(open(path, "rb"), content_type="image/png")
