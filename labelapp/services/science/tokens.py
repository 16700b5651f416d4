"""Scientists' tokens for the read-only science API (docs/api.md).

A token is ``sci_`` + 43 url-safe characters (256 random bits). Only its SHA-256 is stored
(``ScienceToken.key_hash``), so a database dump gives no working token; the secret is shown
once, when it is created. Only scientists (``selectors.volunteers.is_expert``) create tokens,
and a token stops working when it is revoked or when its owner stops being a scientist.

Every request made with a token is counted against its rate limit (``SCIENCE_API_RATE``)
and written to the audit log (action ``api.read``, target ``token:<id>``).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from labelapp.errors import Forbidden, InvalidInput, NotFound, RateLimited, Unauthenticated
from labelapp.models import ScienceToken
from labelapp.selectors.volunteers import is_expert
from labelapp.services.operations.audit import record_audit
from labelapp.services.operations.ratelimit import hit_rate_limit

TOKEN_PREFIX = "sci_"  # noqa: S105 - the public prefix of every token, not a secret
SCOPES: dict[str, str] = {
    "catalogue:read": "catalogue rows with scores, labels, consensus and rounds",
    "votes:read": "votes, with volunteers pseudonymised",
    "models:read": "model versions and their cards, pretrained encoders",
    "cutouts:read": "cutouts and spectra as arrays and PNG",
}
MAX_NAME = 80
# A token's last_used_at is written at most this often (not on every request).
LAST_USED_RESOLUTION_S = 60


@dataclass(frozen=True)
class NewToken:
    token: ScienceToken
    secret: str  # shown once; never stored


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def create_token(*, user, name: str, scopes: list[str]) -> NewToken:
    """A new token for scientist ``user`` with ``scopes``; the secret is in the result only."""
    if not is_expert(user):
        raise Forbidden("Only scientists can create API tokens.")
    name = (name or "").strip()
    if not name:
        raise InvalidInput("Give the token a name (e.g. the notebook or machine using it).")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"The token's name is {len(name)} characters; at most {MAX_NAME}.")
    unknown = sorted(set(scopes) - SCOPES.keys())
    if unknown:
        raise InvalidInput(
            f"Unknown scope(s) {', '.join(unknown)}: choose from {', '.join(SCOPES)}."
        )
    if not scopes:
        raise InvalidInput("Choose at least one scope.")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        token = ScienceToken.objects.create(
            name=name,
            user=user,
            prefix=secret[:12],
            key_hash=hash_secret(secret),
            scopes=sorted(set(scopes)),
        )
        record_audit(
            user=user,
            action="token.create",
            target=f"token:{token.pk}",
            detail={"name": name, "scopes": token.scopes, "prefix": token.prefix},
        )
    return NewToken(token=token, secret=secret)


def revoke_token(*, user, token_id: int) -> bool:
    """Revoke one of ``user``'s tokens (staff may revoke anyone's). False if it already was."""
    with transaction.atomic():
        token = ScienceToken.objects.select_for_update().filter(pk=token_id).first()
        if token is None or (token.user_id != user.pk and not user.is_staff):
            raise NotFound(f"You have no token {token_id}.")
        if token.revoked_at is not None:
            return False
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        record_audit(
            user=user,
            action="token.revoke",
            target=f"token:{token.pk}",
            detail={"name": token.name, "prefix": token.prefix, "owner": token.user_id},
        )
    return True


def tokens_of(user) -> list[ScienceToken]:
    return list(ScienceToken.objects.filter(user=user))


def authenticate_token(secret: str | None) -> ScienceToken:
    """The live token for ``secret``; Unauthenticated if there is none, it is revoked, or
    its owner is no longer an active scientist."""
    if not secret:
        raise Unauthenticated("Send your token in an 'Authorization: Bearer <token>' header.")
    token = ScienceToken.objects.select_related("user").filter(key_hash=hash_secret(secret)).first()
    if token is None:
        raise Unauthenticated("Unknown token: create one in the console (Console > API tokens).")
    if token.revoked_at is not None:
        raise Unauthenticated(
            f"Token {token.prefix}… was revoked on {token.revoked_at:%Y-%m-%d %H:%M} UTC."
        )
    if not is_expert(token.user):
        raise Unauthenticated("The token's owner is no longer a scientist on this project.")
    return token


def authorize_request(*, token: ScienceToken, scope: str, path: str, query: str = "") -> None:
    """Count the request against the token's rate limit (refused ones too, so a script
    hammering a forbidden endpoint is slowed like any other), check ``scope``, and audit
    it. Raises RateLimited (with ``retry_after_s``) or Forbidden (scope missing)."""
    limit, window_s = settings.SCIENCE_API_RATE
    decision = hit_rate_limit(key=f"sci:{token.pk}", limit=limit, window_s=window_s)
    if not decision.allowed:
        raise RateLimited(
            f"Token {token.prefix}… made more than {limit} requests in {window_s} s: "
            f"wait {decision.retry_after_s} s.",
            retry_after_s=decision.retry_after_s,
        )
    if scope not in token.scopes:
        record_audit(
            user=token.user,
            action="api.denied",
            target=f"token:{token.pk}",
            detail={"path": path, "query": query[:500], "missing_scope": scope},
        )
        raise Forbidden(
            f"Token {token.prefix}… lacks the scope {scope!r} (it has "
            f"{', '.join(token.scopes)}): create a token with it in the console."
        )
    now = timezone.now()
    with transaction.atomic():
        record_audit(
            user=token.user,
            action="api.read",
            target=f"token:{token.pk}",
            detail={"path": path, "query": query[:500]},
        )
        last = token.last_used_at
        if last is None or (now - last).total_seconds() >= LAST_USED_RESOLUTION_S:
            ScienceToken.objects.filter(pk=token.pk).update(last_used_at=now)
            token.last_used_at = now
