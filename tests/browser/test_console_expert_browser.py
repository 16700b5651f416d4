"""A scientist works through the expert queue in real headless Chromium with the keyboard:
log in, three candidates waiting, skip one, answer two, reload, answer the skipped one.
Every answer must swap the candidate in place (no page load) and land in the database."""

from __future__ import annotations

import shutil

import pytest

from labelapp.models import AuditEvent, Candidate, ConsensusState, RetirementEvent
from labelapp.services.crowd.consensus import set_candidate_status
from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey
from tests.factories_console import PASSWORD, make_scientist

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

SCREENSHOT_COPY = "/tmp/expert_queue.png"


@pytest.fixture
def site(live_server, tmp_path, settings, request):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(30, seed=5)))
    experts = list(Candidate.objects.order_by("sn")[:3])
    for c in experts:  # entering in this order: the page shows them in this order
        set_candidate_status(candidate_id=c.pk, status=Candidate.Status.EXPERT)
    make_scientist("curie")
    return live_server.url, [c.detectid for c in experts]


def _shown(page) -> dict:
    return page.evaluate(
        """() => { const r = document.getElementById('expert');
                   const img = document.getElementById('expert-cutout');
                   return {detectid: r.dataset.detectid, busy: r.classList.contains('busy'),
                           left: document.getElementById('expert-left').textContent,
                           status: document.getElementById('expert-status').textContent,
                           empty: !document.getElementById('expert-empty').hidden,
                           imgReady: img.complete && img.naturalWidth > 0,
                           marker: window.__noReload === true}; }"""
    )


def _wait_for(page, detectid: int | None) -> None:
    """Until ``detectid`` is on screen with its image loaded (None: the empty state)."""
    page.wait_for_function(
        """d => { const r = document.getElementById('expert');
                  const img = document.getElementById('expert-cutout');
                  if (!r || !img || r.classList.contains('busy')) return false;
                  if (d === null) return !document.getElementById('expert-empty').hidden;
                  return r.dataset.detectid === String(d) && img.complete
                    && img.naturalWidth > 0; }""",
        arg=detectid,
        timeout=10_000,
    )


def test_scientist_answers_the_expert_queue_with_the_keyboard(chromium, site, tmp_path):
    url, (first, second, third) = site
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(f"{e}"))

    page.goto(url + "/console/expert/")  # not logged in: sent to log in, then back
    page.wait_for_url("**/accounts/login/**")
    page.fill("input[name=username]", "curie")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/console/expert/")

    _wait_for(page, first)
    page.wait_for_selector("#expert-spectrum .main-svg")
    page.evaluate("() => { window.__noReload = true; }")
    assert _shown(page)["left"] == "3 left"
    page.screenshot(path=str(tmp_path / "expert_queue.png"), full_page=True)
    shutil.copyfile(tmp_path / "expert_queue.png", SCREENSHOT_COPY)

    page.keyboard.press("s")  # skip: nothing recorded, the next one is already there
    _wait_for(page, second)
    assert "Skipped" in _shown(page)["status"]
    page.keyboard.press("y")
    _wait_for(page, third)
    assert _shown(page)["left"] == "2 left"
    page.keyboard.press("n")
    _wait_for(page, None)  # only the skipped one is left, and it is not shown again
    state = _shown(page)
    assert state["left"] == "1 left" and state["marker"]  # same page all along
    assert "skipped 1" in page.locator("#expert-empty").inner_text()

    page.reload()
    _wait_for(page, first)
    page.keyboard.press("ArrowRight")  # the arrow answers too
    _wait_for(page, None)
    assert _shown(page)["left"] == "0 left"
    assert not errors, errors

    labels = dict(
        ConsensusState.objects.filter(candidate__detectid__in=[first, second, third]).values_list(
            "candidate__detectid", "expert_label"
        )
    )
    assert labels == {first: True, second: True, third: False}
    assert not Candidate.objects.filter(status=Candidate.Status.EXPERT).exists()
    assert RetirementEvent.objects.filter(reason="expert", user__username="curie").count() == 3
    audits = AuditEvent.objects.filter(action="expert_answer", username="curie")
    assert sorted(a.target for a in audits) == sorted(
        f"candidate:{d}" for d in (first, second, third)
    )
