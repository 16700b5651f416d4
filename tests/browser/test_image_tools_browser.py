"""The classify page's image tools in headless Chromium, on a 1280 x 800 desktop and a
360 x 740 phone: the contrast stretch and colour map change the picture (server-rendered,
so the pixels are read back and compared), the choice survives a reload (localStorage), and
the field guide opens in a drawer beside the picture, by button or key, and closes with
Escape, focus going back where it was. axe-core: no serious or critical violation with the
tools and the drawer open. Screenshots go to test-artifacts/browser/."""

from __future__ import annotations

import pytest

from labelapp.services.crowd import queue
from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey
from tests.browser import axe
from tests.browser.screens import SCREENS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


# The mean colour of the picture's summed panel as the browser decoded it.
MEAN_RGB_JS = """() => { const i = document.getElementById('cutout');
  const c = document.createElement('canvas'); c.width = i.naturalWidth; c.height = i.naturalHeight;
  const g = c.getContext('2d'); g.drawImage(i, 0, 0);
  const d = g.getImageData(0, 8, c.width, 54).data; const m = [0, 0, 0];
  for (let k = 0; k < d.length; k += 4) { m[0] += d[k]; m[1] += d[k + 1]; m[2] += d[k + 2]; }
  const n = d.length / 4; return m.map(v => v / n); }"""
READY_JS = """src => { const i = document.getElementById('cutout');
  return i.complete && i.naturalWidth > 0 && document.getElementById('classify').dataset.detectid
    && (src === null || i.src.includes(src)); }"""


@pytest.fixture
def site(live_server, tmp_path, settings, monkeypatch, request):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(60, seed=4)))
    monkeypatch.setattr(queue, "gold_rate", lambda n: 0.0)
    return live_server.url


def _visible_fraction(page, selector: str, bottom: float | None = None) -> float:
    """The fraction of the element's height on screen (above ``bottom``, e.g. a sheet)."""
    return page.evaluate(
        """([sel, bottom]) => { const r = document.querySelector(sel).getBoundingClientRect();
             const seen = Math.min(r.bottom, bottom ?? innerHeight) - Math.max(r.top, 0);
             return Math.max(0, seen) / r.height; }""",
        [selector, bottom],
    )


@pytest.mark.parametrize("screen", list(SCREENS))
def test_stretch_and_colour_map_change_the_picture_and_are_remembered(chromium, site, shot, screen):
    context = chromium.new_context(**SCREENS[screen])
    page = context.new_page()
    page.goto(site + "/classify/?skip=1")
    page.wait_for_function(READY_JS, arg=None)
    before = page.evaluate(MEAN_RGB_JS)
    assert "stretch=" not in page.locator("#cutout").get_attribute("src")  # default view

    page.locator("#view-toggle").click()
    assert page.locator("#image-tools").is_visible()
    assert page.locator("#view-toggle").get_attribute("aria-expanded") == "true"
    found = axe.violations(page)
    assert not found, f"{screen} tools open: axe-core: {found}"
    assert not axe.small_targets(page), axe.small_targets(page)

    page.select_option("#view-cmap", "grey")
    page.wait_for_function(READY_JS, arg="cmap=grey")
    grey = page.evaluate(MEAN_RGB_JS)
    assert abs(grey[0] - grey[1]) < 0.5 and abs(grey[1] - grey[2]) < 0.5, grey  # grey: r = g = b
    assert abs(before[0] - before[2]) > 10, before  # viridis was not grey

    page.select_option("#view-stretch", "asinh")
    page.select_option("#view-cmap", "cividis")
    page.wait_for_function(READY_JS, arg="stretch=asinh&cmap=cividis")
    civ = page.evaluate(MEAN_RGB_JS)
    assert civ != before and civ != grey
    shot(page, f"image-tools-{screen}", full_page=False)
    page.screenshot(path=f"/tmp/image-tools-{screen}.png")

    # remembered: a new page load asks for the same view, and the next candidate too
    page.reload()
    page.wait_for_function(READY_JS, arg="stretch=asinh&cmap=cividis")
    assert page.locator("#view-stretch").input_value() == "asinh"
    assert page.locator("#view-cmap").input_value() == "cividis"
    assert page.locator("#image-tools").is_hidden()  # the panel itself starts closed
    first = page.evaluate("() => document.getElementById('classify').dataset.detectid")
    page.locator("button[data-answer='unsure']").click()
    page.wait_for_function(
        """old => { const r = document.getElementById('classify');
                    return r.dataset.detectid !== old && !r.classList.contains('busy'); }""",
        arg=first,
    )
    page.wait_for_function(READY_JS, arg="stretch=asinh&cmap=cividis")
    context.close()


@pytest.mark.parametrize("screen", list(SCREENS))
def test_field_guide_drawer_opens_beside_the_picture_and_closes_with_escape(
    chromium, site, shot, screen
):
    context = chromium.new_context(**SCREENS[screen])
    page = context.new_page()
    page.goto(site + "/classify/?skip=1")
    page.wait_for_function(READY_JS, arg=None)
    opener = page.locator("#guide-open")
    assert opener.get_attribute("target") is None  # no new tab any more

    opener.click()
    drawer = page.locator("#guide-drawer")
    assert drawer.is_visible()
    page.wait_for_selector("#guide-drawer .drawer-entry")
    assert page.locator("#guide-drawer .drawer-entry").count() >= 8
    page.wait_for_function(
        "() => [...document.querySelectorAll('#guide-drawer img')].slice(0, 2)"
        ".every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.evaluate("() => document.activeElement.id") == "guide-drawer"
    assert opener.get_attribute("aria-expanded") == "true"
    sheet_top = page.evaluate(
        "() => document.getElementById('guide-drawer').getBoundingClientRect().top"
    )
    if screen == "desktop":  # beside the picture: none of it covered
        left = page.evaluate(
            "() => document.getElementById('guide-drawer').getBoundingClientRect().left"
        )
        right = page.evaluate(
            "() => document.getElementById('cutout-box').getBoundingClientRect().right"
        )
        assert left >= right, (left, right)
        assert _visible_fraction(page, "#cutout-box") == 1.0
    else:  # a bottom sheet: the picture stays visible above it
        assert _visible_fraction(page, "#cutout-box", bottom=sheet_top) >= 0.98
    found = axe.violations(page)
    assert not found, f"{screen} drawer open: axe-core: {found}"
    assert not axe.small_targets(page), axe.small_targets(page)
    shot(page, f"guide-drawer-{screen}", full_page=False)
    page.screenshot(path=f"/tmp/guide-drawer-{screen}.png")

    # the drawer scrolls with the keyboard without answering anything
    before = page.evaluate("() => document.getElementById('classify').dataset.detectid")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    assert page.evaluate("() => document.getElementById('classify').dataset.detectid") == before
    assert page.locator("#undo").is_hidden()  # no answer was sent

    page.keyboard.press("Escape")
    assert drawer.is_hidden()
    assert page.evaluate("() => document.activeElement.id") == "guide-open"
    assert opener.get_attribute("aria-expanded") == "false"

    # the keyboard way: G opens, the close button closes
    page.keyboard.press("g")
    assert drawer.is_visible()
    page.locator("#guide-close").click()
    assert drawer.is_hidden()
    context.close()
