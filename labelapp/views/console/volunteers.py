"""Volunteers: skills with uncertainty, activity, suspected spammers."""

from django.shortcuts import render
from django.views.decorators.http import require_GET

from labelapp.selectors import volunteers as sel
from labelapp.views.console.access import scientist_required


@scientist_required
@require_GET
def volunteers(request):
    rows = sel.skill_rows()
    return render(
        request,
        "console/volunteers.html",
        {
            "skill_fig": sel.skill_figure(rows),
            "activity_fig": sel.activity_histogram(),
            "spammers": sel.suspected_spammers(),
            "top": rows[:25],
            "spam_min_votes": sel.SPAM_MIN_VOTES,
        },
    )
