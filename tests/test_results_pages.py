"""The public results page (live counts, held-out accuracy, N(z), external confirmations,
news) and the privacy and credit page; news editing in the console."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from django.core.cache import cache
from django.urls import reverse
from django.utils import timezone

from labelapp.models import (
    AuditEvent,
    Candidate,
    ModelVersion,
    NewsItem,
    RetirementEvent,
    Round,
    Vote,
)
from labelapp.selectors import results as sel
from tests.factories_console import make_account, make_scientist
from tests.factories_volunteers import make_candidates, make_volunteer

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def _get(client, name="results", **kw):
    resp = client.get(reverse(name, kwargs=kw or None))
    assert resp.status_code == 200
    return resp.content.decode()


def _figure(html: str, fig_id: str) -> dict | None:
    m = re.search(rf'<script id="{fig_id}" type="application/json">(.*?)</script>', html, re.S)
    return json.loads(m.group(1)) if m else None


# --- no data at all ----------------------------------------------------------------------


def test_results_page_with_no_data_says_what_is_happening(client):
    html = _get(client)
    assert 'id="count-classifications">0<' in html
    assert "be the first" in html
    # no empty axes: each section says why there is nothing to draw
    assert 'id="accuracy-empty"' in html and "No model has been trained" in html
    assert 'id="nz-empty"' in html and 'id="external-empty"' in html and 'id="news-empty"' in html
    assert _figure(html, "fig-accuracy") is None and _figure(html, "fig-nz") is None
    assert "<script>" not in html  # no inline script (CSP): figures are JSON data
    assert reverse("privacy") in html


# --- with data ---------------------------------------------------------------------------


def _vote(volunteer, candidate, *, when: dt.datetime | None = None) -> Vote:
    vote = Vote.objects.create(volunteer=volunteer, candidate=candidate, answer="yes")
    if when is not None:
        Vote.objects.filter(pk=vote.pk).update(created_at=when)
    return vote


def test_live_counts_all_time_and_today(client):
    cands = make_candidates(20)
    now = timezone.now()
    yesterday = now - dt.timedelta(days=1, hours=1)
    old = make_volunteer(n_votes=3, last_vote_at=yesterday)
    new = make_volunteer(n_votes=2, last_vote_at=now)
    make_volunteer(n_votes=0)  # opened the page, never voted: not counted
    for c in cands[:3]:
        _vote(old, c, when=yesterday)
    for c in cands[3:5]:
        _vote(new, c)
    Candidate.objects.filter(pk__in=[c.pk for c in cands[:4]]).update(status="retired")
    Candidate.objects.filter(pk=cands[5].pk).update(status="expert")
    ev = RetirementEvent.objects.create(
        candidate=cands[0], from_status="active", to_status="retired", reason="confident"
    )
    RetirementEvent.objects.filter(pk=ev.pk).update(created_at=yesterday)
    for c in cands[1:4]:
        RetirementEvent.objects.create(
            candidate=c, from_status="active", to_status="retired", reason="confident"
        )
    counts = sel.live_counts(use_cache=False)
    assert counts["classifications"] == 5 and counts["classifications_today"] == 2
    assert counts["volunteers"] == 2 and counts["volunteers_today"] == 1
    assert counts["candidates"] == 20 and counts["settled"] == 4 and counts["settled_today"] == 3
    assert counts["with_experts"] == 1 and counts["settled_share"] == pytest.approx(0.2)
    html = _get(client)
    assert 'id="count-classifications">5<' in html and "(2 today)" in html
    assert 'id="count-settled">4<' in html and "of 20 (20.0%); 3 today" in html


def test_first_pk_since_finds_the_first_row_of_the_day():
    cands = make_candidates(40)
    vol = make_volunteer()
    midnight = sel.utc_midnight()
    times = [midnight - dt.timedelta(hours=30 - i) for i in range(40)]  # 17 before midnight
    votes = [_vote(vol, c, when=t) for c, t in zip(cands, times, strict=True)]
    first = next(v for v, t in zip(votes, times, strict=True) if t >= midnight)
    assert sel.first_pk_since(Vote, midnight) == first.pk
    assert sel.first_pk_since(Vote, midnight + dt.timedelta(days=2)) is None
    assert sel.first_pk_since(Vote, midnight - dt.timedelta(days=9)) == votes[0].pk
    Vote.objects.all().delete()
    assert sel.first_pk_since(Vote, midnight) is None


def test_counts_are_cached_for_a_minute(client):
    make_candidates(5)
    _get(client)
    make_volunteer(n_votes=7)  # not seen until the cached summary expires
    assert 'id="count-classifications">0<' in _get(client)
    cache.delete("results:counts:v1")
    assert 'id="count-classifications">7<' in _get(client)


# --- held-out accuracy only ----------------------------------------------------------------

TRAINING = {"balanced_accuracy": 0.4371, "precision": 0.4372, "recall": 0.4373, "n": 999}


def _card(heldout: dict | None) -> dict:
    """A card with figures on data the model trained on (its test split of the crowd's
    labels, the gate's gold set) and, when given, a held-out report."""
    regs = {r: dict(TRAINING) for r in ("overall", "low", "high")}
    return {
        "metrics": {"regimes": regs},
        "gate": {"set": "gold/expert", "regimes": regs, "n_labels": 999},
        "heldout": heldout,
    }


def _heldout(low: float, high: float) -> dict:
    def cell(b):
        return {"n": 150, "n_real": 70, "n_false": 80, "balanced_accuracy": b,
                "ci_low": b - 0.05, "ci_high": b + 0.03}  # fmt: skip

    return {"level": 0.95, "regimes": {"low": cell(low), "high": cell(high)}, "n_labels": 300}


def _training_figures_absent(html: str) -> None:
    for text in ("0.437", "43.7", "44%", "999"):
        assert text not in html, f"a training-data figure ({text}) is on the page"


def test_a_model_judged_only_on_training_data_shows_not_measured(client):
    ModelVersion.objects.create(
        label_source="consensus", directory="-", status="promoted", card=_card(None)
    )
    html = _get(client)
    assert _figure(html, "fig-accuracy") is None
    assert 'id="accuracy-empty"' in html and "Not measured yet" in html
    assert 'class="not-measured"' in html
    _training_figures_absent(html)


def test_only_heldout_figures_are_plotted_over_rounds(client):
    v1 = ModelVersion.objects.create(
        label_source="consensus", directory="-", status="retired", card=_card(None)
    )
    v2 = ModelVersion.objects.create(
        label_source="consensus", directory="-", status="retired", card=_card(_heldout(0.81, 0.9))
    )
    v3 = ModelVersion.objects.create(
        label_source="consensus", directory="-", status="promoted", card=_card(_heldout(0.86, 0.93))
    )
    ModelVersion.objects.create(  # rejected: never used, never shown
        label_source="consensus", directory="-", status="rejected", card=_card(_heldout(0.61, 0.62))
    )
    Round.objects.create(number=1, trained_model=v2)
    Round.objects.create(number=2, trained_model=v3)
    html = _get(client)
    fig = _figure(html, "fig-accuracy")
    assert fig is not None
    by_name = {t["name"]: t for t in fig["data"]}
    low = by_name[sel.REGIME_WORDS["low"]]
    assert low["x"] == ["round 1", "round 2"]  # v1 has no held-out figure: no point
    assert low["y"] == [0.81, 0.86]
    assert low["error_y"]["arrayminus"] == pytest.approx([0.05, 0.05])
    assert by_name[sel.REGIME_WORDS["high"]]["y"] == [0.9, 0.93]
    assert "81%" in html and "76% to 84%" in html and "93%" in html
    assert f'data-version="{v1.pk}"' in html  # listed, as not measured
    assert "61%" not in html and "62%" not in html  # the rejected model
    _training_figures_absent(html)


def test_one_measured_model_is_one_readable_point():
    mv = ModelVersion.objects.create(
        label_source="consensus", directory="-", status="promoted", card=_card(_heldout(0.8, 0.9))
    )
    fig = sel.accuracy_figure(sel.accuracy_rows())
    assert [t["x"] for t in fig["data"]] == [[f"model {mv.pk}"]] * 2
    assert fig["layout"]["xaxis"]["type"] == "category"  # one category, not a 1-day axis


# --- N(z), external confirmations, news ---------------------------------------------------


def test_nz_before_the_cut_without_a_model(client):
    make_candidates(30)
    html = _get(client)
    fig = _figure(html, "fig-nz")
    assert [t["name"] for t in fig["data"] if t["mode"] == "lines"] == [
        "every candidate the survey found (S/N ≥ 4.8)"
    ]
    assert sum(fig["data"][0]["y"]) == 30
    assert "No model is in use yet" in html


def test_a_model_that_scored_nothing_draws_no_after_line(client):
    make_candidates(5)
    ModelVersion.objects.create(label_source="consensus", directory="-", status="promoted")
    html = _get(client)
    assert len([t for t in _figure(html, "fig-nz")["data"] if t["mode"] == "lines"]) == 1
    assert "has not sorted any candidate yet" in html


def test_the_figures_speak_the_volunteers_language():
    from django.utils import translation

    from labelapp.services.science.redshift import redshift_report

    make_candidates(12)
    mv = ModelVersion.objects.create(
        label_source="consensus", directory="-", status="promoted", card=_card(_heldout(0.8, 0.9))
    )
    report = redshift_report(use_cache=False)
    with translation.override("de"):
        acc = sel.accuracy_figure(sel.accuracy_rows())
        nz = sel.nz_figure(report)
    assert acc["layout"]["yaxis"]["title"]["text"] == "balancierte Genauigkeit"
    assert acc["data"][0]["x"] == [f"Modell {mv.pk}"]
    assert acc["data"][0]["name"] == "hellere Linien (S/N > 5,5)"
    assert "%{customdata}" in acc["data"][0]["hovertemplate"]  # plotly's fields kept
    assert nz["layout"]["xaxis"]["title"]["text"].startswith("Rotverschiebung z")
    with translation.override("es"):
        nz = sel.nz_figure(report)
    assert nz["data"][0]["name"].startswith("todos los candidatos")
    assert nz["layout"]["yaxis"]["title"]["text"] == "candidatos por intervalo"


def test_nz_of_a_handful_of_candidates_has_whole_number_ticks():
    from labelapp.services.science.redshift import redshift_report

    make_candidates(3)
    fig = sel.nz_figure(redshift_report(use_cache=False))
    assert fig["layout"]["yaxis"]["dtick"] == 1
    assert sum(fig["data"][0]["y"]) == 3


def test_nz_after_the_cut_with_a_scored_model(client):
    from labelapp.models import CandidateScore

    cands = make_candidates(30)
    mv = ModelVersion.objects.create(label_source="consensus", directory="-", status="promoted")
    CandidateScore.objects.bulk_create(
        [
            CandidateScore(
                model_version=mv, candidate=c, prob=0.9 if i % 3 else 0.1, entropy=0.1, bald=0.01
            )
            for i, c in enumerate(cands)
        ]  # fmt: skip
    )
    html = _get(client)
    fig = _figure(html, "fig-nz")
    lines = [t for t in fig["data"] if t["mode"] == "lines"]
    assert [sum(t["y"]) for t in lines] == [30, 20]
    assert "After it: 20 candidates" in html


def test_the_public_nz_is_not_rebuilt_while_scores_land(client):
    from labelapp.models import CandidateScore

    cands = make_candidates(10)
    mv = ModelVersion.objects.create(label_source="consensus", directory="-", status="promoted")
    CandidateScore.objects.create(model_version=mv, candidate=cands[0], prob=0.9, entropy=0, bald=0)
    html = _get(client)
    assert "After it: 1 candidate, 0 spikes (the model has sorted 1 of them so far)" in html
    # a scoring run goes on: the console's N(z) key changes, the public page keeps its copy
    CandidateScore.objects.create(model_version=mv, candidate=cands[1], prob=0.9, entropy=0, bald=0)
    assert "After it: 1 candidate," in _get(client)
    cache.delete("results:nz:fresh")  # five minutes later
    assert "After it: 2 candidates" in _get(client)


def test_on_a_large_catalogue_the_nz_is_never_built_in_the_request(client, monkeypatch):
    from labelapp.services.science import public_nz

    make_candidates(10)
    monkeypatch.setattr(public_nz, "INLINE_MAX_CANDIDATES", 5)  # "large"
    sent = []
    monkeypatch.setattr(public_nz, "send_after_commit", lambda name, **kw: sent.append(name))

    def no_build(**kw):
        raise AssertionError("the N(z) was built in a visitor's request")

    monkeypatch.setattr(public_nz.nz_service, "redshift_report", no_build)
    html = _get(client)
    assert 'id="nz-pending"' in html and _figure(html, "fig-nz") is None
    _get(client)
    assert sent == ["refresh_results_nz"]  # one refresh at a time
    monkeypatch.undo()
    from labelapp.tasks import refresh_results_nz

    refresh_results_nz()  # what the worker does
    html = _get(client)
    assert _figure(html, "fig-nz") is not None and "Before the cut: 10 candidates" in html
    cache.delete(public_nz.FRESH_KEY)  # stale: the copy is served while a refresh is sent
    monkeypatch.setattr(public_nz, "INLINE_MAX_CANDIDATES", 5)
    monkeypatch.setattr(public_nz, "send_after_commit", lambda name, **kw: sent.append(name))
    monkeypatch.setattr(public_nz.nz_service, "redshift_report", no_build)
    assert "Before the cut: 10 candidates" in _get(client)
    assert sent == ["refresh_results_nz"] * 2


def test_external_confirmations_from_the_latest_successful_check(client):
    AuditEvent.objects.create(
        username="sci", action="external_validation", target="desi.fits",
        detail={"ok": True, "n_external": 50, "n_matched": 12, "cut": 0.5,
                "regimes": {"high": [8, 8], "low": [4, 3], "overall": [12, 11]}},
    )  # fmt: skip
    AuditEvent.objects.create(
        username="sci",
        action="external_validation",
        target="bad.csv",
        detail={"ok": False, "problems": ["no rows"]},
    )
    html = _get(client)
    assert "<strong>12</strong> of our lines are" in html and "50 spectra compared" in html
    assert "4 confirmed, of which the model kept 75%" in html
    assert "desi.fits" not in html and "bad.csv" not in html  # no file names in public


def test_news_shows_published_posts_newest_first_and_escapes_text(client):
    now = timezone.now()
    NewsItem.objects.create(title="Older", body="first", published_at=now - dt.timedelta(days=2))
    NewsItem.objects.create(
        title="Round 3 <b>done</b>",
        body="<script>alert(1)</script>\n\nSee https://example.org/x for more.",
        published_at=now - dt.timedelta(hours=1),
    )
    NewsItem.objects.create(title="Draft", body="x", published=False, published_at=now)
    NewsItem.objects.create(title="Tomorrow", body="x", published_at=now + dt.timedelta(days=1))
    html = _get(client)
    assert html.index("Round 3") < html.index("Older")
    assert "Draft" not in html and "Tomorrow" not in html
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;alert(1)" in html
    assert "<b>done</b>" not in html and "&lt;b&gt;done&lt;/b&gt;" in html
    assert '<a href="https://example.org/x" rel="nofollow">' in html


# --- news editing: scientists only ------------------------------------------------------------


def test_news_editing_is_for_scientists(client):
    url = reverse("console-news")
    data = {"title": "Hello", "body": "text", "published_at": "2026-12-01 10:00", "published": "on"}
    assert client.post(url, data).status_code == 302  # anonymous: to the log-in page
    assert not NewsItem.objects.exists()
    client.force_login(make_account(username="vol"))
    assert client.post(url, data).status_code == 403
    item = NewsItem.objects.create(title="T", body="B")
    assert client.post(reverse("console-news-edit", args=[item.pk]), data).status_code == 403
    assert client.post(reverse("console-news-delete", args=[item.pk])).status_code == 403
    assert NewsItem.objects.get(pk=item.pk).title == "T"


def test_scientist_posts_edits_and_deletes_news(client):
    sci = make_scientist()
    client.force_login(sci)
    url = reverse("console-news")
    resp = client.post(
        url, {"title": "Hello", "body": "text", "published_at": "2026-12-01 10:00",
              "published": "on"},
    )  # fmt: skip
    assert resp.status_code == 302
    item = NewsItem.objects.get()
    assert item.created_by == sci and item.published
    assert "Hello" in _get(client, "results")
    edit = reverse("console-news-edit", args=[item.pk])
    assert client.get(edit).status_code == 200
    resp = client.post(edit, {"title": "Hello again", "body": "more", "published_at": "2026-12-01"})
    assert resp.status_code == 302
    item.refresh_from_db()
    assert item.title == "Hello again" and not item.published  # unticked: a draft
    assert "Hello again" not in _get(client, "results")
    assert client.post(reverse("console-news-delete", args=[item.pk])).status_code == 302
    assert not NewsItem.objects.exists()
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))
    assert actions == ["news_create", "news_edit", "news_delete"]


@pytest.mark.parametrize(
    "data, message",
    [
        ({"title": "  ", "body": "x", "published_at": "2026-12-01"}, "This field is required"),
        ({"title": "T", "body": "   ", "published_at": "2026-12-01"}, "This field is required"),
        ({"title": "T", "body": "x", "published_at": "not a date"}, "Enter a valid date"),
        ({"title": "T" * 121, "body": "x", "published_at": "2026-12-01"}, "at most 120"),
    ],
)
def test_bad_news_input_is_a_400_with_a_message(client, data, message):
    client.force_login(make_scientist())
    resp = client.post(reverse("console-news"), data)
    assert resp.status_code == 400
    assert message in resp.content.decode()
    assert not NewsItem.objects.exists()


def test_the_news_service_refuses_empty_or_long_posts():
    from labelapp.services.crowd.news import NewsError, save_news

    now = timezone.now()
    for title, body, message in (
        (" ", "x", "needs a title"),
        ("T", "", "needs some text"),
        ("T", "x" * 5001, "at most 5000"),
    ):
        with pytest.raises(NewsError, match=message):
            save_news(user=None, title=title, body=body, published_at=now)
    assert not NewsItem.objects.exists() and not AuditEvent.objects.exists()


# --- privacy and credit ----------------------------------------------------------------------


def test_privacy_page_says_what_is_kept_and_how_to_delete_it(client, settings):
    settings.LABELAPP_CONTACT_EMAIL = "privacy@example.org"
    html = _get(client, "privacy")
    for words in ("Your classifications", "Sessions", "Your internet address", "pseudonym",
                  "CITATION.cff", "Deleting your data", "14 days", "Zooniverse"):  # fmt: skip
        assert words in html, words
    assert 'href="mailto:privacy@example.org"' in html
    assert 'id="your-number"' not in html  # a first visit creates no volunteer
    vol = make_volunteer()
    session = client.session
    session["volunteer_id"] = vol.pk
    session.save()
    assert f"Your volunteer number is <strong>{vol.pk}</strong>" in _get(client, "privacy")


def test_privacy_page_without_a_contact_address(client, settings):
    settings.LABELAPP_CONTACT_EMAIL = ""
    html = _get(client, "privacy")
    assert "mailto:" not in html and "has not set a contact address" in html
