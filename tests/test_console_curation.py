"""Console curation: the expert queue, gold standards, flags from the gallery/candidate pages."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.urls import reverse

from labelapp.models import (
    AuditEvent,
    Candidate,
    CandidateScore,
    ConsensusState,
    GoldStandard,
    ModelVersion,
    RetirementEvent,
    Volunteer,
    Vote,
)
from labelapp.services.crowd import curation
from labelapp.services.crowd.consensus import set_candidate_status, update_consensus
from tests.factories_console import make_account, make_scientist
from tests.factories_volunteers import make_candidates, make_gold, make_volunteer, with_token

pytestmark = pytest.mark.django_db

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"
ANSWER_URL = "/console/expert/answer/"


@pytest.fixture
def cands():
    return make_candidates(6)


@pytest.fixture
def sci():
    return make_scientist()


@pytest.fixture
def sci_client(client, sci):
    client.force_login(sci)
    return client


def _to_expert(*cs: Candidate) -> None:
    for c in cs:
        set_candidate_status(candidate_id=c.pk, status=Candidate.Status.EXPERT)


def _answer(client, detectid, answer="yes", **extra):
    body = {"detectid": detectid, "answer": answer, **extra}
    return client.post(ANSWER_URL, json.dumps(body), content_type="application/json")


def _audits(action: str):
    return AuditEvent.objects.filter(action=action)


# --- who may use these pages -------------------------------------------------------------


def _requests(cands):
    d = cands[0].detectid
    return [
        ("get", "/console/expert/", {}),
        ("post", ANSWER_URL, {"detectid": d, "answer": "yes"}),
        ("get", "/console/gold/", {}),
        ("get", f"/console/gold/{d}/", {}),
        ("post", f"/console/candidates/{d}/flag/", {"action": "expert"}),
    ]


def test_urls_are_the_named_routes(cands):
    d = cands[0].detectid
    assert reverse("console-expert") == "/console/expert/"
    assert reverse("console-expert-answer") == ANSWER_URL
    assert reverse("console-gold") == "/console/gold/"
    assert reverse("console-gold-edit", args=[d]) == f"/console/gold/{d}/"
    assert reverse("console-candidate-flag", args=[d]) == f"/console/candidates/{d}/flag/"


def test_anonymous_visitors_are_sent_to_log_in(client, cands):
    make_gold(cands[0], is_real=True)
    for method, url, data in _requests(cands):
        resp = getattr(client, method)(url, data)
        assert resp.status_code == 302, url
        assert "/accounts/login/" in resp["Location"], url
    assert not AuditEvent.objects.exists()
    assert Candidate.objects.get(pk=cands[0].pk).status == Candidate.Status.ACTIVE


def test_volunteer_accounts_get_403(client, cands):
    make_gold(cands[0], is_real=True)
    client.force_login(make_account())
    for method, url, data in _requests(cands):
        assert getattr(client, method)(url, data).status_code == 403, url
    assert not AuditEvent.objects.exists()


def test_scientists_may_use_every_page(sci_client, cands):
    make_gold(cands[1], is_real=False)
    _to_expert(cands[0])
    d0, d1 = cands[0].detectid, cands[1].detectid
    assert sci_client.get("/console/expert/").status_code == 200
    assert _answer(sci_client, d0).status_code == 200
    assert sci_client.get("/console/gold/").status_code == 200
    assert sci_client.get(f"/console/gold/{d1}/").status_code == 200
    resp = sci_client.post(f"/console/candidates/{d1}/flag/", {"action": "expert"})
    assert resp.status_code == 302


def test_staff_without_the_group_are_scientists_too(client, cands):
    _to_expert(cands[0])
    client.force_login(make_account("boss", is_staff=True))
    assert client.get("/console/expert/").status_code == 200
    assert _answer(client, cands[0].detectid, "no").status_code == 200
    assert ConsensusState.objects.get(candidate=cands[0]).expert_label is False


# --- the expert queue page -----------------------------------------------------------------


def _config(resp) -> dict:
    html = resp.content.decode()
    start = html.index('id="expert-config"')
    return json.loads(html[html.index(">", start) + 1 : html.index("</script>", start)])


def test_expert_page_lists_the_queue_oldest_first_with_the_evidence(sci_client, cands):
    # entered in this order: 3, 1, 4 (RetirementEvent times), so that is the queue order
    _to_expert(cands[3], cands[1], cands[4])
    model = ModelVersion.objects.create(
        status=ModelVersion.Status.PROMOTED, label_source="truth", directory="/m"
    )
    CandidateScore.objects.create(
        model_version=model, candidate=cands[1], prob=0.8125, entropy=0.5, bald=0.1
    )
    vols = [make_volunteer() for _ in range(3)]
    for v, answer in zip(vols, ["yes", "no", "unsure"], strict=True):
        Vote.objects.create(volunteer=v, candidate=cands[3], answer=answer)
    ConsensusState.objects.create(candidate=cands[3], posterior=0.55, n_votes=2, n_unsure=1)

    resp = sci_client.get("/console/expert/")
    assert resp.status_code == 200
    html = resp.content.decode()
    assert "3 left" in html and "js/expert.js" in html
    cfg = _config(resp)
    assert cfg["remaining"] == 3
    assert [c["detectid"] for c in cfg["candidates"]] == [
        cands[3].detectid,
        cands[1].detectid,
        cands[4].detectid,
    ]
    first, second = cfg["candidates"][:2]
    assert first["votes"] == {"yes": 1, "no": 1, "unsure": 1}
    assert first["posterior"] == 0.55
    assert first["model_prob"] is None and second["model_prob"] == 0.812
    assert second["model_version"] == model.pk
    assert first["entered_why"] == "changed by a scientist"
    assert first["cutout_url"] == f"/candidates/{cands[3].detectid}/cutout.png"
    assert first["spectrum_url"] == f"/api/candidates/{cands[3].detectid}/spectrum/"
    assert cfg["answer_url"] == ANSWER_URL and cfg["csrf"]


def test_empty_expert_queue_says_how_candidates_arrive(sci_client, cands):
    html = sci_client.get("/console/expert/").content.decode()
    assert "The expert queue is empty" in html and "0 left" in html


def test_expert_queue_json_refill_leaves_out_what_the_page_holds(sci_client, cands):
    _to_expert(*cands[:4])
    resp = sci_client.get(
        "/console/expert/", {"format": "json", "count": 2, "exclude": f"{cands[0].detectid}"}
    )
    data = resp.json()
    assert data["remaining"] == 4
    assert [c["detectid"] for c in data["candidates"]] == [c.detectid for c in cands[1:3]]
    bad = sci_client.get("/console/expert/", {"format": "json", "exclude": "x"})
    assert bad.status_code == 400 and "integer" in bad.json()["error"]["message"]


# --- answering -------------------------------------------------------------------------------


def test_expert_answer_labels_retires_and_audits(sci_client, sci, cands):
    _to_expert(*cands[:3])
    c = cands[0]
    resp = _answer(sci_client, c.detectid, "yes", response_ms=850, next=2, exclude=[])
    assert resp.status_code == 200
    data = resp.json()
    assert data["created"] is True and data["is_real"] is True and data["remaining"] == 2
    assert [n["detectid"] for n in data["next"]] == [cands[1].detectid, cands[2].detectid]

    c.refresh_from_db()
    assert c.status == Candidate.Status.RETIRED
    state = ConsensusState.objects.get(candidate=c)
    assert state.expert_label is True and state.posterior == 1.0
    vote = Vote.objects.get(candidate=c)  # the label's provenance: the expert's own vote
    assert vote.volunteer.user == sci and vote.answer == "yes" and vote.response_ms == 850
    assert vote.volunteer.n_votes == 1
    event = RetirementEvent.objects.filter(candidate=c).first()  # newest first
    assert (event.from_status, event.to_status, event.reason) == ("expert", "retired", "expert")
    assert event.vote == vote and event.user == sci
    audit = _audits("expert_answer").get()
    assert audit.user == sci and audit.target == f"candidate:{c.detectid}"
    assert audit.detail["answer"] == "yes" and audit.detail["vote_id"] == vote.pk


def test_expert_label_survives_a_recompute(sci_client, cands):
    """One source of truth: the label is derived from the expert's vote, so the live
    consensus recomputing the candidate from its votes keeps it."""
    _to_expert(cands[0])
    assert _answer(sci_client, cands[0].detectid, "no").status_code == 200
    update_consensus(candidate_id=cands[0].pk)
    state = ConsensusState.objects.get(candidate=cands[0])
    assert state.expert_label is False and state.posterior == 0.0


def test_double_submit_is_idempotent(sci_client, cands):
    _to_expert(cands[0], cands[1])
    d = cands[0].detectid
    first = _answer(sci_client, d, "no")
    second = _answer(sci_client, d, "no", next=1)
    assert first.status_code == second.status_code == 200
    assert first.json()["created"] is True and second.json()["created"] is False
    assert second.json()["remaining"] == 1
    assert [n["detectid"] for n in second.json()["next"]] == [cands[1].detectid]
    assert Vote.objects.filter(candidate=cands[0]).count() == 1
    assert RetirementEvent.objects.filter(candidate=cands[0], reason="expert").count() == 1
    assert _audits("expert_answer").count() == 1
    assert Volunteer.objects.get(user__username="sci").n_votes == 1


def test_changing_a_settled_answer_is_a_409(sci_client, cands):
    _to_expert(cands[0])
    assert _answer(sci_client, cands[0].detectid, "yes").status_code == 200
    resp = _answer(sci_client, cands[0].detectid, "no")
    assert resp.status_code == 409
    assert "already answered it (a real line)" in resp.json()["error"]["message"]
    assert ConsensusState.objects.get(candidate=cands[0]).expert_label is True


def test_answer_for_a_candidate_not_in_the_expert_queue_is_a_409(sci_client, cands):
    resp = _answer(sci_client, cands[0].detectid, "yes")  # still active (volunteer queue)
    assert resp.status_code == 409
    err = resp.json()["error"]
    assert err["code"] == "not_in_expert_queue"
    assert "no longer in the expert queue" in err["message"]
    assert "in the volunteer queue" in err["message"]
    assert not Vote.objects.exists() and not _audits("expert_answer").exists()
    assert Candidate.objects.get(pk=cands[0].pk).status == Candidate.Status.ACTIVE


def test_another_experts_answer_wins_and_the_second_gets_a_409(client, sci_client, cands):
    _to_expert(cands[0])
    assert _answer(sci_client, cands[0].detectid, "yes").status_code == 200
    client.force_login(make_scientist("sci2"))
    resp = client.post(
        ANSWER_URL,
        json.dumps({"detectid": cands[0].detectid, "answer": "yes"}),
        content_type="application/json",
    )
    assert resp.status_code == 409
    assert Vote.objects.filter(candidate=cands[0]).count() == 1


@pytest.mark.parametrize(
    ("body", "status", "text"),
    [
        ({"detectid": 5_000_000, "answer": "unsure"}, 400, "'yes'"),
        ({"answer": "yes"}, 400, "detectid is required"),
        ({"detectid": "x", "answer": "yes"}, 400, "integer"),
        ({"detectid": 42, "answer": "yes"}, 404, "no candidate with detectid 42"),
        ({"detectid": 5_000_000, "answer": "yes", "exclude": "1,2"}, 400, "list"),
    ],
)
def test_bad_answers_say_what_is_wrong(sci_client, cands, body, status, text):
    _to_expert(cands[0])
    resp = sci_client.post(ANSWER_URL, json.dumps(body), content_type="application/json")
    assert resp.status_code == status
    assert text in resp.json()["error"]["message"]
    assert Candidate.objects.get(pk=cands[0].pk).status == Candidate.Status.EXPERT


def test_expert_answer_needs_the_csrf_token(sci, cands):
    from django.test import Client

    _to_expert(cands[0])
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(sci)
    resp = strict.post(
        ANSWER_URL, json.dumps({"detectid": cands[0].detectid, "answer": "yes"}),
        content_type="application/json",
    )  # fmt: skip
    assert resp.status_code == 403
    page = strict.get("/console/expert/")
    token = _config(page)["csrf"]
    resp = strict.post(
        ANSWER_URL, json.dumps({"detectid": cands[0].detectid, "answer": "yes"}),
        content_type="application/json", HTTP_X_CSRFTOKEN=token,
    )  # fmt: skip
    assert resp.status_code == 200


def test_an_earlier_unsure_vote_of_the_expert_becomes_the_answer(sci_client, sci, cands):
    volunteer = make_volunteer(user=sci, n_votes=1, n_unsure=1)
    Vote.objects.create(volunteer=volunteer, candidate=cands[0], answer="unsure")
    _to_expert(cands[0])
    assert _answer(sci_client, cands[0].detectid, "no").status_code == 200
    vote = Vote.objects.get(candidate=cands[0])
    assert vote.answer == "no"
    volunteer.refresh_from_db()
    assert (volunteer.n_votes, volunteer.n_unsure) == (1, 0)
    assert ConsensusState.objects.get(candidate=cands[0]).expert_label is False
    assert _audits("expert_answer").get().detail["previous_answer"] == "unsure"


def test_a_failing_audit_rolls_the_answer_back(sci_client, cands, monkeypatch):
    _to_expert(cands[0])

    def boom(**kw):
        raise RuntimeError("audit store down")

    monkeypatch.setattr(curation, "record_audit", boom)
    with pytest.raises(RuntimeError):
        _answer(sci_client, cands[0].detectid, "yes")
    assert Candidate.objects.get(pk=cands[0].pk).status == Candidate.Status.EXPERT
    assert not Vote.objects.exists()
    assert not RetirementEvent.objects.filter(reason="expert").exists()


# --- gold standards -------------------------------------------------------------------------


def _gold_votes(gold: GoldStandard, answers: list[str]) -> None:
    for a in answers:
        Vote.objects.create(
            volunteer=make_volunteer(), candidate=gold.candidate, answer=a, was_gold=True
        )


def test_gold_list_counts_answers_and_share_correct_in_the_database(
    sci_client, cands, django_assert_max_num_queries
):
    real = make_gold(cands[0], is_real=True)
    fake = make_gold(cands[1], is_real=False, kind="sky")
    unseen = make_gold(cands[2], is_real=True)
    _gold_votes(real, ["yes", "yes", "no", "unsure"])  # 2 of 4 right
    _gold_votes(fake, ["no", "no", "no", "yes"])  # 3 of 4 right
    Vote.objects.create(volunteer=make_volunteer(), candidate=cands[1], answer="yes")  # not gold
    rows = {g.candidate_id: g for g in curation.gold_standards()}
    assert (rows[real.pk].n_answers, rows[real.pk].pct_correct) == (4, 50.0)
    assert (rows[fake.pk].n_answers, rows[fake.pk].pct_correct) == (4, 75.0)
    assert (rows[unseen.pk].n_answers, rows[unseen.pk].pct_correct) == (0, None)
    hardest = [g.candidate_id for g in curation.gold_standards(order="hardest")]
    assert hardest == [real.pk, fake.pk, unseen.pk]

    with django_assert_max_num_queries(8):  # session, user, groups, count, page: no per row
        resp = sci_client.get("/console/gold/")
    html = resp.content.decode()
    assert resp.status_code == 200
    assert "50%" in html and "75%" in html
    assert f'href="/console/gold/{real.candidate.detectid}/"' in html
    assert "sky" in html and "3 active" in html


def test_gold_list_shows_the_held_out_sample_the_gate_judges_on(sci_client, cands):
    from labelapp.services.learning.holdout import hold_out

    html = sci_client.get("/console/gold/").content.decode()
    assert "none yet, so the gate judges models on the gold" in html
    hold_out(labels={cands[0].pk: True, cands[1].pk: False}, source="expert")
    html = sci_client.get("/console/gold/").content.decode()
    low = sum(c.sn <= 5.5 for c in cands[:2])
    assert f"2 candidates,\n    {low} at S/N 4.8-5.5" in html


def test_gold_list_filters_inactive(sci_client, cands):
    make_gold(cands[0], is_real=True)
    g = make_gold(cands[1], is_real=False)
    GoldStandard.objects.filter(pk=g.pk).update(active=False)
    active = sci_client.get("/console/gold/").content.decode()
    inactive = sci_client.get("/console/gold/", {"show": "inactive"}).content.decode()
    assert f'data-detectid="{cands[0].detectid}"' in active
    assert f'data-detectid="{cands[1].detectid}"' not in active
    assert f'data-detectid="{cands[1].detectid}"' in inactive


def test_gold_edit_stores_a_hostile_text_and_renders_it_escaped(sci_client, sci, cands):
    gold = make_gold(cands[0], is_real=False, kind="cosmic")
    url = f"/console/gold/{cands[0].detectid}/"
    resp = sci_client.post(url, {"feedback": HOSTILE, "active": "on"})
    assert resp.status_code == 302 and resp["Location"] == "/console/gold/"
    gold.refresh_from_db()
    assert gold.feedback == HOSTILE  # stored as typed: plain text, escaped where shown
    audit = _audits("gold_edit").get()
    assert audit.user == sci and audit.target == f"candidate:{cands[0].detectid}"
    assert audit.detail["changed"]["feedback"][1] == HOSTILE
    for page in (url, "/console/gold/"):
        html = sci_client.get(page).content.decode()
        assert HOSTILE not in html, page
        assert ESCAPED in html, page


def test_gold_feedback_reaches_volunteers_as_plain_text(client, cands, own_cache):
    """The volunteer-facing path: the vote API hands the text over as JSON data, and the
    classify page puts it in with textContent (never innerHTML), so it is never markup."""
    make_gold(cands[0], is_real=True)
    GoldStandard.objects.filter(pk=cands[0].pk).update(feedback=HOSTILE)
    resp = client.post(
        "/api/votes/",
        json.dumps(with_token(client, {"detectid": cands[0].detectid, "answer": "yes"})),
        content_type="application/json",
    )  # fmt: skip
    assert resp.status_code == 201
    assert resp["Content-Type"].startswith("application/json")
    assert resp.json()["feedback"]["text"] == HOSTILE
    js = (Path(__file__).resolve().parents[1] / "static/js/classify.js").read_text()
    assert '$("feedback-text").textContent = fb.text' in js
    assert "innerHTML" not in js


@pytest.mark.parametrize(
    ("feedback", "text"),
    [("   ", "required"), ("x" * (curation.FEEDBACK_MAX + 1), "at most")],
)
def test_gold_edit_refuses_empty_or_too_long_feedback(sci_client, cands, feedback, text):
    gold = make_gold(cands[0], is_real=True)
    before = gold.feedback
    resp = sci_client.post(f"/console/gold/{cands[0].detectid}/", {"feedback": feedback})
    assert resp.status_code == 400
    assert text in resp.content.decode()
    gold.refresh_from_db()
    assert gold.feedback == before and gold.active
    assert not _audits("gold_edit").exists()


def test_gold_edit_unchanged_form_audits_nothing(sci_client, cands):
    gold = make_gold(cands[0], is_real=True)
    resp = sci_client.post(
        f"/console/gold/{cands[0].detectid}/", {"feedback": gold.feedback, "active": "on"}
    )
    assert resp.status_code == 302
    assert not _audits("gold_edit").exists()


def test_gold_edit_unknown_is_404(sci_client, cands):
    assert sci_client.get(f"/console/gold/{cands[0].detectid}/").status_code == 404


def test_deactivate_and_reactivate_gold(sci_client, sci, cands):
    gold = make_gold(cands[0], is_real=True)
    url = f"/console/gold/{cands[0].detectid}/"
    resp = sci_client.post(url, {"action": "deactivate", "next": "/console/gold/?show=all"})
    assert resp.status_code == 302 and resp["Location"] == "/console/gold/?show=all"
    gold.refresh_from_db()
    assert gold.active is False
    assert _audits("gold_deactivate").get().user == sci
    sci_client.post(url, {"action": "deactivate"})  # again: nothing to do, nothing audited
    assert _audits("gold_deactivate").count() == 1
    sci_client.post(url, {"feedback": gold.feedback, "active": "on"})
    gold.refresh_from_db()
    assert gold.active is True
    assert _audits("gold_edit").get().detail["changed"] == {"active": [False, True]}


# --- one-click flags --------------------------------------------------------------------------


def _flag(client, detectid, **data):
    return client.post(f"/console/candidates/{detectid}/flag/", data, follow=False)


def test_flag_gold_marks_it_and_audits(sci_client, sci, cands):
    d = cands[2].detectid
    resp = _flag(
        sci_client, d, action="gold", is_real="true", kind="lae",
        feedback="  A clear blob in three fibers.  ", next="/console/gallery/?page=2",
    )  # fmt: skip
    assert resp.status_code == 302 and resp["Location"] == "/console/gallery/?page=2"
    gold = GoldStandard.objects.get(candidate=cands[2])
    assert (gold.is_real, gold.kind, gold.active) == (True, "lae", True)
    assert gold.feedback == "A clear blob in three fibers." and gold.created_by == sci
    audit = _audits("gold_mark").get()
    assert audit.target == f"candidate:{d}" and audit.detail["kind"] == "lae"
    msgs = [str(m) for m in sci_client.get("/console/gold/").context["messages"]]
    assert any("now a gold standard" in m for m in msgs)


def test_flag_gold_without_feedback_takes_the_kinds_text(sci_client, cands):
    from labelapp.services.crowd.gold import feedback_for

    _flag(sci_client, cands[0].detectid, action="gold", is_real="0", kind="sky")
    assert GoldStandard.objects.get(candidate=cands[0]).feedback == feedback_for("sky")


def test_flag_expert_sends_it_to_the_queue_and_audits(sci_client, sci, cands):
    d = cands[1].detectid
    resp = _flag(sci_client, d, action="expert")
    assert resp.status_code == 302
    assert resp["Location"] == f"/console/candidates/{d}/"  # no next: back to the candidate
    assert Candidate.objects.get(pk=cands[1].pk).status == Candidate.Status.EXPERT
    event = RetirementEvent.objects.get(candidate=cands[1])
    assert (event.to_status, event.reason, event.user) == ("expert", "manual", sci)
    audit = _audits("expert_send").get()
    assert audit.detail == {"from_status": "active"} and audit.target == f"candidate:{d}"
    cfg = _config(sci_client.get("/console/expert/"))
    assert [c["detectid"] for c in cfg["candidates"]] == [d]
    _flag(sci_client, d, action="expert")  # already there: no second event, no audit
    assert RetirementEvent.objects.filter(candidate=cands[1]).count() == 1
    assert _audits("expert_send").count() == 1


@pytest.mark.parametrize(
    "nxt", ["https://evil.example/phish", "//evil.example/x", "javascript:alert(1)"]
)
def test_unsafe_next_is_ignored(sci_client, cands, nxt):
    d = cands[0].detectid
    resp = _flag(sci_client, d, action="expert", next=nxt)
    assert resp.status_code == 302
    assert resp["Location"] == f"/console/candidates/{d}/"


@pytest.mark.parametrize(
    ("data", "text"),
    [
        ({"action": "gold", "is_real": "true", "kind": "sky"}, "pick a matching kind"),
        ({"action": "gold", "is_real": "true", "kind": "dragon"}, "kind must be one of"),
        ({"action": "gold", "is_real": "maybe", "kind": "lae"}, "is_real must be"),
        ({"action": "gold", "is_real": "1", "kind": "lae", "feedback": "x" * 601}, "at most"),
        ({"action": "delete"}, "action must be"),
    ],
)
def test_bad_flags_are_400_and_change_nothing(sci_client, cands, data, text):
    resp = _flag(sci_client, cands[0].detectid, **data)
    assert resp.status_code == 400
    assert text in resp.content.decode()
    assert not GoldStandard.objects.exists() and not AuditEvent.objects.exists()
    assert Candidate.objects.get(pk=cands[0].pk).status == Candidate.Status.ACTIVE


def test_flag_message_escapes_the_kind(sci_client, cands):
    resp = _flag(sci_client, cands[0].detectid, action="gold", is_real="1", kind=HOSTILE)
    assert resp.status_code == 400
    html = resp.content.decode()
    assert HOSTILE not in html and "&lt;script&gt;" in html


def test_flag_unknown_candidate_is_404(sci_client):
    assert _flag(sci_client, 123, action="expert").status_code == 404


def test_flag_needs_post(sci_client, cands):
    assert sci_client.get(f"/console/candidates/{cands[0].detectid}/flag/").status_code == 405


@pytest.mark.parametrize(
    "raw, message",
    [  # each was a 500 before (issue #24): OverflowError, RecursionError, a bool as an id
        (b'{"detectid": Infinity, "answer": "yes"}', "Infinity is not a JSON number"),
        (b'{"detectid": -Infinity, "answer": "yes"}', "-Infinity is not a JSON number"),
        (b'{"detectid": NaN, "answer": "yes"}', "NaN is not a JSON number"),
        (b"[" * 50_000 + b"]" * 50_000, "nested deeper than"),
        (b'{"detectid": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested deeper than"),
        (b'{"detectid": true, "answer": "yes"}', "detectid must be an integer"),
        (b'{"detectid": 1.5, "answer": "yes"}', "detectid must be an integer"),
        (b'{"detectid": 99999999999999999999, "answer": "yes"}', "detectid must be between"),
        (b'{"detectid": 1, "answer": "yes", "exclude": [true]}', "exclude[0] must be an"),
        (b'{"detectid": 1, "answer": "yes", "response_ms": 1e400}', "response_ms must be"),
        (b"\xff\xfe", "not valid JSON"),
    ],
)
def test_malformed_expert_answers_are_400_with_what_is_wrong(sci_client, raw, message):
    resp = sci_client.post(ANSWER_URL, raw, content_type="application/json")
    assert resp.status_code == 400, resp.content[:200]
    assert message in resp.json()["error"]["message"]
    assert not Vote.objects.exists()


def test_gold_list_pages_of_forty_with_a_thumbnail_each(sci_client, cands):
    from tests.factories_volunteers import make_candidates

    more = make_candidates(45, first_id=8_000_000)
    for c in more:
        make_gold(c, is_real=True)
    first = sci_client.get("/console/gold/").content.decode()
    assert first.count('class="thumb"') == 40 and "page 1 of 2" in first
    assert f'src="/candidates/{more[0].detectid}/cutout.png"' in first
    assert f'src="/candidates/{more[44].detectid}/cutout.png"' not in first
    second = sci_client.get("/console/gold/", {"page": 2}).content.decode()
    assert second.count('class="thumb"') == 5


def test_gold_list_says_which_gold_is_exam_and_warns_without_any(sci_client, cands):
    """Scientists see each gold's role, and that no new volunteer can be proven without
    exam gold (only exam answers prove: docs/security.md)."""
    teach, exam = cands[0], cands[1]
    make_gold(teach, is_real=True)
    page = sci_client.get("/console/gold/").content.decode()
    assert "Exam gold (0 active)" in page and "no new volunteer can become proven" in page
    make_gold(exam, is_real=False, exam=True)
    page = sci_client.get("/console/gold/").content.decode()
    assert "Exam gold (1 active)" in page and "no new volunteer can become proven" not in page
    assert page.count('title="never shows its answer; proves volunteers">exam<') == 1
    assert page.count('title="shows its answer and feedback">teaching<') == 1
