"""The volunteer pages in Spanish and German, in headless Chromium on a 1280 x 800 desktop and
a 360 x 740 phone: the footer's switcher changes the language, a candidate is classified in
Spanish (the script's strings come from /i18n/js/ under the enforced CSP), and the translated
pages (German is the longest) keep 44 px tap targets, no sideways scrolling, the start button
on the phone's first screen, and no serious or critical axe-core violation."""

from __future__ import annotations

import pytest

from tests.browser import axe
from tests.browser.test_volunteer_layout_browser import (
    SCREENS,
    VOLUNTEER_PAGES,
    site,  # noqa: F401  (the fixture)
)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def _overflow(page) -> int:
    """How many css px the page is wider than the screen (0: no sideways scrolling)."""
    return page.evaluate("() => document.documentElement.scrollWidth - innerWidth")


@pytest.mark.parametrize("screen", ["desktop", "phone"])
def test_switch_to_spanish_and_classify_one_candidate(chromium, site, shot, screen):  # noqa: F811
    context = chromium.new_context(**SCREENS[screen])
    page = context.new_page()
    page.goto(site + "/")
    assert page.locator("html").get_attribute("lang") == "en"
    switcher = page.locator("#lang-form")
    assert page.get_by_label("Language").is_visible()
    page.select_option("#lang-select", "es")
    with page.expect_navigation():
        switcher.locator("button[type=submit]").click()
    assert page.url == site + "/"  # back where the volunteer was
    assert page.locator("html").get_attribute("lang") == "es"
    start = page.get_by_role("link", name="Empezar a clasificar")
    assert start.is_visible()
    if screen == "phone":
        box = start.bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 740, box
    assert _overflow(page) <= 0
    shot(page, f"i18n-{screen}-es-home", full_page=False)

    page.goto(site + "/classify/?skip=1")
    page.wait_for_function(
        "() => { const i = document.getElementById('cutout'); "
        "return i.complete && i.naturalWidth > 0 && document.getElementById('classify')"
        ".dataset.detectid; }"
    )
    assert page.locator("#question").inner_text() == "¿Hay una línea de emisión real en el centro?"
    assert page.locator("#cutout").get_attribute("alt").startswith("Candidato ")  # from the JS
    page.locator("button[data-answer='yes']").click()  # a teaching example (gold rate 1)
    page.wait_for_selector("#feedback:not([hidden])")
    verdict = page.locator("#feedback-verdict").inner_text()
    assert verdict.startswith(("¡Correcto!", "No exactamente")), verdict
    text = page.locator("#feedback-text").inner_text()
    assert text and not text.startswith(("A ", "That ", "Just ")), text  # told in Spanish
    assert page.locator("#count").inner_text() == "1 clasificado"
    assert page.get_by_role("button", name="Continuar").is_visible()
    assert _overflow(page) <= 0
    shot(page, f"i18n-{screen}-es-classify-feedback", full_page=False)
    assert not axe.small_targets(page) and not axe.violations(page)
    context.close()


@pytest.mark.parametrize("screen", ["desktop", "phone"])
@pytest.mark.parametrize("lang", ["de", "es"])
def test_translated_pages_fit_and_pass_axe(chromium, site, shot, screen, lang):  # noqa: F811
    context = chromium.new_context(**SCREENS[screen])
    context.add_cookies([{"name": "django_language", "value": lang, "url": site}])
    page = context.new_page()
    for path in VOLUNTEER_PAGES:
        page.goto(site + path)
        page.wait_for_load_state("networkidle")
        assert page.locator("html").get_attribute("lang") == lang, path
        small = axe.small_targets(page)
        assert not small, f"{lang} {screen} {path}: tap targets under 44 px: {small}"
        assert _overflow(page) <= 0, f"{lang} {screen} {path}: wider than the screen"
        found = axe.violations(page)
        assert not found, f"{lang} {screen} {path}: axe-core: {found}"
        name = path.split("?")[0].strip("/").replace("/", "-") or "home"
        shot(page, f"i18n-{screen}-{lang}-{name}")
        if path.startswith("/classify/"):  # the answers cost the first screen nothing
            page.wait_for_function("() => document.getElementById('classify').dataset.detectid")
            height = SCREENS[screen]["viewport"]["height"]
            for answer in ("yes", "no", "unsure"):
                box = page.locator(f"button[data-answer='{answer}']").bounding_box()
                assert box["y"] + box["height"] <= height, (lang, screen, answer, box)
            shot(page, f"i18n-{screen}-{lang}-classify-first-screen", full_page=False)
    if screen == "phone":
        page.goto(site + "/")
        start = {"de": "Jetzt klassifizieren", "es": "Empezar a clasificar"}[lang]
        box = page.get_by_role("link", name=start).bounding_box()
        assert box["y"] >= 0 and box["y"] + box["height"] <= 740, box
        topbar = page.locator("header.topbar").bounding_box()
        assert topbar["height"] <= 120, f"{lang}: the top bar takes {topbar['height']} px"
        shot(page, f"i18n-phone-{lang}-first-screen", full_page=False)
    context.close()
