"""The public results and privacy pages in headless Chromium (issue 28), on a 1280 x 800
desktop and a 360 x 740 phone: with no data at all (empty states, no empty axes) and with a
few models, scores, an external check and news. axe-core finds no serious violation, tap
targets are 44 px, nothing scrolls sideways, the plots are drawn (under the enforced CSP:
no inline script), and a news post's HTML never runs. Screenshots in test-artifacts/browser/.
"""

from __future__ import annotations

import pytest
from django.core.cache import cache
from django.utils import timezone

from labelapp.models import (
    AuditEvent,
    Candidate,
    CandidateScore,
    ModelVersion,
    NewsItem,
    Round,
    Volunteer,
)
from labelapp.services.survey.ingest import ingest_survey
from mlcore.simulator import simulate_survey
from mlcore.survey_io import write_survey
from tests.browser import axe
from tests.browser.conftest import ARTIFACTS
from tests.browser.screens import SCREENS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def site(live_server, settings, request):
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": request.node.nodeid,
        }
    }
    cache.clear()
    return live_server.url


def _heldout(low: float, high: float, n: int) -> dict:
    def cell(b, width):
        return {"n": n, "n_real": n // 2, "n_false": n - n // 2, "balanced_accuracy": b,
                "ci_low": b - width, "ci_high": min(1.0, b + width * 0.7)}  # fmt: skip

    return {"level": 0.95, "regimes": {"low": cell(low, 0.08), "high": cell(high, 0.04)},
            "n_labels": 2 * n}  # fmt: skip


def _fill(tmp_path) -> None:
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(400, seed=5)))
    cands = list(Candidate.objects.order_by("pk"))
    Candidate.objects.filter(pk__in=[c.pk for c in cands[:60]]).update(status="retired")
    for k in range(6):
        Volunteer.objects.create(n_votes=10 + k, last_vote_at=timezone.now())
    gold_only = {"metrics": {"regimes": {"low": {"balanced_accuracy": 0.4371}}}, "heldout": None}
    v1 = ModelVersion.objects.create(
        label_source="consensus", directory="-", status="retired", card=gold_only
    )
    v2 = ModelVersion.objects.create(
        label_source="consensus", directory="-", status="retired",
        card={"heldout": _heldout(0.78, 0.9, 120)},
    )  # fmt: skip
    v3 = ModelVersion.objects.create(
        label_source="consensus", directory="-", status="promoted",
        card={"heldout": _heldout(0.84, 0.93, 150)},
    )  # fmt: skip
    for number, mv in enumerate((v1, v2, v3), start=1):
        Round.objects.create(number=number, trained_model=mv, status="closed")
    truth = dict(Candidate.objects.values_list("pk", "truth__is_real"))
    CandidateScore.objects.bulk_create(
        [
            CandidateScore(
                model_version=v3, candidate_id=pk, prob=0.9 if real else 0.1, entropy=0.1, bald=0.01
            )
            for pk, real in truth.items()
        ]  # fmt: skip
    )
    AuditEvent.objects.create(
        username="sci", action="external_validation", target="desi.fits",
        detail={"ok": True, "n_external": 80, "n_matched": 31, "cut": 0.5,
                "regimes": {"high": [22, 22], "low": [9, 8], "overall": [31, 30]}},
    )  # fmt: skip
    NewsItem.objects.create(
        title="Round 3 is live <img src=x onerror=window.__xss=1>",
        body="Thank you all!\n\n<script>window.__xss=2</script> Details at https://example.org/round3",
    )


def _check(page, shot, name: str) -> None:
    page.wait_for_load_state("networkidle")
    assert not axe.small_targets(page), (name, axe.small_targets(page))
    found = axe.violations(page)
    assert not found, (name, found)
    assert page.evaluate("() => window.__xss") is None, name
    width = page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"{name}: scrolls sideways ({width} px)"
    shot(page, name)


@pytest.mark.parametrize("screen", list(SCREENS))
def test_results_and_privacy_with_no_data(chromium, site, shot, screen):
    context = chromium.new_context(**SCREENS[screen])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site + "/results/")
    for empty in ("#accuracy-empty", "#nz-empty", "#external-empty", "#news-empty"):
        assert page.locator(empty).is_visible(), empty
    assert page.locator(".plot").count() == 0  # no empty axes
    _check(page, shot, f"results-{screen}-empty")
    page.goto(site + "/privacy/")
    assert page.get_by_role("heading", name="Deleting your data").is_visible()
    _check(page, shot, f"privacy-{screen}")
    assert not errors, errors
    context.close()


@pytest.mark.parametrize("screen", list(SCREENS))
def test_results_with_data(chromium, site, shot, screen, tmp_path):
    _fill(tmp_path)
    context = chromium.new_context(**SCREENS[screen])
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(site + "/results/")
    page.wait_for_selector("[data-plot='fig-accuracy'] .main-svg")
    page.wait_for_selector("[data-plot='fig-nz'] .main-svg")
    # two held-out models plotted (the gold-only one is listed as not measured)
    points = page.locator("[data-plot='fig-accuracy'] .scatterlayer .point").count()
    assert points == 4, points
    assert "not measured" in page.locator("#accuracy-table").inner_text()
    text = page.locator("body").inner_text()  # the gold-only model's training figure: nowhere
    assert "0.4371" not in page.content() and "43.7" not in text and "44%" not in text
    assert "31" in page.locator("#external-summary").inner_text()
    news = page.locator(".news-item").first
    assert "<img src=x" in news.locator("h3").inner_text()  # shown as text
    assert news.locator("a[href='https://example.org/round3']").count() == 1
    for fig in ("fig-accuracy", "fig-nz"):
        box = page.locator(f"[data-plot='{fig}']").bounding_box()
        assert box["width"] <= SCREENS[screen]["viewport"]["width"], (fig, box)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.locator(f"[data-plot='{fig}']").screenshot(
            path=str(ARTIFACTS / f"results-{screen}-{fig}.png")
        )
    _check(page, shot, f"results-{screen}-data")
    assert not errors, errors
    context.close()


def test_results_with_a_handful_of_points_on_a_phone(chromium, site, shot, tmp_path):
    """One model with a held-out figure and three candidates: one readable point per regime
    (not a hairline on a wide axis), whole-number counts."""
    ingest_survey(path=write_survey(tmp_path / "s.fits", simulate_survey(3, seed=2)))
    ModelVersion.objects.create(
        label_source="consensus", directory="-", status="promoted",
        card={"heldout": _heldout(0.8, 0.95, 12)},
    )  # fmt: skip
    context = chromium.new_context(**SCREENS["phone"])
    page = context.new_page()
    page.goto(site + "/results/")
    page.wait_for_selector("[data-plot='fig-accuracy'] .main-svg")
    page.wait_for_selector("[data-plot='fig-nz'] .main-svg")
    assert page.locator("[data-plot='fig-accuracy'] .scatterlayer .point").count() == 2
    ticks = page.eval_on_selector_all(
        "[data-plot='fig-nz'] .ytick text", "els => els.map(e => e.textContent)"
    )
    assert ticks
    assert all(t.isdigit() for t in ticks), ticks  # whole candidates, no 0.5
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for fig in ("fig-accuracy", "fig-nz"):
        page.locator(f"[data-plot='{fig}']").screenshot(
            path=str(ARTIFACTS / f"results-phone-handful-{fig}.png")
        )
    _check(page, shot, "results-phone-handful")
    context.close()
