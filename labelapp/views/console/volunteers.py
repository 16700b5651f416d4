"""PLACEHOLDER: being written this session; replaced before commit."""

from django.http import Http404

from labelapp.views.console.access import scientist_required


@scientist_required
def volunteers(request, **kwargs):
    raise Http404("not built yet")
