"""PLACEHOLDER: being written this session; replaced before commit."""

from django.http import Http404

from labelapp.views.console.access import scientist_required


@scientist_required
def candidate_flag(request, **kwargs):
    raise Http404("not built yet")


@scientist_required
def expert_queue(request, **kwargs):
    raise Http404("not built yet")


@scientist_required
def expert_answer(request, **kwargs):
    raise Http404("not built yet")


@scientist_required
def gold_list(request, **kwargs):
    raise Http404("not built yet")


@scientist_required
def gold_edit(request, **kwargs):
    raise Http404("not built yet")
