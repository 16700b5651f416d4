"""PLACEHOLDER: being written this session; replaced before commit."""

from django.http import Http404

from labelapp.views.console.access import scientist_required


@scientist_required
def redshift(request, **kwargs):
    raise Http404("not built yet")


@scientist_required
def external(request, **kwargs):
    raise Http404("not built yet")
