"""The N(z) before and after the CNN cut for the public results page, never built inside a
visitor's request on a large catalogue.

The report is the console's (:func:`labelapp.services.science.redshift.redshift_report` at
its default cut and bin width: three GROUP BYs over the catalogue, seconds at 2.5 million
candidates). The page reads a copy kept for a day; the first visit after it is ``FRESH_S``
old sends a task (``refresh_results_nz``, cpu queue, one at a time: ``LOCK_S``) to rebuild
it, and that visitor, like every other, gets the copy there is. Small
catalogues (up to ``INLINE_MAX_CANDIDATES``) are rebuilt in the request, which costs
milliseconds and needs no worker.
"""

from __future__ import annotations

from django.core.cache import cache

from labelapp.services.operations.dispatch import send_after_commit
from labelapp.services.science import redshift as nz_service

REPORT_KEY = "results:nz:v2"
FRESH_KEY = "results:nz:fresh"
LOCK_KEY = "results:nz:lock"
KEEP_S = 86_400
FRESH_S = 300
LOCK_S = 600
INLINE_MAX_CANDIDATES = 200_000


def refresh_public_nz() -> dict:
    """Build the report now and keep it for the page."""
    report = nz_service.redshift_report(
        cut=nz_service.DEFAULT_CUT, bin_width=nz_service.DEFAULT_BIN_WIDTH
    )
    cache.set(REPORT_KEY, report, KEEP_S)
    cache.set(FRESH_KEY, True, FRESH_S)
    cache.delete(LOCK_KEY)
    return report


def public_nz(*, n_candidates: int) -> dict | None:
    """The page's report: the kept copy (None before the first one on a large catalogue),
    with a refresh sent when it is stale."""
    report = cache.get(REPORT_KEY)
    if report is not None and cache.get(FRESH_KEY):
        return report
    if n_candidates <= INLINE_MAX_CANDIDATES:
        return refresh_public_nz()
    if cache.add(LOCK_KEY, True, LOCK_S):  # one refresh at a time
        send_after_commit("refresh_results_nz")
    return report
