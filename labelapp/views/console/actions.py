"""PLACEHOLDER: being written this session; replaced before commit."""

from django.http import Http404

from labelapp.views.console.access import scientist_required


@scientist_required
def start_round(request, **kwargs):
    raise Http404("not built yet")


@scientist_required
def trigger_retrain(request, **kwargs):
    raise Http404("not built yet")


@scientist_required
def trigger_scoring(request, **kwargs):
    raise Http404("not built yet")


@scientist_required
def acquisition_settings(request, **kwargs):
    raise Http404("not built yet")
