"""Public pages for volunteers: what the project achieved so far, and the privacy and credit
policy. No login needed; reads only (labelapp.selectors.results)."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.shortcuts import render
from django.views.decorators.http import require_GET

from labelapp.selectors import results as sel
from labelapp.services.crowd.volunteers import get_volunteer
from labelapp.services.science import redshift as nz_service

NZ_TTL_S = 300


@require_GET
def results(request):
    rows = sel.accuracy_rows()
    # The console's report at its defaults (its own cache is shared with the console's N(z)
    # page), held here for NZ_TTL_S whatever lands meanwhile: the console's key changes with
    # every scoring chunk, and a public page must not rebuild it on each visit of a run.
    report = cache.get_or_set(
        "results:nz:v1",
        lambda: nz_service.redshift_report(
            cut=nz_service.DEFAULT_CUT, bin_width=nz_service.DEFAULT_BIN_WIDTH
        ),
        NZ_TTL_S,
    )
    return render(
        request,
        "volunteer/results.html",
        {
            "counts": sel.live_counts(),
            "accuracy_rows": rows,
            "accuracy_fig": sel.accuracy_figure(rows),
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
