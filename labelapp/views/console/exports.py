"""PLACEHOLDER: being written this session; replaced before commit."""

from django.http import Http404

from labelapp.views.console.access import scientist_required


@scientist_required
def model_card(request, **kwargs):
    raise Http404("not built yet")


@scientist_required
def model_weights(request, **kwargs):
    raise Http404("not built yet")


@scientist_required
def exports(request, **kwargs):
    raise Http404("not built yet")


@scientist_required
def export_catalogue(request, **kwargs):
    raise Http404("not built yet")


@scientist_required
def export_votes(request, **kwargs):
    raise Http404("not built yet")
