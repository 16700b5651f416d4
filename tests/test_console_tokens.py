"""Console > API tokens: a scientist creates a token (its secret shown once), uses it on the
science API, and revokes it; volunteers cannot reach the page."""

from __future__ import annotations

import re

import pytest

from labelapp.models import AuditEvent, ScienceToken
from labelapp.services.science.tokens import hash_secret
from tests.factories_console import make_account, make_scientist

pytestmark = pytest.mark.django_db


@pytest.fixture
def sci_client(client, own_cache):
    client.force_login(make_scientist())
    return client


def _secret(html: str) -> str | None:
    found = re.search(r'id="new-token-secret">(sci_[A-Za-z0-9_-]+)<', html)
    return found.group(1) if found else None


def test_create_use_and_revoke_a_token_from_the_console(sci_client):
    page = sci_client.get("/console/tokens/")
    assert page.status_code == 200 and "No tokens yet" in page.content.decode()
    resp = sci_client.post(
        "/console/tokens/", {"name": "laptop", "scopes": ["models:read", "votes:read"]}
    )
    assert resp.status_code == 302 and resp["Location"] == "/console/tokens/"
    html = sci_client.get("/console/tokens/").content.decode()
    secret = _secret(html)
    token = ScienceToken.objects.get()
    assert secret and token.key_hash == hash_secret(secret) and token.name == "laptop"
    assert token.scopes == ["models:read", "votes:read"]
    assert "shown only this once" in html and "laptop" in html
    again = sci_client.get("/console/tokens/").content.decode()
    assert _secret(again) is None and secret not in again and token.prefix in again

    sci_client.logout()  # the API needs the token, not the session
    api = sci_client.get("/api/science/v1/models", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.status_code == 200
    assert sci_client.get("/api/science/v1/models").status_code == 401

    sci_client.force_login(token.user)
    resp = sci_client.post(f"/console/tokens/{token.pk}/revoke/")
    assert resp.status_code == 302
    token.refresh_from_db()
    assert token.revoked_at is not None
    api = sci_client.get("/api/science/v1/models", HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.status_code == 401
    html = sci_client.get("/console/tokens/").content.decode()
    assert "revoked" in html and "Token 1 revoked" in html
    actions = list(AuditEvent.objects.order_by("pk").values_list("action", flat=True))
    assert actions == ["token.create", "api.read", "token.revoke"]


def test_bad_token_requests_say_what_is_wrong_and_create_nothing(sci_client):
    resp = sci_client.post("/console/tokens/", {"name": "", "scopes": ["models:read"]})
    assert resp.status_code == 400 and "Give the token a name" in resp.content.decode()
    resp = sci_client.post("/console/tokens/", {"name": "x"})
    assert resp.status_code == 400 and "at least one scope" in resp.content.decode()
    assert ScienceToken.objects.count() == 0


def test_a_scientist_cannot_revoke_someone_elses_token(sci_client):
    sci_client.post("/console/tokens/", {"name": "mine", "scopes": ["models:read"]})
    token = ScienceToken.objects.get()
    sci_client.force_login(make_scientist("other"))
    sci_client.post(f"/console/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.revoked_at is None
    assert "You have no token" in sci_client.get("/console/tokens/").content.decode()


def test_volunteers_and_visitors_cannot_reach_the_tokens_page(client, own_cache):
    assert client.get("/console/tokens/").status_code == 302
    client.force_login(make_account())
    assert client.get("/console/tokens/").status_code == 403
    assert (
        client.post("/console/tokens/", {"name": "x", "scopes": ["models:read"]}).status_code == 403
    )
    assert ScienceToken.objects.count() == 0
