"""A new volunteer, in real headless Chromium: tutorial, 10 classifications, gold feedback,
undo, sign-up with the votes kept. Once with a keyboard on a desktop, once on a phone-sized
touch screen with swipes. Screenshots of the main pages go to test-artifacts/browser/."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User

from labelapp.models import GoldStandard, Vote
from labelapp.services.crowd import queue
from labelapp.services.crowd.gold import seed_gold_from_truth
from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

N_CLASSIFY = 10
GOLD_AT = (1, 5)  # answers after which the next fetched candidate is gold (deterministic)


@pytest.fixture
def site(live_server, tmp_path, settings, monkeypatch, request):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(120, seed=4)))
    settings.EXAM_GOLD_SHARE = 0.0  # teaching gold: this journey is about its feedback
    assert seed_gold_from_truth(per_kind=2) > 5
    # The real schedule is random (40% at first); make the gold appearance certain here.
    monkeypatch.setattr(queue, "gold_rate", lambda n: 1.0 if n in GOLD_AT else 0.0)
    return live_server.url


def _page_error(errors: list[str], exc) -> None:
    """Record uncaught errors thrown by the site's scripts (static files or inline: their
    stack names a URL of the site). Errors from code Playwright injected (a test predicate
    polled while the page navigates) have no URL in their stack: printed, not counted, as
    no volunteer's browser runs them."""
    text = f"{exc} | {exc.stack}"
    if "http://" in (exc.stack or "") or not exc.stack:
        errors.append(text)
    else:
        print(f"page error outside the site's scripts (ignored): {text}")


def _state(page) -> dict:
    return page.evaluate(
        """() => {
          const r = document.getElementById('classify');
          const img = document.getElementById('cutout');
          return {detectid: r.dataset.detectid, busy: r.classList.contains('busy'),
                  feedback: !document.getElementById('feedback').hidden,
                  reasons: !document.getElementById('reasons').hidden,
                  count: document.getElementById('count').textContent,
                  imgReady: img.complete && img.naturalWidth > 0};
        }"""
    )


def _wait_new(page, old: str | None) -> None:
    page.wait_for_function(
        """old => { const r = document.getElementById('classify');
                    const img = document.getElementById('cutout');
                    if (!r || !img) return false;  // still navigating
                    return r.dataset.detectid && r.dataset.detectid !== old
                      && !r.classList.contains('busy')
                      && img.complete && img.naturalWidth > 0; }""",
        arg=old,
        timeout=10_000,
    )


def _wait_answered(page, before: str) -> str:
    """After an answer: either gold feedback is open, or a new candidate is on screen."""
    page.wait_for_function(
        """old => { const r = document.getElementById('classify');
                    if (!r) return false;  // still navigating
                    const fb = !document.getElementById('feedback').hidden;
                    const moved = r.dataset.detectid !== old;
                    return !r.classList.contains('busy') && (fb || moved); }""",
        arg=before,
        timeout=10_000,
    )
    return "feedback" if _state(page)["feedback"] else "next"


def _do_tutorial(page, *, touch: bool) -> None:
    steps = page.locator(".tut-step")
    n = steps.count()
    assert n == 4
    for i in range(n):
        step = steps.nth(i)
        assert step.is_visible()
        real = step.get_attribute("data-real") == "1"
        if touch:
            step.locator(".yes" if real else ".no").first.tap()
        else:
            page.keyboard.press("ArrowRight" if real else "ArrowLeft")
        explain = step.locator(".tut-explain")
        explain.wait_for(state="visible")
        assert "Right!" in explain.inner_text()
        if touch:
            step.locator(".tut-next").tap()
        else:
            page.keyboard.press("Enter")
    page.wait_for_url("**/classify/")


def _classify(page, shot, prefix: str, *, answer, cont, reason, undo) -> dict:
    """Answer N_CLASSIFY candidates with ``answer(page, i)``; undo once; returns what happened.

    ``cont`` closes gold feedback, ``reason`` picks a reason after a no, ``undo`` undoes."""
    seen: list[str] = []
    gold_feedback: list[str] = []
    undone = None
    reasons_given = 0
    _wait_new(page, None)
    page.wait_for_selector("#spectrum .main-svg")
    shot(page, f"{prefix}-classify")
    i = 0
    while len(seen) < N_CLASSIFY:
        before = _state(page)["detectid"]
        value = answer(page, i)
        outcome = _wait_answered(page, before)
        seen.append(before)
        if outcome == "feedback":
            text = page.locator("#feedback").inner_text()
            gold_feedback.append(text)
            if len(gold_feedback) == 1:
                shot(page, f"{prefix}-gold-feedback")
            cont(page)
            _wait_new(page, before)
        elif value == "no" and reasons_given == 0:
            assert _state(page)["reasons"]
            shot(page, f"{prefix}-reasons")
            reason(page)
            page.wait_for_function(
                "() => /Noted/.test(document.getElementById('status').textContent)"
            )
            reasons_given += 1
        if undone is None and i >= 2 and value == "yes" and outcome == "next":
            # take this answer back, then answer the same candidate again
            current = _state(page)["detectid"]
            undo(page)
            page.wait_for_function(
                "d => document.getElementById('classify').dataset.detectid === d", arg=before
            )
            undone = before
            seen.pop()
            assert current != before
        i += 1
    return {"seen": seen, "gold": gold_feedback, "undone": undone}


def test_new_volunteer_with_keyboard(chromium, site, shot):
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: _page_error(errors, e))
    page.goto(site + "/")
    shot(page, "desktop-landing")
    page.get_by_role("link", name="Start classifying").click()
    page.wait_for_url("**/tutorial/**")
    page.locator(".tut-step .example-img").first.wait_for()
    shot(page, "desktop-tutorial")
    _do_tutorial(page, touch=False)

    keys = ["ArrowRight", "ArrowLeft", "y", "n", "ArrowDown"]

    def answer(page, i):
        key = keys[i % len(keys)]
        page.keyboard.press(key)
        return {"ArrowRight": "yes", "y": "yes", "ArrowLeft": "no", "n": "no"}.get(key, "unsure")

    def cont(page):
        page.keyboard.press("Enter")

    def reason(page):
        page.keyboard.press("3")  # cosmic ray

    def undo(page):
        page.keyboard.press("u")

    result = _classify(page, shot, "desktop", answer=answer, cont=cont, reason=reason, undo=undo)

    votes = Vote.objects.all()
    assert votes.count() == N_CLASSIFY
    assert set(votes.values_list("client", flat=True)) == {"keyboard"}
    assert len({str(d) for d in votes.values_list("candidate__detectid", flat=True)}) == N_CLASSIFY
    assert result["gold"] and votes.filter(was_gold=True).exists()
    assert votes.filter(reason="cosmic").count() == 1
    assert votes.filter(candidate__detectid=int(result["undone"])).count() == 1
    assert page.locator("#count").inner_text() == f"{N_CLASSIFY} classified"

    page.goto(site + "/field-guide/")
    page.wait_for_selector(".guide-entry .main-svg")
    shot(page, "desktop-field-guide")
    _sign_up_and_check(page, site, shot, "desktop", "kepler")
    page.close()
    assert not errors, errors


def test_new_volunteer_on_a_phone_with_swipes(chromium, site, shot):
    context = chromium.new_context(
        viewport={"width": 360, "height": 740}, has_touch=True, is_mobile=True,
        device_scale_factor=2, reduced_motion="reduce",
    )  # fmt: skip
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: _page_error(errors, e))
    cdp = context.new_cdp_session(page)
    page.goto(site + "/")
    shot(page, "phone-landing")
    page.get_by_role("link", name="Start classifying").tap()
    page.wait_for_url("**/tutorial/**")
    shot(page, "phone-tutorial", full_page=False)
    _do_tutorial(page, touch=True)

    def swipe(dx: float) -> None:
        page.wait_for_timeout(400)  # as for taps: outside Chromium's double-tap window
        target = page.locator("#cutout-box")
        target.scroll_into_view_if_needed()  # touches outside the viewport land nowhere
        box = target.bounding_box()
        x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
        touch = lambda kind, pts: cdp.send(  # noqa: E731
            "Input.dispatchTouchEvent", {"type": kind, "touchPoints": pts}
        )
        touch("touchStart", [{"x": x, "y": y}])
        for k in range(1, 9):
            touch("touchMove", [{"x": x + dx * k / 8, "y": y + k}])
        touch("touchEnd", [])

    def tap(selector: str) -> None:
        # Chromium turns a tap into a click only once ~300 ms passed since the last touch
        # (its double-tap window); a person never taps that fast after a swipe.
        page.wait_for_timeout(400)
        page.locator(selector).tap()

    def answer(page, i):
        if i % 5 == 4:
            tap("button[data-answer='unsure']")
            return "unsure"
        right = i % 2 == 0
        swipe(130 if right else -130)
        return "yes" if right else "no"

    def cont(page):
        tap("#feedback-continue")

    def reason(page):
        tap("button[data-reason='sky']")

    def undo(page):
        tap("#undo")

    # no horizontal scrolling at 360 px
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
    result = _classify(page, shot, "phone", answer=answer, cont=cont, reason=reason, undo=undo)
    votes = Vote.objects.all()
    assert votes.count() == N_CLASSIFY
    assert {"swipe", "touch"} == set(votes.values_list("client", flat=True))
    assert result["gold"] and votes.filter(reason="sky").count() == 1
    # buttons are big enough to tap (at least 44 css px high)
    for sel in ("button[data-answer='yes']", "button[data-answer='no']", "#undo"):
        box = page.locator(sel).bounding_box()
        assert box is None or box["height"] >= 44, sel
    _sign_up_and_check(page, site, shot, "phone", "leavitt")
    assert not errors, errors
    context.close()


def _sign_up_and_check(page, site, shot, prefix, username):
    page.goto(site + "/accounts/signup/?next=/me/")
    shot(page, f"{prefix}-signup")
    page.fill("#id_username", username)
    page.fill("#id_email", f"{username}@example.org")
    page.fill("#id_password1", "orbit-lyman-42")
    page.fill("#id_password2", "orbit-lyman-42")
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url("**/me/")
    assert page.locator("#stat-votes").inner_text() == str(N_CLASSIFY)
    shot(page, f"{prefix}-me")
    user = User.objects.get(username=username)
    assert Vote.objects.filter(volunteer__user=user).count() == N_CLASSIFY
    assert GoldStandard.objects.exists()
