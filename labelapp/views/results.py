"""Public pages for volunteers: what the project achieved so far, and the privacy and credit
policy. No login needed; reads only (labelapp.selectors.results)."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import render
from django.views.decorators.http import require_GET

from labelapp.selectors import results as sel
from labelapp.services.crowd.volunteers import get_volunteer
from labelapp.services.science.public_nz import public_nz


@require_GET
def results(request):
    rows = sel.accuracy_rows()
    counts = sel.live_counts()
    report = public_nz(n_candidates=counts["candidates"])  # never built here on a big catalogue
    return render(
        request,
        "volunteer/results.html",
        {
            "counts": counts,
            "accuracy_rows": rows,
            "accuracy_fig": sel.accuracy_figure(rows),
            "nz": sel.nz_summary(report) if report else None,
            "nz_fig": sel.nz_figure(report) if report else None,
            "external": sel.external_confirmation(),
            "news": sel.news_items(),
        },
    )


@require_GET
def privacy(request):
    return render(
        request,
        "volunteer/privacy.html",
        {
            "session_days": settings.SESSION_COOKIE_AGE // 86400,
            "contact": settings.LABELAPP_CONTACT_EMAIL,
            # the number to quote when asking for deletion (never creates a volunteer)
            "volunteer": get_volunteer(session=request.session, user=request.user),
        },
    )
