"""Favourites and collections in headless Chromium (issue 28), on a 1280 x 800 desktop and
a 360 x 740 phone: favourite from the classify page (tap, and the F key) and from /me/,
create a collection whose name and description are XSS payloads, add and remove
candidates, share it publicly (read by a stranger, thumbnails loaded), make it private (a
404 for the stranger). axe-core finds no serious violation on the new pages, tap targets
are 44 px, and nothing the volunteer typed runs as script."""

from __future__ import annotations

import pytest

from labelapp.models import Candidate, Collection, ConsensusState, Favourite, Volunteer, Vote
from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey
from tests.browser import axe
from tests.browser.accounts import log_in
from tests.browser.screens import SCREENS
from tests.factories_console import make_account

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

XSS_NAME = '"><img src=x onerror=window.__xss=1>'
XSS_DESC = "<script>window.__xss=2</script> round & bright"


@pytest.fixture
def site(live_server, tmp_path, settings, request):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(40, seed=3)))
    return live_server.url


def _seen_and_confirmed(user, n: int = 2) -> list[int]:
    """The account's volunteer saw ``n`` candidates that were confirmed real (for /me/)."""
    volunteer, _ = Volunteer.objects.get_or_create(user=user, defaults={"tutorial_done": True})
    cands = list(Candidate.objects.order_by("-sn")[:n])
    for c in cands:
        Vote.objects.create(volunteer=volunteer, candidate=c, answer="yes")
        ConsensusState.objects.create(candidate=c, posterior=0.99, n_votes=5)
    Candidate.objects.filter(pk__in=[c.pk for c in cands]).update(status="retired")
    Volunteer.objects.filter(pk=volunteer.pk).update(n_votes=n, tutorial_done=True)
    return [c.detectid for c in cands]


def _check_page(page, shot, name: str) -> None:
    page.wait_for_load_state("networkidle")
    assert not axe.small_targets(page), (name, axe.small_targets(page))
    found = axe.violations(page)
    assert not found, (name, found)
    assert page.evaluate("() => window.__xss") is None, name
    assert (
        page.evaluate("() => document.documentElement.scrollWidth") <= page.viewport_size["width"]
    ), f"{name}: scrolls sideways"
    shot(page, name)


@pytest.mark.parametrize("screen", list(SCREENS))
def test_favourite_collect_share_and_hide(chromium, site, shot, screen):
    phone = screen == "phone"
    user = make_account(f"vera-{screen}")
    confirmed = _seen_and_confirmed(user)
    context = chromium.new_context(**SCREENS[screen])
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def press(locator):
        page.wait_for_timeout(350 if phone else 0)  # outside Chromium's double-tap window
        locator.tap() if phone else locator.click()

    log_in(page, site, user.username, next_path="/classify/")
    page.wait_for_function("() => document.getElementById('classify').dataset.detectid")
    detectid = int(page.evaluate("() => document.getElementById('classify').dataset.detectid"))
    fav = page.locator("#fav")
    press(fav)
    page.wait_for_function("() => document.getElementById('fav').ariaPressed === 'true'")
    assert Favourite.objects.filter(volunteer__user=user, candidate__detectid=detectid).exists()
    if not phone:  # the F key toggles it off and on again
        page.keyboard.press("f")
        page.wait_for_function("() => document.getElementById('fav').ariaPressed === 'false'")
        page.keyboard.press("f")
        page.wait_for_function("() => document.getElementById('fav').ariaPressed === 'true'")
    height = SCREENS[screen]["viewport"]["height"]
    for answer in ("yes", "no", "unsure"):  # the button costs the first screen nothing
        box = page.locator(f"button[data-answer='{answer}']").bounding_box()
        assert box["y"] + box["height"] <= height, (answer, box)
    _check_page(page, shot, f"collections-{screen}-classify")

    # /me/: one tap makes a confirmed line a favourite (and a second tap undoes it)
    page.goto(site + "/me/")
    item = page.locator(f"ul.discoveries li:has(a[href='/candidates/{confirmed[0]}/'])")
    with page.expect_navigation():
        press(item.get_by_role("button", name=f"Favourite: candidate {confirmed[0]}"))
    item = page.locator(f"ul.discoveries li:has(a[href='/candidates/{confirmed[0]}/'])")
    assert item.locator("button.fav").get_attribute("aria-pressed") == "true"
    _check_page(page, shot, f"collections-{screen}-me")
    favs = set(
        Favourite.objects.filter(volunteer__user=user).values_list("candidate__detectid", flat=True)
    )
    assert favs == {detectid, confirmed[0]}

    # a collection named with XSS payloads, public
    page.goto(site + "/collections/")
    page.fill("#id_name", XSS_NAME)
    page.fill("#id_description", XSS_DESC)
    press(page.locator("#new-collection label.check"))
    press(page.get_by_role("button", name="Create collection"))
    page.wait_for_selector("#collection-name")
    assert page.locator("#collection-name").inner_text() == XSS_NAME  # shown as text
    assert XSS_DESC in page.locator("#collection-description").inner_text()
    coll = Collection.objects.get(owner__user=user)
    assert coll.public and coll.name == XSS_NAME
    share = page.locator("#share-url").input_value()
    assert share.endswith(f"/collections/{coll.token}/")
    page.fill("#id_detectid", str(confirmed[1]))
    press(page.locator("#add-item").get_by_role("button", name="Add"))
    page.wait_for_selector(f"#items li[data-detectid='{confirmed[1]}']")

    # the favourites' "add to" menu puts the classify page's favourite in it
    page.goto(site + "/collections/")
    row = page.locator(f"#favourites li[data-detectid='{detectid}']")
    row.locator("select").select_option(coll.token)
    press(row.get_by_role("button", name="Add"))
    page.wait_for_selector(".messages li")
    assert coll.items.count() == 2
    _check_page(page, shot, f"collections-{screen}-list")
    page.goto(share)
    _check_page(page, shot, f"collections-{screen}-owner")

    # a stranger (no account) reads it, thumbnails and all
    stranger = chromium.new_context(**SCREENS[screen])
    spage = stranger.new_page()
    spage.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    spage.goto(share)
    spage.wait_for_function(
        "() => [...document.querySelectorAll('#items img')].every(i => i.complete "
        "&& i.naturalWidth > 0) && document.querySelectorAll('#items img').length === 2"
    )
    assert spage.locator("#collection-name").inner_text() == XSS_NAME
    assert spage.locator("form").count() <= 1  # only the log-in/out form of the top bar
    _check_page(spage, shot, f"collections-{screen}-public")
    ratio = spage.evaluate(
        "() => { const r = document.querySelector('#items img').getBoundingClientRect();"
        " return r.width / r.height; }"
    )
    assert abs(ratio - 500 / 318) < 0.02  # not squashed

    # remove one, then make it private: the stranger gets the styled 404
    press(
        page.locator(f"#items li[data-detectid='{confirmed[1]}']").get_by_role(
            "button", name=f"Remove candidate {confirmed[1]}"
        )
    )
    page.wait_for_selector(".messages li")
    assert coll.items.count() == 1
    press(page.locator("#edit-collection label.check"))
    press(page.get_by_role("button", name="Save"))
    page.wait_for_selector(".messages li")
    coll.refresh_from_db()
    assert not coll.public
    resp = spage.goto(share)
    assert resp.status == 404 and "Nothing here" in spage.content()
    _check_page(spage, shot, f"collections-{screen}-private-404")
    stranger.close()
    context.close()
    assert not dialogs and not errors, (dialogs, errors)
