"""Accounts under attack: rate limits on sign-up, log-in and password reset, log-in
lock-out after repeated failures, and hostile usernames never rendered as markup."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import User
from django.core import mail

from labelapp.middleware import client_ip
from labelapp.services.operations import ratelimit

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_cache")]

HOSTILE = "<script>alert(1)</script>"
PASSWORD = "orbit-lyman-42"


def signup(client, username, **extra):
    return client.post(
        "/accounts/signup/",
        {"username": username, "password1": PASSWORD, "password2": PASSWORD},
        **extra,
    )


def login(client, username, password=PASSWORD, **extra):
    return client.post("/accounts/login/", {"username": username, "password": password}, **extra)


def logged_in(client) -> bool:
    return "_auth_user_id" in client.session


# --- per-IP limits (middleware) -------------------------------------------------------------


def test_sign_up_is_limited_per_ip(client, settings):
    settings.AUTH_RATE_SIGNUP = (2, 3600)
    assert signup(client, "first").status_code == 302
    client.post("/accounts/logout/")
    assert signup(client, "second").status_code == 302
    client.post("/accounts/logout/")
    resp = signup(client, "third")
    assert resp.status_code == 429 and int(resp["Retry-After"]) > 0
    assert "Too many sign-ups from your network" in resp.content.decode()
    assert not User.objects.filter(username="third").exists()
    # another address is not affected
    assert signup(client, "fourth", REMOTE_ADDR="10.0.0.9").status_code == 302


def test_password_reset_is_limited_per_ip(client, settings):
    settings.AUTH_RATE_PASSWORD_RESET = (2, 3600)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    User.objects.create_user("di", email="di@example.org", password=PASSWORD)
    for _ in range(2):
        assert (
            client.post("/accounts/password_reset/", {"email": "di@example.org"}).status_code == 302
        )
    resp = client.post("/accounts/password_reset/", {"email": "di@example.org"})
    assert resp.status_code == 429 and "password-reset requests" in resp.content.decode()
    assert len(mail.outbox) == 2  # the refused request sent nothing
    assert client.get("/accounts/password_reset/").status_code == 200  # reading the form is fine


def test_log_in_is_limited_per_ip_across_usernames(client, settings):
    settings.AUTH_RATE_LOGIN_IP = (3, 600)
    for i in range(3):
        assert login(client, f"nobody{i}").status_code == 200  # wrong: the form again
    resp = login(client, "nobody4")
    assert resp.status_code == 429 and "Too many log-in attempts from your network" in (
        resp.content.decode()
    )


def test_client_ip_trusts_x_forwarded_for_only_behind_a_proxy(rf, settings):
    request = rf.post("/", REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.7")
    settings.BEHIND_PROXY = False
    assert client_ip(request) == "10.1.1.1"  # a client can write any X-Forwarded-For
    settings.BEHIND_PROXY = True
    assert client_ip(request) == "203.0.113.7"  # the entry our proxy appended


def test_per_ip_limit_behind_a_proxy_counts_each_client(client, settings):
    settings.BEHIND_PROXY = True
    settings.AUTH_RATE_LOGIN_IP = (1, 600)
    assert login(client, "a", HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 200
    assert login(client, "a", HTTP_X_FORWARDED_FOR="198.51.100.2").status_code == 200
    assert login(client, "a", HTTP_X_FORWARDED_FOR="198.51.100.1").status_code == 429


# --- per-username limits and lock-out (log-in view) ---------------------------------------


def test_log_in_locks_a_username_after_repeated_failures(client, settings, monkeypatch):
    settings.AUTH_LOGIN_LOCKOUT = (3, 900)
    User.objects.create_user("bo", password=PASSWORD)
    for _ in range(3):
        assert login(client, "bo", "wrong-password").status_code == 200
    resp = login(client, "bo")  # the right password, from the same or any other address
    assert resp.status_code == 429 and not logged_in(client)
    assert int(resp["Retry-After"]) > 800
    html = resp.content.decode()
    assert "Too many failed log-ins for this username" in html and "15 minutes" in html
    assert login(client, "BO ", REMOTE_ADDR="10.9.9.9").status_code == 429  # same username
    # another username is not locked
    User.objects.create_user("cy", password=PASSWORD)
    assert login(client, "cy").status_code == 302 and logged_in(client)
    client.post("/accounts/logout/")
    # the window passes: the right password works again
    later = ratelimit.time.time() + 901
    monkeypatch.setattr(ratelimit.time, "time", lambda: later)
    assert login(client, "bo").status_code == 302 and logged_in(client)


def test_lock_out_applies_to_unknown_usernames_too(client, settings):
    """Same answer whether the account exists: the lock does not reveal usernames."""
    settings.AUTH_LOGIN_LOCKOUT = (2, 900)
    for _ in range(2):
        login(client, "ghost", "guess")
    assert login(client, "ghost", "guess").status_code == 429


def test_a_refused_log_in_does_not_check_the_password(client, settings, monkeypatch):
    settings.AUTH_LOGIN_LOCKOUT = (1, 900)
    User.objects.create_user("di", password=PASSWORD)
    login(client, "di", "wrong")
    calls = []
    import django.contrib.auth.forms as auth_forms

    real = auth_forms.authenticate
    monkeypatch.setattr(
        auth_forms, "authenticate", lambda *a, **k: calls.append(1) or real(*a, **k)
    )
    assert login(client, "di").status_code == 429 and calls == []


def test_log_in_attempts_are_limited_per_username(client, settings):
    settings.AUTH_RATE_LOGIN_USER = (2, 600)
    User.objects.create_user("ed", password=PASSWORD)
    assert login(client, "ed").status_code == 302
    client.post("/accounts/logout/")
    assert login(client, "ed").status_code == 302
    client.post("/accounts/logout/")
    resp = login(client, "ed", REMOTE_ADDR="10.2.2.2")
    assert resp.status_code == 429 and "Too many log-in attempts for this username" in (
        resp.content.decode()
    )


# --- hostile usernames ----------------------------------------------------------------------


def test_hostile_username_is_refused_at_sign_up_and_echoed_escaped(client):
    resp = signup(client, HOSTILE)
    html = resp.content.decode()
    assert resp.status_code == 200 and not User.objects.exists()
    assert "Enter a valid username" in html
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_hostile_username_stored_anyway_is_always_escaped(client, settings):
    """Created outside the form (admin, import, a future validator): still inert."""
    settings.AUTH_LOGIN_LOCKOUT = (2, 900)
    user = User.objects.create_user(HOSTILE, password=PASSWORD)
    # the login page echoes what was typed, after a failure and after the lock-out
    for expected in (200, 200, 429):
        resp = login(client, HOSTILE, "wrong")
        assert resp.status_code == expected
        html = resp.content.decode()
        assert HOSTILE not in html and "&lt;script&gt;" in html
    client.force_login(user)
    html = client.get("/me/").content.decode()
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;'s classifications" in html
    assert HOSTILE not in client.get("/").content.decode()  # the header's account link


# --- one limiter for every log-in form: the admin's too (issue #24) -----------------------


def admin_login(client, username, password=PASSWORD, **extra):
    return client.post(
        "/admin/login/?next=/admin/",
        {"username": username, "password": password, "next": "/admin/"},
        **extra,
    )


def test_admin_log_in_locks_out_like_the_volunteer_log_in(client, settings):
    """Before: 7 wrong passwords for a superuser at /admin/login/ were all answered
    normally. Now the 4th attempt after 3 failures is refused, even with the right password."""
    settings.AUTH_LOGIN_LOCKOUT = (3, 900)
    User.objects.create_superuser("root", password=PASSWORD)
    for _ in range(3):
        assert admin_login(client, "root", "wrong-password").status_code == 200
    resp = admin_login(client, "root")
    assert resp.status_code == 429 and not logged_in(client)
    assert "Too many failed log-ins for this username" in resp.content.decode()
    assert int(resp["Retry-After"]) > 800
    # and the lock is the same one: /accounts/login/ refuses it too
    assert login(client, "root").status_code == 429 and not logged_in(client)


def test_failures_at_either_form_add_up_to_one_lock(client, settings):
    settings.AUTH_LOGIN_LOCKOUT = (4, 900)
    User.objects.create_superuser("root", password=PASSWORD)
    for _ in range(2):
        admin_login(client, "root", "wrong")
        login(client, "root", "wrong")
    assert admin_login(client, "root").status_code == 429
    assert login(client, "root").status_code == 429


def test_a_locked_account_cannot_log_in_through_any_form(client, settings):
    """Locked at /accounts/login/, the right password at /admin/login/ is refused -- also by
    the authentication backend itself, for a form that would not ask the limiter."""
    settings.AUTH_LOGIN_LOCKOUT = (3, 900)
    User.objects.create_superuser("root", password=PASSWORD)
    for _ in range(3):
        login(client, "root", "wrong")
    assert admin_login(client, "root").status_code == 429 and not logged_in(client)
    from django.contrib.auth import authenticate

    assert authenticate(None, username="root", password=PASSWORD) is None


def test_admin_log_in_attempts_are_limited_per_username(client, settings):
    settings.AUTH_RATE_LOGIN_USER = (2, 600)
    User.objects.create_superuser("root", password=PASSWORD)
    assert admin_login(client, "root", "x").status_code == 200
    assert admin_login(client, "root", "y").status_code == 200
    assert admin_login(client, "root").status_code == 429


def test_the_admin_still_logs_in_with_the_right_password(client):
    User.objects.create_superuser("root", password=PASSWORD)
    resp = admin_login(client, "root")
    assert resp.status_code == 302 and logged_in(client)
