"""Accounts: sign up keeps anonymous votes, log-in merges them, log out, password reset."""

import json

import pytest
from django.contrib.auth.models import User
from django.core import mail

from labelapp.models import Volunteer, Vote
from labelapp.services.crowd.volunteers import merge_volunteers
from tests.factories_volunteers import make_candidates, make_volunteer, with_token

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_cache")]


def vote(client, detectid, answer="yes"):
    return client.post(
        "/api/votes/",
        json.dumps(with_token(client, {"detectid": detectid, "answer": answer})),
        content_type="application/json",
    )


def test_anonymous_votes_carry_over_on_sign_up(client):
    cands = make_candidates(5)
    for c in cands[:3]:
        assert vote(client, c.detectid).status_code == 201
    anon = Volunteer.objects.get()
    resp = client.post(
        "/accounts/signup/",
        {"username": "ada", "email": "ada@example.org", "password1": "orbit-lyman-42",
         "password2": "orbit-lyman-42", "next": "/me/"},
    )  # fmt: skip
    assert resp.status_code == 302 and resp["Location"] == "/me/"
    user = User.objects.get(username="ada")
    assert Volunteer.objects.get() == anon and Volunteer.objects.get().user == user
    assert Vote.objects.filter(volunteer__user=user).count() == 3
    assert vote(client, cands[3].detectid).status_code == 201  # keeps classifying as ada
    html = client.get("/me/").content.decode()
    assert "ada's classifications" in html and 'id="stat-votes">4<' in html


def test_log_in_merges_anonymous_votes_into_the_account(client):
    cands = make_candidates(4)
    user = User.objects.create_user("bo", password="orbit-lyman-42")
    account = make_volunteer(user=user)
    Vote.objects.create(volunteer=account, candidate=cands[0], answer="no")
    account.n_votes = 1
    account.save()
    vote(client, cands[0].detectid, "yes")  # the same candidate, anonymously
    vote(client, cands[1].detectid, "yes")
    resp = client.post("/accounts/login/", {"username": "bo", "password": "orbit-lyman-42"})
    assert resp.status_code == 302
    assert Volunteer.objects.count() == 1
    answers = dict(Vote.objects.values_list("candidate__detectid", "answer"))
    assert answers == {cands[0].detectid: "no", cands[1].detectid: "yes"}  # account wins
    account.refresh_from_db()
    assert account.n_votes == 2


def test_log_out_is_a_post_and_forgets_the_session(client):
    User.objects.create_user("cy", password="orbit-lyman-42")
    client.post("/accounts/login/", {"username": "cy", "password": "orbit-lyman-42"})
    assert "Log out" in client.get("/").content.decode()
    resp = client.post("/accounts/logout/")
    assert resp.status_code == 302 and resp["Location"] == "/"
    assert "Log in" in client.get("/").content.decode()


def test_password_reset_sends_a_link(client, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    User.objects.create_user("di", email="di@example.org", password="orbit-lyman-42")
    assert client.get("/accounts/password_reset/").status_code == 200
    resp = client.post("/accounts/password_reset/", {"email": "di@example.org"})
    assert resp.status_code == 302
    assert len(mail.outbox) == 1 and "/accounts/reset/" in mail.outbox[0].body
    link = next(w for w in mail.outbox[0].body.split() if "/accounts/reset/" in w)
    path = link[link.index("/accounts/reset/") :]
    form = client.get(path, follow=True)
    assert "Choose a new password" in form.content.decode()
    done = client.post(
        form.redirect_chain[-1][0],
        {"new_password1": "nebula-shift-77", "new_password2": "nebula-shift-77"},
    )
    assert done.status_code == 302
    assert client.login(username="di", password="nebula-shift-77")


def test_console_email_backend_in_development():
    import labelapp.settings as configured  # the module's values (pytest swaps in locmem)

    assert configured.DEBUG and configured.EMAIL_BACKEND.endswith("console.EmailBackend")


def test_merge_of_a_volunteer_into_itself_changes_nothing():
    v = make_volunteer()
    assert merge_volunteers(source=v, target=v) == 0 and Volunteer.objects.filter(pk=v.pk).exists()


def test_get_volunteer_reads_the_same_row_as_the_orm(client):
    """services.volunteers reads the volunteer in SQL (converters applied: aware datetimes)."""
    from labelapp.services.crowd.volunteers import SESSION_KEY, get_volunteer

    c = make_candidates(1)[0]
    assert vote(client, c.detectid).status_code == 201
    session = client.session
    mine = get_volunteer(session=session, user=None)
    orm = Volunteer.objects.get(pk=session[SESSION_KEY])
    fields = [f.attname for f in Volunteer._meta.concrete_fields]
    assert [getattr(mine, f) for f in fields] == [getattr(orm, f) for f in fields]
    assert mine.last_vote_at.tzinfo is not None and not mine._state.adding
    user = User.objects.create_user("acct", password="x-very-long-pass")
    Volunteer.objects.filter(pk=orm.pk).update(user=user)
    assert get_volunteer(session=session, user=None) is None  # an account's, not the session's
    assert get_volunteer(session=session, user=user).pk == orm.pk


def test_a_merge_keeps_the_exam_answers_kept_at_the_exam_gold_upgrade():
    """Migration 0032 kept pre-upgrade gold answers (all on teaching gold) as exam answers so
    that proven volunteers stayed proven; a merge recounts from the votes, which would drop
    them. New exam answers, moved in from the session, add to them."""
    from labelapp.services.crowd.consensus import proof_rule
    from mlcore.aggregation.evidence import is_proven
    from tests.factories_volunteers import make_gold

    cands = make_candidates(13)
    for c in cands[:12]:
        make_gold(c, is_real=True)  # teaching gold, answered before the upgrade
    make_gold(cands[12], is_real=False, exam=True)
    account = make_volunteer()
    for i, c in enumerate(cands[:12]):
        answer = "yes" if i else "no"
        Vote.objects.create(volunteer=account, candidate=c, answer=answer, was_gold=True)
    account.n_votes = account.n_gold = account.n_exam = 12
    account.n_gold_correct = account.n_exam_correct = 11  # what keep_proof left
    account.save()
    session = make_volunteer()
    Vote.objects.create(volunteer=session, candidate=cands[12], answer="no", was_gold=True)
    assert merge_volunteers(source=session, target=account) == 1
    account.refresh_from_db()
    assert (account.n_gold, account.n_gold_correct) == (13, 12)
    assert (account.n_exam, account.n_exam_correct) == (13, 12)
    assert is_proven(account.n_exam, account.n_exam_correct, **proof_rule())
    # a volunteer whose counters match their votes gains nothing from a merge but the votes
    fresh, other = make_volunteer(), make_volunteer()
    merge_volunteers(source=other, target=fresh)
    fresh.refresh_from_db()
    assert (fresh.n_exam, fresh.n_exam_correct) == (0, 0)
