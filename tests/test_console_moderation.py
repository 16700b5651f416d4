"""Console tools of issue #24: the suspicious-volunteer page (what flagged them), voiding a
volunteer's votes (audit record + re-aggregation), blocking a client address range."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from labelapp.models import AuditEvent, Candidate, ConsensusState, Volunteer, VolunteerSkill, Vote
from labelapp.selectors.suspicious import flag_reasons, suspicious_volunteers
from labelapp.services.crowd import moderation
from labelapp.services.crowd.votes import submit_vote
from tests.factories_console import make_scientist
from tests.factories_volunteers import (
    make_candidates,
    make_gold,
    make_proven_volunteer,
    make_volunteer,
    served_token,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_cache")]


@pytest.fixture(autouse=True)
def _rules(settings, default_retirement_rules):
    settings.VOTE_RATE_LIMIT = 10_000
    moderation._cache["at"] = -1e9


@pytest.fixture
def sci_client(client):
    client.force_login(make_scientist())
    return client


def _liar_with_gold(n_gold=4):
    """A volunteer who answered every gold wrong."""
    gold = make_candidates(n_gold, first_id=8_000_000, sn0=6.0)
    liar = make_volunteer()
    for g in gold:
        make_gold(g, is_real=True)
        submit_vote(volunteer=liar, detectid=g.detectid, answer="no")
    return liar


def test_flags_say_what_flagged_them():
    liar = _liar_with_gold()
    liar.refresh_from_db()
    assert flag_reasons(liar) == ["0 of 4 gold answers right"]
    yes_man = make_volunteer()
    for c in make_candidates(20, first_id=9_000_000):
        submit_vote(volunteer=yes_man, detectid=c.detectid, answer="yes")
    yes_man.refresh_from_db()
    assert flag_reasons(yes_man) == ["answers 'yes' 100% of 20 times"]
    honest = make_volunteer()
    submit_vote(volunteer=honest, detectid=8_000_000, answer="yes")
    honest.refresh_from_db()
    assert flag_reasons(honest) == []
    listed = {s["volunteer"]: s["why"] for s in suspicious_volunteers()}
    assert set(listed) == {liar.pk, yes_man.pk}


def test_suspicious_page_lists_them_for_scientists_only(sci_client, client):
    liar = _liar_with_gold()
    html = sci_client.get("/console/volunteers/suspicious/").content.decode()
    assert f"anonymous #{liar.pk}" in html and "0 of 4 gold answers right" in html
    assert f"/console/volunteers/{liar.pk}/void/" in html
    assert Client().get("/console/volunteers/suspicious/").status_code == 302  # to log-in


def test_voiding_takes_the_votes_out_reopens_what_they_settled_and_is_audited(sci_client):
    (c,) = make_candidates(1)
    attacker = make_proven_volunteer()  # an account that passed gold, then lied
    submit_vote(volunteer=attacker, detectid=c.detectid, answer="no")
    for _ in range(2):  # with two proven others (2 x log 3 alone: not settled)
        submit_vote(volunteer=make_proven_volunteer(), detectid=c.detectid, answer="no")
    c.refresh_from_db()
    assert c.status == Candidate.Status.RETIRED
    (g,) = make_candidates(1, first_id=6_000_000, sn0=6.0)
    make_gold(g, is_real=True)
    submit_vote(volunteer=attacker, detectid=g.detectid, answer="yes")
    skill = VolunteerSkill.objects.get(volunteer=attacker, regime=1)
    assert skill.n_votes == 1

    resp = sci_client.post(f"/console/volunteers/{attacker.pk}/void/", {"reason": "liar"})
    assert resp.status_code == 302
    assert not Vote.objects.filter(volunteer=attacker).exists()
    c.refresh_from_db()
    assert c.status == Candidate.Status.ACTIVE  # re-opened: the rest no longer settle it
    state = ConsensusState.objects.get(candidate=c)
    assert state.n_votes == 2
    skill.refresh_from_db()
    assert skill.n_votes == 0  # the gold answer's lesson is taken back
    attacker.refresh_from_db()
    assert (attacker.n_votes, attacker.n_gold) == (0, 0)
    event = AuditEvent.objects.get(action="void_votes")
    assert event.target == f"volunteer:{attacker.pk}" and event.detail["n_votes"] == 2
    assert event.detail["reopened"] == [c.detectid] and event.detail["reason"] == "liar"
    assert [row[0] for row in event.detail["votes"]] == [c.detectid, g.detectid]


def test_voiding_keeps_a_candidate_the_others_still_settle(settings):
    settings.RETIRE_MIN_VOTES = 1
    (c,) = make_candidates(1)
    attacker = make_volunteer()
    submit_vote(volunteer=attacker, detectid=c.detectid, answer="yes")
    skilled = make_proven_volunteer()
    VolunteerSkill.objects.create(
        volunteer=skilled, regime=0, sens_alpha=95, sens_beta=5, spec_alpha=95, spec_beta=5
    )
    submit_vote(volunteer=skilled, detectid=c.detectid, answer="yes")
    c.refresh_from_db()
    assert c.status == Candidate.Status.RETIRED
    result = moderation.void_volunteer_votes(volunteer_id=attacker.pk, user=None)
    c.refresh_from_db()
    assert result.reopened == [] and c.status == Candidate.Status.RETIRED  # skilled alone: 0.95
    assert ConsensusState.objects.get(candidate=c).n_votes == 1


def _vote_over_http(ip: str):
    (c,) = Candidate.objects.filter(detectid=5_000_000)
    client = Client(enforce_csrf_checks=True, REMOTE_ADDR=ip)
    client.get("/api/next/")
    body = {"detectid": c.detectid, "answer": "yes", "token": served_token(client, c.detectid)}
    return client.post(
        "/api/votes/",
        json.dumps(body),
        content_type="application/json",
        headers={"X-CSRFToken": client.cookies["csrftoken"].value},
    )


def test_a_blocked_range_cannot_vote_and_unblocking_restores_it(sci_client):
    make_candidates(1)
    resp = sci_client.post("/console/volunteers/block/", {"cidr": "203.0.113.7/24", "note": "x"})
    assert resp.status_code == 302
    assert [str(n) for n in moderation.blocked_ranges(fresh=True)] == ["203.0.113.0/24"]
    refused = _vote_over_http("203.0.113.99")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "blocked"
    assert not Volunteer.objects.exists() and not Vote.objects.exists()
    assert _vote_over_http("198.51.100.1").status_code == 201  # another network
    sci_client.post("/console/volunteers/block/", {"cidr": "203.0.113.0/24", "action": "unblock"})
    assert _vote_over_http("203.0.113.99").status_code == 201
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", "target"))
    assert actions == [
        ("block_address", "203.0.113.0/24"),
        ("unblock_address", "203.0.113.0/24"),
    ]


@pytest.mark.parametrize(
    "cidr, message",
    [("not-an-ip", "is not an address"), ("10.0.0.0/8", "too broad"), ("::/0", "too broad")],
)
def test_bad_ranges_are_refused_with_a_message(sci_client, cidr, message):
    resp = sci_client.post("/console/volunteers/block/", {"cidr": cidr}, follow=True)
    assert message in resp.content.decode()
    assert not AuditEvent.objects.filter(action="block_address").exists()
