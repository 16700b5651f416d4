"""Every console page at 0 serious or critical axe-core violations (WCAG 2.1 A/AA), on a
campaign with a live model and on a fresh project with none; a screenshot of each page goes
to test-artifacts/browser/ (issue #27: the console reads well from day one)."""

from __future__ import annotations

import pytest

from labelapp.models import Candidate, GoldStandard
from tests.browser.accounts import scientist_page
from tests.browser.axe import violations

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PAGES = [
    "/console/",
    "/console/audit/",
    "/console/volunteers/",
    "/console/volunteers/suspicious/",
    "/console/models/",
    "/console/models/shift/",
    "/console/redshift/",
    "/console/external/",
    "/console/zooniverse/",
    "/console/gallery/",
    "/console/expert/",
    "/console/gold/",
    "/console/talk/",
    "/console/settings/acquisition/",
    "/console/exports/",
    "/console/tokens/",
    "/console/news/",
]


def _audit(page, live_server, shot, paths, tag) -> dict[str, list]:
    found = {}
    for path in paths:
        page.goto(live_server.url + path)
        page.wait_for_load_state("networkidle")
        if page.locator("[data-plot]").count():
            page.wait_for_selector("[data-plot] .main-svg")
        bad = violations(page)
        if bad:
            found[path] = [(v["id"], v["nodes"]) for v in bad]
        shot(page, f"axe-{tag}-" + (path.strip("/").replace("/", "-") or "home"))
    return found


def test_every_console_page_with_a_live_model(chromium, live_server, shot, console_campaign):
    ctx, page = scientist_page(chromium, live_server.url)
    cand = Candidate.objects.filter(gold__isnull=True).order_by("detectid").first()
    gold = GoldStandard.objects.select_related("candidate").first()
    extra = [
        f"/console/models/{console_campaign['live'].pk}/",
        f"/console/candidates/{cand.detectid}/",
        f"/console/gold/{gold.candidate.detectid}/",
    ]
    assert _audit(page, live_server, shot, PAGES + extra, "live") == {}
    assert page.errors == []
    ctx.close()


def test_every_console_page_on_a_fresh_project(chromium, live_server, shot):
    """No survey, no model, no votes: every page still renders, says what to do next and
    passes axe."""
    ctx, page = scientist_page(chromium, live_server.url)
    assert _audit(page, live_server, shot, PAGES, "fresh") == {}
    page.goto(live_server.url + "/console/")
    assert "No model yet" in page.content()
    assert page.errors == []
    ctx.close()


def test_the_zooniverse_page_with_imports_and_a_comparison(chromium, live_server, shot, tmp_path):
    """The comparison, votes-needed and imports tables (empty states are audited above)."""
    from django.core.management import call_command

    from tests.test_zooniverse_report import import_three_subjects

    import_three_subjects(tmp_path)
    call_command("zooniverse_report", "--no-retire")
    ctx, page = scientist_page(chromium, live_server.url)
    assert _audit(page, live_server, shot, ["/console/zooniverse/"], "data") == {}
    assert page.locator("#comparison-table").count() == 1
    assert page.locator("#needed-table").count() == 1
    assert page.locator("#imports-table tbody tr").count() == 1
    assert page.errors == []
    ctx.close()
