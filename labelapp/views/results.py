"""Public pages for volunteers: what the project achieved so far, and the privacy and credit
policy. No login needed; reads only (labelapp.selectors.results)."""

from __future__ import annotations

from django.conf import settings
from django.shortcuts import render
from django.views.decorators.http import require_GET

from labelapp.selectors import results as sel
from labelapp.services.crowd.volunteers import get_volunteer
from labelapp.services.science import redshift as nz_service


@require_GET
def results(request):
    rows = sel.accuracy_rows()
    report = nz_service.redshift_report(
        cut=nz_service.DEFAULT_CUT, bin_width=nz_service.DEFAULT_BIN_WIDTH
    )  # the console's defaults: one cached report serves both pages
    return render(
        request,
        "volunteer/results.html",
        {
            "counts": sel.live_counts(),
            "accuracy_rows": rows,
            "accuracy_fig": sel.accuracy_figure(rows),
            "unmeasured": [r for r in rows if not r["headline"]["measured"]],
            "nz": sel.nz_summary(report),
            "nz_fig": sel.nz_figure(report),
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
