"""Where is the model out of its depth: the shift reports of the live model."""

from django.shortcuts import render
from django.views.decorators.http import require_GET

from labelapp.selectors.models import live_model
from labelapp.selectors.shift import shift_overview
from labelapp.views.console.access import scientist_required


@scientist_required
@require_GET
def shift(request):
    return render(request, "console/shift.html", shift_overview(live_model()))
