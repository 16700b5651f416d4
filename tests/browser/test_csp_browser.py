"""The Content-Security-Policy, enforced in real Chromium (issue #24): the volunteer pages
and the admin log-in run with no violation report (plotly from static/ still draws), and
the watcher every browser test runs under (conftest.no_csp_violations) does catch one."""

from __future__ import annotations

import pytest

from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def site(live_server, tmp_path, settings, request):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(20, seed=4)))
    return live_server.url


PAGES = [
    ("/", None),
    ("/tutorial/", ".tut-step .main-svg"),
    ("/classify/?skip=1", "#spectrum .main-svg"),
    ("/field-guide/", ".guide-entry .main-svg"),
    ("/me/", None),
    ("/results/", "[data-plot='fig-nz'] .main-svg"),
    ("/privacy/", None),
    ("/accounts/login/", None),
    ("/accounts/signup/", None),
    ("/api/", None),
    ("/admin/login/", None),
]


def test_pages_run_under_the_policy_without_a_violation(chromium, site, shot, no_csp_violations):
    page = chromium.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    for path, drawn in PAGES:
        resp = page.goto(site + path)
        assert resp.status == 200, path
        assert "script-src 'self'" in resp.headers["content-security-policy"], path
        if drawn:
            page.wait_for_selector(drawn, timeout=15_000)  # plotly, served locally, drew
    shot(page, "csp-admin-login")
    page.close()
    assert not errors, errors
    assert not no_csp_violations  # (the fixture checks again after the test)


def test_an_inline_script_is_blocked_and_reported(chromium, site, no_csp_violations):
    """The watcher works: an injected inline script does not run and is reported."""
    page = chromium.new_page()
    page.goto(site + "/")
    ran = page.evaluate(
        """() => new Promise((done) => {
             document.addEventListener("securitypolicyviolation", () => done(window.__ran === 1));
             const s = document.createElement("script");
             s.textContent = "window.__ran = 1";
             document.body.appendChild(s);
           })"""
    )
    page.wait_for_timeout(200)  # the binding's report reaches Python
    page.close()
    assert ran is False
    assert any(v["directive"].startswith("script-src") for v in no_csp_violations)
    no_csp_violations.clear()  # expected here; any other test fails on it
