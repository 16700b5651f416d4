"""Issue 28's fixes on the volunteer pages: the line's redshift under each hypothesis on
/me/, a styled 403 for volunteers opening the console, thumbnails that keep their shape."""

from __future__ import annotations

import re
from html import unescape

import pytest

from labelapp.models import Candidate, CandidateTruth, ConsensusState, Vote
from labelapp.services.crowd.volunteers import SESSION_KEY, confirmed_real_seen
from mlcore.nz import line_redshifts
from mlcore.survey import LYA_REST, OII_REST
from tests.factories_console import make_account
from tests.factories_volunteers import make_candidates, make_gold, make_volunteer

pytestmark = pytest.mark.django_db


def test_line_redshifts_under_each_hypothesis():
    both = line_redshifts(5276.8)
    assert [h["kind"] for h in both] == ["lae", "oii"]
    assert both[0]["z"] == pytest.approx(5276.8 / LYA_REST - 1) and both[0]["z"] > 3.3
    assert both[1]["z"] == pytest.approx(5276.8 / OII_REST - 1)
    assert 0.41 < both[1]["z"] < 0.42  # the galaxy of the issue: [OII] at z = 0.416
    assert [h["kind"] for h in line_redshifts(5276.8, "oii")] == ["oii"]
    assert [h["kind"] for h in line_redshifts(5276.8, "lae")] == ["lae"]
    assert [h["kind"] for h in line_redshifts(5276.8, "cosmic")] == ["lae", "oii"]  # no line
    assert [h["kind"] for h in line_redshifts(3600.0)] == ["lae"]  # [OII] would be blueshifted


def _seen_real(volunteer, cand, *, retire=True):
    ConsensusState.objects.create(candidate=cand, posterior=0.98, n_votes=5)
    Candidate.objects.filter(pk=cand.pk).update(status="retired")
    Vote.objects.create(volunteer=volunteer, candidate=cand, answer="yes")


def test_personal_page_names_the_line_only_where_its_type_is_known(client):
    cands = make_candidates(3)
    Candidate.objects.filter(pk__in=[c.pk for c in cands]).update(wave=5276.8)
    me = make_volunteer()
    for c in cands:
        _seen_real(me, c)
    make_gold(cands[0], is_real=True, kind="oii")  # a scientist says: [OII]
    CandidateTruth.objects.create(
        candidate=cands[1], is_real=True, kind="lae", true_flux=10, true_z=3.34
    )
    by_id = {d["detectid"]: d for d in confirmed_real_seen(volunteer=me)}
    assert [h["kind"] for h in by_id[cands[0].detectid]["redshifts"]] == ["oii"]
    assert [h["kind"] for h in by_id[cands[1].detectid]["redshifts"]] == ["lae"]
    assert [h["kind"] for h in by_id[cands[2].detectid]["redshifts"]] == ["lae", "oii"]

    session = client.session
    session[SESSION_KEY] = me.pk
    session.save()
    html = client.get("/me/").content.decode()
    items = re.findall(r'<li><a href="/candidates/(\d+)/".*?</li>', html, re.S)
    assert len(items) == 3
    text = {
        int(m.group(1)): unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", m.group(0))))
        for m in re.finditer(r'<li><a href="/candidates/(\d+)/".*?</li>', html, re.S)
    }
    oii, lae, unknown = (text[c.detectid] for c in cands)
    assert "5276.8 Å" in oii and "[OII] at z = 0.42" in oii and "Lyα" not in oii
    assert "Lyα at z = 3.34" in lae and "[OII]" not in lae
    assert "Lyα at z = 3.34 or [OII] at z = 0.42" in unknown and "not known" in unknown
    assert "(z = 3.34)" not in html  # the old, wrong label


def test_personal_page_thumbnails_keep_their_aspect_ratio(client):
    """The cutout is 500 x 318: the thumbnail's CSS sets its width and lets the height
    follow (height: auto with the aspect ratio), so it is never squashed."""
    cands = make_candidates(1)
    me = make_volunteer()
    _seen_real(me, cands[0])
    session = client.session
    session[SESSION_KEY] = me.pk
    session.save()
    html = client.get("/me/").content.decode()
    assert 'width="500" height="318"' in html
    from django.contrib.staticfiles import finders

    css = open(finders.find("css/volunteer.css")).read()
    rule = re.search(r"\.discoveries img \{([^}]*)\}", css).group(1)
    assert "height: auto" in rule and "aspect-ratio: 500 / 318" in rule


def test_console_refuses_a_volunteer_with_a_styled_page(client):
    client.force_login(make_account("amateur"))
    resp = client.get("/console/")
    assert resp.status_code == 403
    html = resp.content.decode()
    assert "css/site.css" in html and 'class="topbar"' in html  # the site's own layout
    assert "science team" in html and 'href="/classify/"' in html
    anon = client.__class__().get("/console/")
    assert anon.status_code in (302, 403)
