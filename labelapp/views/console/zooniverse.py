"""Zooniverse behind the platform: the skill-weighted labels against DEE's fixed 10-vote
rule, and what each import counted."""

from django.shortcuts import render
from django.views.decorators.http import require_GET

from labelapp.selectors.zooniverse import zooniverse_overview
from labelapp.views.console.access import scientist_required


@scientist_required
@require_GET
def zooniverse(request):
    return render(request, "console/zooniverse.html", zooniverse_overview())
