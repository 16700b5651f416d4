"""Levels in headless Chromium, on a 1280 x 800 desktop and a 360 x 740 phone: a volunteer
one right gold answer short of level 2 answers it, the classify page says they were
promoted (with the picture and the feedback still there), and /me/ shows the new level, the
rules and the measured progress; axe-core finds no serious or critical violation on either.
Screenshots go to test-artifacts/browser/ (and /tmp for a look by eye)."""

from __future__ import annotations

import pytest
from django.conf import settings as django_settings
from django.contrib.sessions.backends.db import SessionStore

from labelapp.models import Candidate, Volunteer, Vote
from labelapp.services.crowd import queue
from labelapp.services.crowd.volunteers import SESSION_KEY, TUTORIAL_KEY
from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey import SN_LOW_MAX
from mlcore.survey_io import write_survey
from tests.browser import axe
from tests.browser.screens import SCREENS
from tests.factories_volunteers import make_gold

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def site(live_server, tmp_path, settings, monkeypatch, request):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(160, seed=4)))
    low = list(Candidate.objects.filter(sn__lte=SN_LOW_MAX).order_by("detectid")[:12])
    high = list(Candidate.objects.filter(sn__gt=SN_LOW_MAX).order_by("detectid")[:12])
    assert len(low) == len(high) == 12
    gold = {n: [make_gold(c, is_real=k < 6) for k, c in enumerate(cs)] for n, cs in
            (("low", low), ("high", high))}  # fmt: skip
    monkeypatch.setattr(queue, "gold_rate", lambda n: 1.0)  # gold first
    return live_server.url, gold


def _volunteer_one_short(gold) -> Volunteer:
    """6 of 6 real and 5 of 5 fake high-S/N gold right: the 6th fake, right, promotes."""
    v = Volunteer.objects.create(n_votes=11, n_gold=11, n_gold_correct=11, tutorial_done=True)
    fakes = [g for g in gold["high"] if not g.is_real]
    for g in [g for g in gold["high"] if g.is_real] + fakes[:5]:
        answer = "yes" if g.is_real else "no"
        Vote.objects.create(volunteer=v, candidate=g.candidate, answer=answer, was_gold=True)
    return v


def _session_for(context, base_url: str, volunteer: Volunteer) -> None:
    store = SessionStore()
    store[SESSION_KEY] = volunteer.pk
    store[TUTORIAL_KEY] = True
    store.create()
    context.add_cookies(
        [{"name": django_settings.SESSION_COOKIE_NAME, "value": store.session_key,
          "url": base_url}]
    )  # fmt: skip


@pytest.mark.parametrize("screen", list(SCREENS))
def test_promotion_is_said_on_the_classify_page_and_shown_on_me(chromium, site, shot, screen):
    base, gold = site
    v = _volunteer_one_short(gold)
    context = chromium.new_context(**SCREENS[screen])
    _session_for(context, base, v)
    page = context.new_page()
    page.goto(base + "/classify/")
    page.wait_for_function(
        "() => { const i = document.getElementById('cutout'); "
        "return i.complete && i.naturalWidth > 0 && document.getElementById('classify')"
        ".dataset.detectid; }"
    )
    # level 1 with high-S/N gold only left unseen: the one fake this volunteer has not seen
    last_fake = [g for g in gold["high"] if not g.is_real][5].candidate.detectid
    detectid = "() => document.getElementById('classify').dataset.detectid"
    for _ in range(3):  # the page holds two candidates, shuffled: skip the regular one
        shown = page.evaluate(detectid)
        if int(shown) == last_fake:
            break
        assert float(Candidate.objects.get(detectid=int(shown)).sn) > SN_LOW_MAX  # level 1
        page.locator("button[data-answer='unsure']").click()
        page.wait_for_function(
            "old => { const r = document.getElementById('classify'); "
            "return r.dataset.detectid !== old && !r.classList.contains('busy'); }",
            arg=shown,
        )
    assert int(page.evaluate(detectid)) == last_fake
    page.locator("button[data-answer='no']").click()
    page.wait_for_selector("#level-banner:not([hidden])")
    text = page.locator("#level-message").text_content()
    assert "Promoted to level 2" in text and "faint candidates" in text
    assert page.locator("#feedback").is_visible()  # said inside the gold feedback
    # on the way to Continue: on a phone the volunteer scrolls to it (or presses Enter)
    page.locator("#feedback-continue").scroll_into_view_if_needed()
    banner = page.evaluate(
        "() => { const r = document.getElementById('level-banner').getBoundingClientRect();"
        " return [r.top, r.bottom, innerHeight]; }"
    )
    assert banner[0] >= 0 and banner[1] <= banner[2], f"{screen}: the message is off screen"
    found = axe.violations(page)
    assert not found, f"{screen} promoted: axe-core: {found}"
    shot(page, f"level-promoted-{screen}", full_page=False)
    page.screenshot(path=f"/tmp/level-promoted-{screen}.png")
    v.refresh_from_db()
    assert v.level == 2

    page.goto(base + "/me/#level")
    assert page.locator("#level-now").text_content().strip() == "Level 2: faint candidates unlocked"
    high_row = page.locator("#level-progress tr[data-regime='high']").text_content()
    assert "12 (12)" in high_row and "yes" in high_row
    low_row = page.locator("#level-progress tr[data-regime='low']").text_content()
    assert "0 (0)" in low_row and "10 more needed" in low_row
    found = axe.violations(page)
    assert not found, f"{screen} /me/: axe-core: {found}"
    assert not axe.small_targets(page), axe.small_targets(page)
    page.locator("#level").screenshot(path=f"/tmp/level-me-{screen}.png")
    shot(page, f"level-me-{screen}")
    context.close()
