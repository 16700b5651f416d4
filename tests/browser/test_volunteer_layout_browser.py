"""Issue 28's layout fixes in headless Chromium, on a 1280 x 800 desktop and a 360 x 740
phone (and a few other screens for the feedback): the picture stays on screen while a
teaching example's feedback is read, tap targets are 44 css px at least, "Start
classifying" is on the phone's first screen, the answer buttons are not cut at 1280 x 800,
and axe-core finds no serious or critical violation on the volunteer pages."""

from __future__ import annotations

import pytest

from labelapp.services.crowd import queue
from labelapp.services.crowd.gold import seed_gold_from_truth
from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey
from tests.browser import axe
from tests.browser.accounts import log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {
    "viewport": {"width": 360, "height": 740},
    "has_touch": True,
    "is_mobile": True,
    "device_scale_factor": 2,
}
SCREENS = {
    "desktop": DESKTOP,
    "laptop-1366x768": {"viewport": {"width": 1366, "height": 768}},
    "tablet-768x1024": {"viewport": {"width": 768, "height": 1024}, "has_touch": True},
    "phone": PHONE,
    "phone-390x844": {**PHONE, "viewport": {"width": 390, "height": 844}},
}
VOLUNTEER_PAGES = [
    "/",
    "/classify/?skip=1",
    "/tutorial/",
    "/field-guide/",
    "/me/",
    "/talk/",
    "/results/",
    "/privacy/",
    "/accounts/login/",
    "/accounts/signup/",
    "/api/",  # the volunteer API page (generated from the schema)
]


@pytest.fixture
def site(live_server, tmp_path, settings, monkeypatch, request):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(120, seed=4)))
    settings.EXAM_GOLD_SHARE = 0.0  # teaching gold: the layout is measured under its feedback
    assert seed_gold_from_truth(per_kind=2) > 5
    monkeypatch.setattr(queue, "gold_rate", lambda n: 1.0)  # the first candidate is gold
    return live_server.url


def _visible_fraction(page, selector: str) -> float:
    """The fraction of the element's height inside the viewport."""
    return page.evaluate(
        """sel => { const r = document.querySelector(sel).getBoundingClientRect();
                    const seen = Math.min(r.bottom, innerHeight) - Math.max(r.top, 0);
                    return Math.max(0, seen) / r.height; }""",
        selector,
    )


@pytest.mark.parametrize("screen", list(SCREENS))
def test_gold_feedback_keeps_the_picture_on_screen(chromium, site, shot, screen):
    context = chromium.new_context(**SCREENS[screen])
    page = context.new_page()
    page.goto(site + "/classify/?skip=1")
    page.wait_for_function(
        "() => { const i = document.getElementById('cutout'); "
        "return i.complete && i.naturalWidth > 0 && document.getElementById('classify')"
        ".dataset.detectid; }"
    )
    page.locator("button[data-answer='yes']").click()
    page.wait_for_selector("#feedback:not([hidden])")
    page.wait_for_timeout(300)
    shot(page, f"feedback-{screen}", full_page=False)
    picture = _visible_fraction(page, "#cutout-box")
    verdict = _visible_fraction(page, "#feedback-verdict")
    assert picture >= 0.98, f"{screen}: only {picture:.0%} of the picture is on screen"
    assert verdict == 1.0, f"{screen}: the feedback's verdict is off screen"
    context.close()


@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_volunteer_pages_tap_targets_and_accessibility(chromium, site, shot, screen):
    context = chromium.new_context(**SCREENS[screen])
    page = context.new_page()
    for path in VOLUNTEER_PAGES:
        page.goto(site + path)
        page.wait_for_load_state("networkidle")
        small = axe.small_targets(page)
        assert not small, f"{screen} {path}: tap targets under 44 px: {small}"
        found = axe.violations(page)
        assert not found, f"{screen} {path}: axe-core: {found}"
        shot(page, f"layout-{screen}-{path.split('?')[0].strip('/').replace('/', '-') or 'home'}")
    context.close()


def test_start_button_is_on_the_phones_first_screen(chromium, site):
    context = chromium.new_context(**PHONE)
    page = context.new_page()
    page.goto(site + "/")
    box = page.get_by_role("link", name="Start classifying").bounding_box()
    assert box["y"] >= 0 and box["y"] + box["height"] <= 740, box
    context.close()


def test_answer_buttons_fit_a_1280x800_screen(chromium, site):
    page = chromium.new_page(**DESKTOP)
    page.goto(site + "/classify/?skip=1")
    page.wait_for_function("() => document.getElementById('classify').dataset.detectid")
    for answer in ("yes", "no", "unsure"):
        box = page.locator(f"button[data-answer='{answer}']").bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 800, (answer, box)
    assert _visible_fraction(page, "#cutout-box") == 1.0
    page.close()


@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_a_volunteer_opening_the_console_gets_the_styled_403(chromium, site, shot, screen):
    from tests.factories_console import make_account

    user = make_account(f"amateur-{screen}")
    context = chromium.new_context(**SCREENS[screen])
    page = context.new_page()
    log_in(page, site, user.username, lands=None)
    resp = page.goto(site + "/console/")
    assert resp.status == 403
    assert page.locator("header.topbar").is_visible()  # the site's own layout
    assert page.get_by_role("link", name="Keep classifying").is_visible()
    assert page.evaluate("() => getComputedStyle(document.body).fontFamily").startswith("system-ui")
    assert not axe.small_targets(page) and not axe.violations(page)
    shot(page, f"layout-{screen}-403")
    context.close()
