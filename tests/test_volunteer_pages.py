"""Volunteer pages: landing, tutorial, classify, field guide, personal page."""

import pytest

from labelapp.models import Candidate, ConsensusState, Volunteer, Vote
from labelapp.services.crowd.field_guide import KINDS
from labelapp.services.crowd.gold import FEEDBACK
from labelapp.services.crowd.volunteers import SESSION_KEY, volunteer_stats
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
    """Agreement is with the settled skill-weighted consensus (retired, or an expert's
    answer), not a raw majority: a candidate still open does not count."""
    cands = make_candidates(6)
    make_gold(cands[3], is_real=True)
    me = make_volunteer()
    # consensus: 0 retired real, 1 retired real, 2 retired artefact, 4 open (not settled),
    # 5 active but answered "real" by an expert
    states = {0: (0.97, None, "retired"), 1: (0.96, None, "retired"), 2: (0.02, None, "retired")}
    states |= {4: (0.9, None, "active"), 5: (0.4, True, "expert")}
    for i, (post, expert, status) in states.items():
        ConsensusState.objects.create(
            candidate=cands[i], posterior=post, n_votes=5, expert_label=expert
        )
        Candidate.objects.filter(pk=cands[i].pk).update(status=status)
    answers = {0: "yes", 1: "no", 2: "no", 3: "yes", 4: "no", 5: "yes"}
    for i, a in answers.items():
        Vote.objects.create(volunteer=me, candidate=cands[i], answer=a)
    stats = volunteer_stats(volunteer=me)
    # compared: 0 (agree), 1 (disagree), 2 (agree), 5 (agree) -> 3 of 4
    assert stats.n_compared == 4 and stats.agreement == pytest.approx(3 / 4)
    real = {cands[i].detectid for i in (0, 1, 3, 5)}  # gold 3 counts; open 4 does not
    assert {d["detectid"] for d in stats.discoveries} == real
    session = client.session
    session[SESSION_KEY] = me.pk
    session.save()
    html = client.get("/me/").content.decode()
    assert "75%" in html and f"/candidates/{cands[3].detectid}/cutout.png" in html


def test_personal_page_for_someone_new(client):
    assert "not classified anything yet" in client.get("/me/").content.decode()
    assert not Volunteer.objects.exists()
