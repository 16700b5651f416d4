"""Talk in headless Chromium (issue 28), on a 1280 x 800 desktop and a 360 x 740 phone: a
volunteer answers a candidate on the classify page, follows "Talk about the last one" to its
thread, posts a comment (markup, a hashtag, and an XSS payload that must stay text), flags
it for the science team, starts a board thread, then sees the scientist's answer as a
notification with the "science team" badge. axe-core finds no serious violation on any
Talk page, tap targets are 44 px, nothing scrolls sideways, nothing typed runs."""

from __future__ import annotations

import pytest

from labelapp.models import Candidate, Comment, Flag, Notification, Thread, Volunteer, Vote
from labelapp.services.community import talk
from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey
from tests.browser import axe
from tests.browser.accounts import log_in
from tests.browser.screens import SCREENS
from tests.factories_console import make_account, make_scientist

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

XSS = '<img src=x onerror="window.__xss=1"> [x](javascript:window.__xss=2)'


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


def _check_page(page, shot, name: str, *, targets: bool = True) -> None:
    """axe-core, no sideways scroll, nothing typed ran; 44 px tap targets on the volunteer
    pages (the console is a desktop tool: axe only, as in test_console_axe_browser)."""
    page.wait_for_load_state("networkidle")
    assert not (targets and axe.small_targets(page)), (name, axe.small_targets(page))
    found = axe.violations(page)
    assert not found, (name, found)
    assert page.evaluate("() => window.__xss") is None, name
    assert (
        page.evaluate("() => document.documentElement.scrollWidth") <= page.viewport_size["width"]
    ), f"{name}: scrolls sideways"
    shot(page, name)


@pytest.mark.parametrize("screen", list(SCREENS))
def test_comment_flag_and_science_answer(chromium, site, shot, screen):
    phone = screen == "phone"
    user = make_account(f"tess-{screen}")
    sci = make_scientist(f"astro-{screen}")
    context = chromium.new_context(**SCREENS[screen])
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))

    def press(locator):
        page.wait_for_timeout(350 if phone else 0)  # outside Chromium's double-tap window
        locator.tap() if phone else locator.click()

    log_in(page, site, user.username, next_path="/classify/%3Fskip%3D1")
    page.wait_for_function("() => document.getElementById('classify').dataset.detectid")
    detectid = int(page.evaluate("() => document.getElementById('classify').dataset.detectid"))

    # before answering, the candidate's thread is closed to this volunteer
    other = context.new_page()
    other.goto(f"{site}/talk/candidates/{detectid}/")
    assert other.locator("#closed-thread").is_visible()
    other.close()

    press(page.locator("button[data-answer='yes']"))
    link = page.locator("#talk-last")
    link.wait_for(state="visible")
    assert link.get_attribute("href") == f"/talk/candidates/{detectid}/"
    with page.expect_navigation():
        press(link)
    assert page.url.endswith(f"/talk/candidates/{detectid}/")
    page.wait_for_selector("#comment-form")

    # a comment with markup, a hashtag, the candidate's own number, and an XSS payload
    body = f"Looks like a **cosmic ray** in one fibre #Cosmic-Ray, see detectid:{detectid}\n{XSS}"
    page.fill("#id_body", body)
    with page.expect_navigation():
        press(page.get_by_role("button", name="Post comment"))
    comment = page.locator("#comments li.comment").last
    assert comment.locator("strong", has_text="cosmic ray").count() == 1
    assert comment.locator("a.hashtag").get_attribute("href") == "/talk/tags/cosmic-ray/"
    assert comment.locator("a.candidate-link").get_attribute("href") == (
        f"/talk/candidates/{detectid}/"
    )
    assert XSS in comment.locator(".comment-body").inner_text()  # shown as typed
    assert comment.locator(".comment-body img").count() == 0
    assert Comment.objects.filter(author=user, thread__candidate__detectid=detectid).count() == 1

    # flag it for the science team
    press(page.locator("#flag-form label.check", has_text="possible artefact"))
    page.fill("#id_flag_text", "a <b>stripe</b> across")
    with page.expect_navigation():
        press(page.get_by_role("button", name="Flag for the science team"))
    page.wait_for_selector("#flag-done")
    assert page.locator(".flag-badge").count() == 1
    assert Flag.objects.get(author=user).reason == "artefact"
    _check_page(page, shot, f"talk-{screen}-candidate")

    # a board thread whose title is an XSS payload
    page.goto(site + "/talk/boards/science/")
    page.fill("#id_title", '"><img src=x onerror=window.__xss=3>')
    page.fill("#id_body", "Which line is at 5277 Å: *Lyα* or *[OII]*?")
    with page.expect_navigation():
        press(page.get_by_role("button", name="Start thread"))
    assert page.locator("#thread-title").inner_text() == '"><img src=x onerror=window.__xss=3>'
    _check_page(page, shot, f"talk-{screen}-thread")

    # the scientist answers in the candidate's thread: a notification with the badge
    talk.post_candidate_comment(
        user=sci, volunteer=None, detectid=detectid, body="An artefact indeed: #cosmic-ray."
    )
    assert Notification.objects.filter(recipient=user, read_at__isnull=True).count() == 1
    page.goto(site + "/talk/")
    badge = page.locator("a.nav-unread")
    assert badge.get_attribute("aria-label") == "Talk: 1 unread notification"
    _check_page(page, shot, f"talk-{screen}-home")
    with page.expect_navigation():
        press(badge)
    assert "(science team) answered in" in page.locator("#notifications").inner_text()
    _check_page(page, shot, f"talk-{screen}-notifications")
    with page.expect_navigation():
        press(page.locator("#notifications a").first)
    page.wait_for_selector(".science-badge")
    assert page.locator("a.nav-unread").count() == 0  # opening the thread read it
    page.goto(site + "/talk/tags/cosmic-ray/")
    assert "Used in 2 comments" in page.locator("#tag-count").inner_text()
    _check_page(page, shot, f"talk-{screen}-hashtag")
    page.goto(site + "/talk/boards/general/")
    _check_page(page, shot, f"talk-{screen}-board")
    assert Thread.objects.filter(board__slug="science").count() == 1
    context.close()
    assert not dialogs and not errors, (dialogs, errors)


def test_moderation_page_and_console_talk(chromium, site, shot):
    """A scientist's view: the moderation page with a report, the console's Talk page."""
    vera, bob = make_account("vera"), make_account("bob")
    sci = make_scientist("astro")
    cand = Candidate.objects.order_by("sn").first()
    volunteer = Volunteer.objects.create(user=vera)
    Vote.objects.create(volunteer=volunteer, candidate=cand, answer="no")
    flagged = talk.flag_candidate(
        user=vera, volunteer=volunteer, detectid=cand.detectid, reason="broken",
        text="<script>window.__xss=4</script> #bad-fibre",
    )  # fmt: skip
    talk.report_comment(user=bob, comment_id=flagged.comment.pk, reason="<b>spam</b>")
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    log_in(page, site, sci.username)
    page.goto(site + "/talk/moderation/")
    assert page.locator("#reports li").count() == 1
    _check_page(page, shot, "talk-moderation")
    page.goto(site + "/console/talk/")
    row = page.locator(f"#flags-table tr[data-detectid='{cand.detectid}']")
    assert "#bad-fibre" in row.inner_text()
    _check_page(page, shot, "talk-console", targets=False)
    row.locator("summary").click()
    with page.expect_navigation():
        row.get_by_role("button", name="Send to experts").click()
    assert "sent to the expert queue" in page.locator(".messages").first.inner_text()
    cand.refresh_from_db()
    assert cand.status == "expert"
    context.close()


@pytest.mark.parametrize("screen", list(SCREENS))
def test_an_exam_gold_thread_thanks_the_volunteer_who_classified_it(chromium, site, shot, screen):
    """Exam gold's thread never opens to volunteers (docs/security.md); having classified it,
    they are thanked and told why instead of being asked to classify it."""
    from labelapp.services.crowd.gold import mark_gold
    from labelapp.services.crowd.volunteers import get_volunteer
    from labelapp.services.crowd.votes import submit_vote

    user = make_account(f"exa-{screen}")
    cand = Candidate.objects.order_by("detectid").first()
    mark_gold(candidate=cand, is_real=False, kind="cosmic", exam=True)
    context = chromium.new_context(**SCREENS[screen])
    page = context.new_page()
    log_in(page, site, user.username, lands=None)
    page.goto(f"{site}/talk/candidates/{cand.detectid}/")
    assert "Classify this candidate first" in page.locator("#closed-thread").inner_text()
    volunteer = get_volunteer(session={}, user=user, create=True)
    submit_vote(volunteer=volunteer, detectid=cand.detectid, answer="no")
    page.goto(f"{site}/talk/candidates/{cand.detectid}/")
    text = page.locator("#closed-thread").inner_text()
    assert "Thank you for classifying" in text and "Classify this candidate first" not in text
    _check_page(page, shot, f"talk-exam-gold-closed-{screen}")
    context.close()
