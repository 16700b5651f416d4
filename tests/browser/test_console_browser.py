"""The console's main pages in headless Chromium: plots drawn, no script errors, and the
confirm-before-acting dialog on a roll back. Screenshots go to test-artifacts/browser/."""

import pytest

from labelapp.models import AuditEvent, ModelVersion
from tests.browser.accounts import scientist_page

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def page(chromium, live_server, console_campaign):
    ctx, pg = scientist_page(chromium, live_server.url)
    yield pg
    ctx.close()


@pytest.mark.parametrize(
    "path,plots",
    [("/console/", 1), ("/console/models/", 2), ("/console/volunteers/", 2)],
)
def test_console_page_draws_its_plots(page, live_server, shot, path, plots):
    page.goto(live_server.url + path)
    page.wait_for_selector("[data-plot] .main-svg")
    drawn = page.locator("[data-plot] .main-svg").count()
    assert drawn >= plots  # each plot holder got an SVG from plotly
    assert page.locator("a", has_text="Console").count() == 1  # shown to scientists only
    shot(page, "console" + path.strip("/").replace("/", "-").replace("console", ""))
    assert page.errors == []


def test_model_page_and_roll_back_with_confirmation(page, live_server, shot, console_campaign):
    old = console_campaign["old"]
    page.goto(f"{live_server.url}/console/models/{old.pk}/")
    page.wait_for_selector("[data-plot] .main-svg")
    shot(page, "console-model-detail")
    page.once("dialog", lambda d: d.dismiss())  # "Cancel": nothing happens
    page.click("form[data-confirm] button[type=submit]")
    assert ModelVersion.objects.get(pk=old.pk).status == "retired"
    page.once("dialog", lambda d: d.accept())
    page.click("form[data-confirm] button[type=submit]")
    page.wait_for_selector(".messages li.success")
    assert ModelVersion.objects.get(pk=old.pk).status == "promoted"
    assert AuditEvent.objects.filter(action="promote", username="astro").count() == 1
    assert page.errors == []


def test_gallery_and_candidate_dossier(page, live_server, shot, console_campaign):
    page.goto(live_server.url + "/console/gallery/")
    first = page.locator("#real figure img").first
    first.wait_for()
    page.wait_for_function(
        "img => img.complete && img.naturalWidth > 0", arg=first.element_handle()
    )
    shot(page, "console-gallery")
    page.locator("#real figcaption a").first.click()
    page.wait_for_selector("#spectrum .main-svg")
    shot(page, "console-candidate")
    assert page.errors == []


def test_gold_page_shows_the_held_out_sample(page, live_server, shot):
    from labelapp.services.learning.holdout import hold_out_from_truth

    assert hold_out_from_truth(n=40, low_share=0.5, seed=0) == 40
    page.goto(live_server.url + "/console/gold/")
    summary = page.locator("#holdout-summary")
    assert summary.is_visible() and "40 candidates" in summary.inner_text()
    shot(page, "console-gold")
    assert page.errors == []


def test_exports_page_offers_the_astronomy_formats(page, live_server, shot):
    page.goto(live_server.url + "/console/exports/")
    for label in ("FITS", "CSV", "ECSV", "VOTable"):
        assert page.get_by_role("button", name=label, exact=True).count() == 1, label
    shot(page, "console-exports")
    assert page.errors == []
