"""Talk (issue 28): who may post, read and moderate; what volunteers write is escaped on
every page; rate limits; hashtag counts; notifications; flags and the console's gold /
expert actions with their audit events; CSRF on every write."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest
from django.contrib.auth.models import AnonymousUser, Group
from django.test import Client

from labelapp.errors import Forbidden, InvalidInput, RateLimited, Unauthenticated
from labelapp.models import (
    AuditEvent,
    Candidate,
    Comment,
    Flag,
    GoldStandard,
    Hashtag,
    Notification,
    Report,
    Suspension,
    Thread,
    Volunteer,
    Vote,
)
from labelapp.services.community import talk
from tests.factories_console import make_account, make_scientist
from tests.factories_volunteers import make_candidates, make_gold

pytestmark = pytest.mark.django_db

XSS = [
    "<script>window.__xss=1</script>",
    '"><img src=x onerror=window.__xss=1>',
    "[click](javascript:alert(1))",
    '<a href="javascript:alert(1)">x</a>',
    "**<svg/onload=alert(1)>**",
]


@pytest.fixture(autouse=True)
def _cache(own_cache):
    """Rate-limit counters live in the cache: a fresh one per test."""


def _voted(user, candidate, answer="yes") -> Volunteer:
    volunteer, _ = Volunteer.objects.get_or_create(user=user)
    Vote.objects.get_or_create(
        volunteer=volunteer, candidate=candidate, defaults={"answer": answer}
    )
    return volunteer


def _client(user=None, csrf=False) -> Client:
    client = Client(enforce_csrf_checks=csrf)
    if user is not None:
        client.force_login(user)
    return client


class _Elements(HTMLParser):
    """Every element of a page with its attributes, as a browser would build them."""

    def __init__(self):
        super().__init__()
        self.found: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs):
        self.found.append((tag, dict(attrs)))


def _unsafe(html: str) -> list:
    """Elements that could run script: inline <script>, on* handlers, javascript: URLs,
    and any <img>/<svg>/<iframe> (the Talk pages draw none but the candidate's cutout)."""
    parser = _Elements()
    parser.feed(html)
    bad = []
    for tag, attrs in parser.found:
        if tag == "script" and "src" not in attrs and attrs.get("type") != "application/json":
            bad.append((tag, attrs))
        if any(name.startswith("on") for name in attrs):
            bad.append((tag, attrs))
        if any((v or "").strip().lower().startswith("javascript:") for v in attrs.values()):
            bad.append((tag, attrs))
        if tag in ("svg", "iframe") or (tag == "img" and "cutout" not in attrs.get("src", "")):
            bad.append((tag, attrs))
    return bad


def _board_thread(user, title="Hello", body="first") -> Thread:
    return talk.create_thread(user=user, board_slug="general", title=title, body=body)


# --- permissions ------------------------------------------------------------------------


def test_anonymous_cannot_post_anything():
    cand = make_candidates(1)[0]
    author = make_account("ann")
    thread = _board_thread(author)
    client = _client()
    posts = [
        ("/talk/boards/general/new/", {"title": "t", "body": "b"}),
        (f"/talk/threads/{thread.pk}/comment/", {"body": "b"}),
        (f"/talk/candidates/{cand.detectid}/comment/", {"body": "b"}),
        (f"/talk/candidates/{cand.detectid}/flag/", {"reason": "interesting"}),
        (f"/talk/comments/{thread.comments.first().pk}/report/", {"reason": "spam"}),
    ]
    for url, data in posts:
        response = client.post(url, data)
        assert response.status_code == 302 and "/accounts/login/" in response["Location"], url
    assert Comment.objects.count() == 1 and not Report.objects.exists()
    assert not Flag.objects.exists() and Thread.objects.count() == 1
    with pytest.raises(Unauthenticated):
        talk.create_thread(user=AnonymousUser(), board_slug="general", title="t", body="b")


def test_anonymous_session_volunteer_is_not_an_account():
    """An anonymous volunteer who classified (a session, no account) reads but cannot post."""
    cand = make_candidates(1)[0]
    client = _client()
    page = client.get(f"/talk/candidates/{cand.detectid}/")
    assert page.status_code == 200 and b"Classify this candidate first" in page.content
    volunteer = Volunteer.objects.create()
    Vote.objects.create(volunteer=volunteer, candidate=cand, answer="no")
    session = client.session
    session["volunteer_id"] = volunteer.pk
    session.save()
    page = client.get(f"/talk/candidates/{cand.detectid}/")
    assert b"Classify this candidate first" not in page.content
    assert b'id="login-to-post"' in page.content and b'id="comment-form"' not in page.content
    assert (
        client.post(f"/talk/candidates/{cand.detectid}/comment/", {"body": "x"}).status_code == 302
    )
    assert not Comment.objects.exists()


def test_candidate_thread_opens_only_after_classifying_it():
    cand, gold_cand, done = make_candidates(3)
    make_gold(gold_cand, is_real=False, kind="cosmic")
    Candidate.objects.filter(pk=done.pk).update(status="retired")
    done.refresh_from_db()
    vera, sci = make_account("vera"), make_scientist("sci")
    talk.post_candidate_comment(
        user=sci, volunteer=None, detectid=gold_cand.detectid, body="cosmic!"
    )
    assert not talk.can_read_candidate(candidate=cand, user=vera, volunteer=None)
    assert not talk.can_read_candidate(candidate=gold_cand, user=vera, volunteer=None)
    assert talk.can_read_candidate(candidate=done, user=vera, volunteer=None)  # settled
    assert talk.can_read_candidate(candidate=gold_cand, user=sci, volunteer=None)
    with pytest.raises(Forbidden, match="classify this candidate first"):
        talk.post_candidate_comment(user=vera, volunteer=None, detectid=cand.detectid, body="x")
    page = _client(vera).get(f"/talk/candidates/{gold_cand.detectid}/")
    assert b"cosmic!" not in page.content and b"Classify this candidate first" in page.content
    volunteer = _voted(vera, gold_cand, "no")
    assert talk.can_read_candidate(candidate=gold_cand, user=vera, volunteer=volunteer)
    assert b"cosmic!" in _client(vera).get(f"/talk/candidates/{gold_cand.detectid}/").content
    # a hashtag page does not show comments of closed threads either
    talk.post_candidate_comment(user=sci, volunteer=None, detectid=cand.detectid, body="#peek yes")
    tag_page = _client(vera).get("/talk/tags/peek/")
    assert b"yes" not in tag_page.content.split(b"Used in")[1]
    assert b"1 more comment with this tag is about candidates you have not classified" in (
        tag_page.content
    )
    assert str(cand.detectid).encode() not in tag_page.content  # nor which candidate
    assert str(cand.detectid).encode() in _client(sci).get("/talk/tags/peek/").content


def test_suspended_account_cannot_post_until_lifted():
    cand = make_candidates(1)[0]
    vera, sci = make_account("vera"), make_scientist("sci")
    volunteer = _voted(vera, cand)
    comment = talk.post_candidate_comment(
        user=vera, volunteer=volunteer, detectid=cand.detectid, body="hi"
    )
    response = _client(sci).post(
        f"/talk/comments/{comment.pk}/suspend/", {"reason": "spamming", "days": "3"}
    )
    assert response.status_code == 302
    s = Suspension.objects.get(user=vera)
    assert s.until is not None and s.created_by == sci
    with pytest.raises(Forbidden, match="may not post on Talk until .*spamming"):
        talk.post_candidate_comment(
            user=vera, volunteer=volunteer, detectid=cand.detectid, body="x"
        )
    response = _client(vera).post(f"/talk/candidates/{cand.detectid}/comment/", {"body": "again"})
    assert response.status_code == 403 and b"spamming" in response.content
    assert Comment.objects.count() == 1
    page = _client(vera).get(f"/talk/candidates/{cand.detectid}/")
    assert b'id="comment-form"' not in page.content and b"may not post on Talk" in page.content
    assert AuditEvent.objects.filter(action="talk_suspend", target=f"user:{vera.pk}").exists()
    assert _client(sci).post(f"/talk/suspensions/{s.pk}/lift/").status_code == 302
    assert AuditEvent.objects.filter(action="talk_unsuspend").exists()
    talk.post_candidate_comment(user=vera, volunteer=volunteer, detectid=cand.detectid, body="back")
    assert Comment.objects.count() == 2


def test_volunteers_cannot_moderate_scientists_and_moderators_can():
    cand = make_candidates(1)[0]
    vera, bob, sci = make_account("vera"), make_account("bob"), make_scientist("sci")
    mod = make_account("mod")
    mod.groups.add(Group.objects.get_or_create(name="talk-moderators")[0])
    comment = talk.post_candidate_comment(
        user=vera, volunteer=_voted(vera, cand), detectid=cand.detectid, body="rude #words"
    )
    assert Hashtag.objects.get(name="words").n_comments == 1
    for who in (bob, vera):
        response = _client(who).post(f"/talk/comments/{comment.pk}/hide/", {"reason": "x"})
        assert response.status_code == 403, who
        response = _client(who).post(f"/talk/comments/{comment.pk}/suspend/", {"reason": "x"})
        assert response.status_code == 403, who
        assert _client(who).get("/talk/moderation/").status_code == 403
    comment.refresh_from_db()
    assert not comment.hidden and not Suspension.objects.exists()
    assert not AuditEvent.objects.exists()

    # a report from bob, then the scientist hides the comment: kept, audited, counts down
    assert (
        _client(bob).post(f"/talk/comments/{comment.pk}/report/", {"reason": "rude"}).status_code
        == 302
    )
    assert _client(sci).get("/talk/moderation/").status_code == 200
    response = _client(sci).post(
        f"/talk/comments/{comment.pk}/hide/", {"reason": "off topic", "hidden": "1"}
    )
    assert response.status_code == 302
    comment.refresh_from_db()
    assert comment.hidden and comment.hidden_by == sci and comment.hidden_reason == "off topic"
    assert Comment.objects.filter(pk=comment.pk).exists()  # kept
    assert Report.objects.get(comment=comment).resolution == "hidden"
    event = AuditEvent.objects.get(action="talk_hide")
    assert event.target == f"comment:{comment.pk}" and event.user == sci
    assert event.detail["reason"] == "off topic"
    assert Hashtag.objects.get(name="words").n_comments == 0
    assert Thread.objects.get().n_comments == 0
    assert b"rude" not in _client(bob).get(f"/talk/candidates/{cand.detectid}/").content
    assert (
        b"Hidden by a moderator" in _client(sci).get(f"/talk/candidates/{cand.detectid}/").content
    )
    # a volunteer moderator (not a scientist) shows it again; cannot suspend a scientist
    assert talk.set_comment_hidden(user=mod, comment_id=comment.pk, hidden=False)
    assert Hashtag.objects.get(name="words").n_comments == 1
    assert AuditEvent.objects.filter(action="talk_unhide", user=mod).exists()
    with pytest.raises(Forbidden, match="cannot be suspended"):
        talk.suspend_user(moderator=mod, user_id=sci.pk, reason="x")
    # ... and cannot act on flags (the science team's job)
    with pytest.raises(Forbidden, match="only the science team"):
        talk.act_on_flags(user=mod, detectid=cand.detectid, action="close")
    assert _client(mod).get("/console/talk/").status_code == 403


def test_reports_once_per_account_and_not_own_comment():
    vera, bob = make_account("vera"), make_account("bob")
    thread = _board_thread(vera)
    comment = thread.comments.get()
    assert talk.report_comment(user=bob, comment_id=comment.pk, reason="spam")
    assert not talk.report_comment(user=bob, comment_id=comment.pk, reason="again")
    with pytest.raises(InvalidInput, match="your own comment"):
        talk.report_comment(user=vera, comment_id=comment.pk)
    assert Report.objects.count() == 1


# --- XSS on everything a volunteer writes -----------------------------------------------


@pytest.mark.parametrize("payload", XSS)
def test_everything_typed_is_escaped_on_every_page(payload):
    cand = make_candidates(1)[0]
    vera, sci = make_account("vera"), make_scientist("sci")
    volunteer = _voted(vera, cand)
    thread = talk.create_thread(
        user=vera, board_slug="general", title=payload, body=f"{payload} #xss"
    )
    comment = thread.comments.get()
    talk.post_candidate_comment(
        user=vera, volunteer=volunteer, detectid=cand.detectid, body=f"{payload} #xss"
    )
    talk.flag_candidate(
        user=vera, volunteer=volunteer, detectid=cand.detectid, reason="broken", text=payload
    )
    bob = make_account("bob")
    talk.report_comment(user=bob, comment_id=comment.pk, reason=payload)
    talk.post_comment(user=bob, volunteer=None, thread_id=thread.pk, body=payload)
    pages = [
        (vera, "/talk/"),
        (vera, "/talk/boards/general/"),
        (vera, f"/talk/threads/{thread.pk}/"),
        (vera, f"/talk/candidates/{cand.detectid}/"),
        (vera, "/talk/tags/xss/"),
        (vera, "/talk/notifications/"),
        (sci, "/talk/moderation/"),
        (sci, "/console/talk/"),
        (sci, f"/talk/candidates/{cand.detectid}/"),
    ]
    for user, url in pages:
        response = _client(user).get(url)
        assert response.status_code == 200, url
        assert _unsafe(response.content.decode()) == [], url
    # the title and the body are shown as the text that was typed
    page = _client(vera).get(f"/talk/threads/{thread.pk}/").content.decode()
    escaped = payload.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert escaped.replace('"', "&quot;") in page or escaped in page


def test_bodies_and_titles_are_checked():
    vera = make_account("vera")
    with pytest.raises(InvalidInput, match="empty"):
        _board_thread(vera, title="   ")
    with pytest.raises(InvalidInput, match="5001 characters long"):
        _board_thread(vera, body="x" * 5001)
    with pytest.raises(InvalidInput, match="control characters"):
        _board_thread(vera, body="a\u202eb")
    response = _client(vera).post("/talk/boards/general/new/", {"title": "T", "body": ""})
    assert response.status_code == 400 and b"empty" in response.content
    response = _client(vera).post("/talk/candidates/abc/comment/", {"body": "x"})
    assert response.status_code == 404
    assert _client(vera).post("/talk/candidates/99/comment/", {"body": "x"}).status_code == 404
    assert _client(vera).post("/talk/threads/9999/comment/", {"body": "x"}).status_code == 404
    assert _client(vera).get("/talk/tags/1bad/").status_code == 404
    assert _client(vera).get("/talk/boards/nope/").status_code == 404
    thread = _board_thread(vera)
    response = _client(vera).post(
        f"/talk/threads/{thread.pk}/comment/", {"body": "x", "reply_to": "zz"}
    )
    assert response.status_code == 400 and b"reply_to must be a whole number" in response.content


# --- rate limit -------------------------------------------------------------------------


def test_posting_is_rate_limited_per_account(settings):
    settings.TALK_POST_RATE = (3, 300)
    vera, bob, sci = make_account("vera"), make_account("bob"), make_scientist("sci")
    thread = _board_thread(vera)  # 1
    for i in range(2):  # 2, 3
        talk.post_comment(user=vera, volunteer=None, thread_id=thread.pk, body=f"c{i}")
    with pytest.raises(RateLimited, match="more than 3 posts") as caught:
        talk.post_comment(user=vera, volunteer=None, thread_id=thread.pk, body="too many")
    assert caught.value.extra["retry_after_s"] > 0
    response = _client(vera).post(f"/talk/threads/{thread.pk}/comment/", {"body": "kept text"})
    assert response.status_code == 429 and b"kept text" in response.content
    talk.post_comment(user=bob, volunteer=None, thread_id=thread.pk, body="bob is fine")
    for i in range(5):  # the science team answers without a limit
        talk.post_comment(user=sci, volunteer=None, thread_id=thread.pk, body=f"s{i}")
    assert Comment.objects.filter(author=vera).count() == 3


def test_reports_are_rate_limited(settings):
    settings.TALK_REPORT_RATE = (2, 3600)
    vera, bob = make_account("vera"), make_account("bob")
    thread = _board_thread(vera)
    comments = [thread.comments.get()] + [
        talk.post_comment(user=vera, volunteer=None, thread_id=thread.pk, body=f"c{i}")
        for i in range(2)
    ]
    talk.report_comment(user=bob, comment_id=comments[0].pk)
    talk.report_comment(user=bob, comment_id=comments[1].pk)
    response = _client(bob).post(f"/talk/comments/{comments[2].pk}/report/")
    assert response.status_code == 429 and b"more than 2 reports" in response.content


# --- hashtags ---------------------------------------------------------------------------


def test_an_exam_gold_thread_stays_closed_after_classifying_it():
    """Exam gold's answer proves volunteers, so its thread never opens to a volunteer (a
    teaching gold's does once they answered it: the test above)."""
    (exam,) = make_candidates(1)
    make_gold(exam, is_real=False, kind="cosmic", exam=True)
    vera, sci = make_account("vera"), make_scientist("sci")
    talk.post_candidate_comment(user=sci, volunteer=None, detectid=exam.detectid, body="cosmic!")
    before = _client(vera).get(f"/talk/candidates/{exam.detectid}/").content.decode()
    assert "Classify this candidate first" in before and "Thank you for classifying" not in before
    volunteer = _voted(vera, exam, "no")
    assert not talk.can_read_candidate(candidate=exam, user=vera, volunteer=volunteer)
    after = _client(vera).get(f"/talk/candidates/{exam.detectid}/").content.decode()
    assert "cosmic!" not in after
    # having classified it, they are not asked to classify it again
    assert "Classify this candidate first" not in after and "Thank you for classifying" in after
    assert talk.can_read_candidate(candidate=exam, user=sci, volunteer=None)


def test_hashtag_counts_are_kept_and_cheap_to_read(django_assert_max_num_queries):
    cands = make_candidates(3)
    vera, bob = make_account("vera"), make_account("bob")
    for user in (vera, bob):
        for c in cands:
            _voted(user, c)
    talk.post_candidate_comment(
        user=vera, volunteer=None, detectid=cands[0].detectid, body="#Sky-residual #sky #meteor"
    )
    talk.post_candidate_comment(user=bob, volunteer=None, detectid=cands[1].detectid, body="#sky")
    talk.post_candidate_comment(
        user=bob, volunteer=None, detectid=cands[0].detectid, body="`#sky` is code, #SKY is not"
    )
    _board_thread(vera, body="#meteor on a board")
    counts = dict(Hashtag.objects.values_list("name", "n_comments"))
    assert counts == {"sky-residual": 1, "sky": 3, "meteor": 2}
    from labelapp.selectors import talk as reads

    with django_assert_max_num_queries(1):
        top = [(t.name, t.n_comments) for t in reads.top_hashtags()]
    assert top == [("sky", 3), ("meteor", 2), ("sky-residual", 1)]
    rows = reads.hashtag_candidates(Hashtag.objects.get(name="sky"))
    assert [(r["candidate__detectid"], r["n"]) for r in rows] == [
        (cands[0].detectid, 2),
        (cands[1].detectid, 1),
    ]
    page = _client(vera).get("/talk/tags/sky/")
    assert page.status_code == 200 and b"Used in 3 comments" in page.content
    assert _client().get("/talk/tags/unused/").status_code == 200


def test_numbers_link_only_to_existing_candidates():
    cand = make_candidates(1)[0]
    vera = make_account("vera")
    thread = _board_thread(vera, body=f"see {cand.detectid} and detectid:{cand.detectid + 7}")
    html = _client().get(f"/talk/threads/{thread.pk}/").content.decode()
    assert f'href="/talk/candidates/{cand.detectid}/"' in html
    assert f"/talk/candidates/{cand.detectid + 7}/" not in html


# --- notifications ----------------------------------------------------------------------


def test_replies_notify_the_others_and_science_replies_say_so():
    cand = make_candidates(1)[0]
    vera, bob, sci = make_account("vera"), make_account("bob"), make_scientist("sci")
    for user in (vera, bob):
        _voted(user, cand)
    flag = talk.flag_candidate(
        user=vera, volunteer=None, detectid=cand.detectid, reason="interesting", text="odd blob"
    )
    talk.post_candidate_comment(user=bob, volunteer=None, detectid=cand.detectid, body="me too")
    assert list(Notification.objects.values_list("recipient__username", "kind")) == [
        ("vera", "reply")
    ]
    reply = talk.post_candidate_comment(
        user=sci, volunteer=None, detectid=cand.detectid, body="an [OII] emitter"
    )
    assert reply.science_team
    assert set(
        Notification.objects.filter(comment=reply).values_list("recipient__username", "kind")
    ) == {("vera", "science"), ("bob", "science")}
    assert not Notification.objects.filter(recipient=sci).exists()  # not for one's own

    client = _client(vera)
    home = client.get("/talk/").content.decode()
    assert "Talk: 2 unread notifications" in home  # the nav's count
    page = client.get("/talk/notifications/").content.decode()
    assert "sci (science team) answered in" in page and "bob answered in" in page
    # the flag's comment shows the badge; the scientist's reply carries "science team"
    thread_html = _client(bob).get(f"/talk/candidates/{cand.detectid}/").content.decode()
    assert "flagged for the science team: interesting" in thread_html
    assert 'class="badge science-badge">science team<' in thread_html
    assert flag.comment.body == "odd blob"
    # marking one read, then opening the thread reads the rest
    one = Notification.objects.filter(recipient=vera).first()
    assert client.post("/talk/notifications/", {"id": [one.pk]}).status_code == 302
    assert Notification.objects.filter(recipient=vera, read_at__isnull=True).count() == 1
    client.get(f"/talk/candidates/{cand.detectid}/")
    assert not Notification.objects.filter(recipient=vera, read_at__isnull=True).exists()
    assert "unread notification" not in client.get("/talk/").content.decode()
    # mark all read for bob
    assert _client(bob).post("/talk/notifications/").status_code == 302
    assert not Notification.objects.filter(read_at__isnull=True).exists()


def test_a_hidden_comment_stops_notifying():
    vera, bob, sci = make_account("vera"), make_account("bob"), make_scientist("sci")
    thread = _board_thread(vera)
    rude = talk.post_comment(user=bob, volunteer=None, thread_id=thread.pk, body="rude")
    assert Notification.objects.filter(recipient=vera, read_at__isnull=True).count() == 1
    talk.set_comment_hidden(user=sci, comment_id=rude.pk, hidden=True)
    assert not Notification.objects.filter(recipient=vera, read_at__isnull=True).exists()


# --- flags and the console --------------------------------------------------------------


def test_flag_rules():
    cand = make_candidates(1)[0]
    vera = make_account("vera")
    _voted(vera, cand)
    with pytest.raises(InvalidInput, match="reason must be one of interesting, artefact, broken"):
        talk.flag_candidate(user=vera, volunteer=None, detectid=cand.detectid, reason="meh")
    talk.flag_candidate(user=vera, volunteer=None, detectid=cand.detectid, reason="artefact")
    with pytest.raises(InvalidInput, match="flagged this candidate already"):
        talk.flag_candidate(user=vera, volunteer=None, detectid=cand.detectid, reason="broken")
    response = _client(vera).post(f"/talk/candidates/{cand.detectid}/flag/", {"reason": "x"})
    assert response.status_code == 400


def test_console_lists_flags_and_hashtags_and_makes_gold_with_audit():
    cand, other = make_candidates(2)
    vera, bob, sci = make_account("vera"), make_account("bob"), make_scientist("sci")
    for user in (vera, bob):
        _voted(user, cand)
    talk.flag_candidate(
        user=vera, volunteer=None, detectid=cand.detectid, reason="artefact", text="#cosmic-ray"
    )
    talk.flag_candidate(user=bob, volunteer=None, detectid=cand.detectid, reason="interesting")
    talk.post_candidate_comment(
        user=bob, volunteer=None, detectid=cand.detectid, body="#cosmic-ray"
    )
    page = _client(sci).get("/console/talk/").content.decode()
    assert f'data-detectid="{cand.detectid}"' in page
    assert "#cosmic-ray</a> 2" in page
    assert _client(vera).get("/console/talk/").status_code == 403
    assert _client().get("/console/talk/").status_code == 302

    response = _client(sci).post(
        f"/console/talk/candidates/{cand.detectid}/",
        {"action": "gold", "is_real": "false", "kind": "cosmic", "feedback": ""},
    )
    assert response.status_code == 302
    gold = GoldStandard.objects.get(candidate=cand)
    assert not gold.is_real and gold.kind == "cosmic" and gold.active
    assert not Flag.objects.filter(resolved_at__isnull=True).exists()
    assert set(Flag.objects.values_list("resolution", flat=True)) == {"gold"}
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"gold_mark", "talk_flags_gold"} <= actions
    event = AuditEvent.objects.get(action="talk_flags_gold")
    assert event.target == f"candidate:{cand.detectid}" and len(event.detail["flags"]) == 2
    # nothing was posted in the thread (it would give the gold answer away)
    assert Comment.objects.filter(thread__candidate=cand).count() == 3
    # a volunteer who has not classified it cannot read it now that it is gold
    carl = make_account("carl")
    assert not talk.can_read_candidate(candidate=cand, user=carl, volunteer=None)


def test_console_sends_to_experts_and_refuses_bad_input():
    cand = make_candidates(1)[0]
    vera, sci = make_account("vera"), make_scientist("sci")
    _voted(vera, cand)
    talk.flag_candidate(user=vera, volunteer=None, detectid=cand.detectid, reason="interesting")
    client = _client(sci)
    response = client.post(
        f"/console/talk/candidates/{cand.detectid}/",
        {"action": "gold", "is_real": "true", "kind": "cosmic"},
    )
    assert response.status_code == 400 and b"pick a matching kind" in response.content
    assert not GoldStandard.objects.exists() and Flag.objects.get().resolved_at is None
    assert not AuditEvent.objects.exists()  # rolled back together
    assert (
        client.post(f"/console/talk/candidates/{cand.detectid}/", {"action": "x"}).status_code
        == 400
    )
    assert client.post("/console/talk/candidates/1/", {"action": "close"}).status_code == 404
    response = client.post(f"/console/talk/candidates/{cand.detectid}/", {"action": "expert"})
    assert response.status_code == 302
    cand.refresh_from_db()
    assert cand.status == Candidate.Status.EXPERT
    assert Flag.objects.get().resolution == "expert"
    assert {"expert_send", "talk_flags_expert"} <= set(
        AuditEvent.objects.values_list("action", flat=True)
    )
    # closing flags on a candidate with none open still records the decision
    response = client.post(f"/console/talk/candidates/{cand.detectid}/", {"action": "close"})
    assert response.status_code == 302
    assert AuditEvent.objects.get(action="talk_flags_close").detail["flags"] == []


# --- CSRF -------------------------------------------------------------------------------


def test_every_write_needs_the_csrf_token():
    cand = make_candidates(1)[0]
    vera, sci = make_account("vera"), make_scientist("sci")
    _voted(vera, cand)
    thread = _board_thread(vera)
    comment = thread.comments.get()
    talk.flag_candidate(user=vera, volunteer=None, detectid=cand.detectid, reason="broken")
    susp = talk.suspend_user(moderator=sci, user_id=make_account("zed").pk, reason="x")
    bob = make_account("bob")
    talk.report_comment(user=bob, comment_id=comment.pk)
    report = Report.objects.get()
    before = (Comment.objects.count(), Thread.objects.count(), AuditEvent.objects.count())
    writes = [
        (vera, "/talk/boards/general/new/", {"title": "t", "body": "b"}),
        (vera, f"/talk/threads/{thread.pk}/comment/", {"body": "b"}),
        (vera, f"/talk/candidates/{cand.detectid}/comment/", {"body": "b"}),
        (vera, f"/talk/candidates/{cand.detectid}/flag/", {"reason": "interesting"}),
        (bob, f"/talk/comments/{comment.pk}/report/", {"reason": "r"}),
        (vera, "/talk/notifications/", {}),
        (sci, f"/talk/comments/{comment.pk}/hide/", {"hidden": "1"}),
        (sci, f"/talk/comments/{comment.pk}/suspend/", {"reason": "r"}),
        (sci, f"/talk/reports/{report.pk}/dismiss/", {}),
        (sci, f"/talk/suspensions/{susp.pk}/lift/", {}),
        (sci, f"/console/talk/candidates/{cand.detectid}/", {"action": "expert"}),
    ]
    for user, url, data in writes:
        assert _client(user, csrf=True).post(url, data).status_code == 403, url
    after = (Comment.objects.count(), Thread.objects.count(), AuditEvent.objects.count())
    assert after == before
    comment.refresh_from_db()
    assert not comment.hidden and Report.objects.get().resolved_at is None
    assert Suspension.objects.get(pk=susp.pk).lifted_at is None
    cand.refresh_from_db()
    assert cand.status == Candidate.Status.ACTIVE


def test_pages_render_for_every_role():
    cand = make_candidates(1)[0]
    vera, sci = make_account("vera"), make_scientist("sci")
    _voted(vera, cand)
    thread = _board_thread(vera, title="Hello board")
    talk.post_candidate_comment(user=vera, volunteer=None, detectid=cand.detectid, body="**hi**")
    for user in (None, vera, sci):
        client = _client(user)
        assert b"General" in client.get("/talk/").content
        assert b"Hello board" in client.get("/talk/boards/general/").content
        assert client.get(f"/talk/threads/{thread.pk}/").status_code == 200
    # a candidate thread's id redirects to the candidate page
    cthread = Thread.objects.get(candidate=cand)
    response = _client(vera).get(f"/talk/threads/{cthread.pk}/")
    assert response.status_code == 302 and response["Location"].endswith(
        f"/talk/candidates/{cand.detectid}/"
    )
    assert b"<strong>hi</strong>" in _client(vera).get(f"/talk/candidates/{cand.detectid}/").content
    # entry points: /me/ links Talk, the classify page carries the thread URL pattern
    assert b'href="/talk/"' in _client(vera).get("/me/").content
    assert b'"talk": "/talk/candidates/0/"' in _client(vera).get("/classify/?skip=1").content


def test_out_of_range_ids_are_refused_not_crashes():
    client = _client(make_scientist("sci"))
    big = "9" * 25
    for url in (f"/talk/threads/{big}/", f"/talk/candidates/{big}/"):
        assert client.get(url).status_code == 404, url
    posts = [
        f"/talk/threads/{big}/comment/",
        f"/talk/candidates/{big}/comment/",
        f"/talk/comments/{big}/hide/",
        f"/talk/comments/{big}/report/",
        f"/talk/comments/{big}/suspend/",
        f"/talk/reports/{big}/dismiss/",
        f"/talk/suspensions/{big}/lift/",
        f"/console/talk/candidates/{big}/",
    ]
    for url in posts:
        response = client.post(url, {"body": "x", "reason": "r", "action": "close"})
        assert response.status_code < 500, (url, response.status_code)
