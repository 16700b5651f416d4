"""Guards in front of ``services.votes.submit_vote`` for votes that come over HTTP.

* **Served tokens.** ``GET /api/next/`` (and a vote's ``next``, an undo's candidate) hands
  each candidate out with a token: an HMAC (Django's TimestampSigner, so SECRET_KEY) of the
  detectid, bound to a random per-session nonce and time-stamped. ``POST /api/votes/`` takes
  a vote only with a valid token for that detectid from the same session, younger than
  VOTE_SERVED_TTL_S. A script therefore cannot aim votes at detectids of its choosing: it
  can vote only on what the queue chose to show it. No server-side storage: a token costs
  one HMAC to make and one to check. Retries and undo re-send the same token.
* **Per-address limits.** New anonymous volunteers per client address (ANON_VOLUNTEER_RATE_IP)
  and anonymous votes from all of one address's sessions (VOTE_RATE_IP), on top of the
  per-volunteer limit, so a fresh session per vote gains nothing. Accounts are limited per
  volunteer, and their sign-ups per address (AUTH_RATE_SIGNUP).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core import signing
from django.utils.encoding import force_bytes
from django.utils.translation import gettext

from labelapp.errors import Forbidden
from labelapp.services.crowd.votes import vote_rate_rule
from labelapp.services.operations.ratelimit import (
    RateDecision,
    RateRule,
    hit_rate_limit,
    hit_rate_limits,
)

NONCE_KEY = "vote_nonce"
_SALT = "labelapp.vote.served"


class NotServed(Forbidden):
    """The vote's candidate was not served to this session (or its token expired)."""


def session_nonce(session: SessionBase) -> str:
    """The session's random nonce that served tokens are bound to (made on first use; it
    survives log-in, which keeps the session's data)."""
    nonce = session.get(NONCE_KEY)
    if not nonce:
        nonce = secrets.token_urlsafe(12)
        session[NONCE_KEY] = nonce
    return nonce


# Django's TimestampSigner (salt per nonce, SHA-256), written out: the same tokens, without
# the Signer objects, settings reads and byte conversions that made signing one token and
# checking another 0.2 ms of a vote's CPU (bench/bench_vote_view.py). tests/test_vote_guard.py
# checks that both make and accept each other's tokens.
def _hmac(nonce: str, value: str, secret) -> str:
    key = hashlib.sha256(f"{_SALT}:{nonce}signer".encode() + force_bytes(secret)).digest()
    mac = hmac.new(key, value.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def sign_served(*, nonce: str, detectid: int, now: float | None = None) -> str:
    """The token that says: candidate ``detectid`` was served to the session of ``nonce``."""
    ts = signing.b62_encode(int(time.time() if now is None else now))
    return f"{ts}:{_hmac(nonce, f'{detectid}:{ts}', settings.SECRET_KEY)}"


def _token_age_s(nonce: str, detectid: int, token: str) -> float:
    """Seconds since ``token`` was made for ``detectid`` and ``nonce``; BadSignature unless it
    was (SECRET_KEY, or one of SECRET_KEY_FALLBACKS while keys rotate)."""
    ts, _, mac = token.partition(":")
    value = f"{detectid}:{ts}"
    for secret in (settings.SECRET_KEY, *settings.SECRET_KEY_FALLBACKS):
        if hmac.compare_digest(mac.encode(), _hmac(nonce, value, secret).encode()):
            try:
                return time.time() - signing.b62_decode(ts)
            except ValueError:
                break
    raise signing.BadSignature("the token does not match")


def check_served(*, session: SessionBase, detectid: int, token) -> None:
    """Raise NotServed unless ``token`` is this session's valid, unexpired token for
    ``detectid``."""
    nonce = session.get(NONCE_KEY)
    if not nonce or not isinstance(token, str) or not token or len(token) > 200:
        raise NotServed(
            gettext(
                "candidate %(detectid)s was not shown to you: ask /api/next/ for a candidate "
                "and send its token with your answer"
            )
            % {"detectid": detectid}
        )
    try:
        expired = _token_age_s(nonce, detectid, token) > settings.VOTE_SERVED_TTL_S
    except signing.BadSignature:
        raise NotServed(
            gettext(
                "candidate %(detectid)s was not shown to you (the token does not match): ask "
                "/api/next/ for a candidate and send its token with your answer"
            )
            % {"detectid": detectid}
        ) from None
    if expired:
        raise NotServed(
            gettext("the token for candidate %(detectid)s has expired: reload the page")
            % {"detectid": detectid}
        )


def hit_new_volunteer_limit(*, client_ip: str) -> RateDecision:
    """Count one new anonymous volunteer for ``client_ip``."""
    limit, window_s = settings.ANON_VOLUNTEER_RATE_IP
    return hit_rate_limit(key=f"newvol:ip:{client_ip}", limit=limit, window_s=window_s)


def hit_vote_limits(
    *, client_ip: str | None, volunteer_pk: int | None
) -> tuple[RateDecision | None, RateDecision | None]:
    """Count one vote against the anonymous-vote limit of ``client_ip`` (all its sessions
    together; None: not an anonymous vote) and against the volunteer's own limit
    (``votes.vote_rate_rule``; None: a volunteer not created yet), in one Redis round trip.
    The two decisions, None where not counted."""
    rules = []
    if client_ip is not None:
        limit, window_s = settings.VOTE_RATE_IP
        rules.append(RateRule(f"vote:ip:{client_ip}", limit, window_s))
    if volunteer_pk is not None:
        rules.append(vote_rate_rule(volunteer_pk))
    decisions = hit_rate_limits(rules) if rules else []
    ip = decisions.pop(0) if client_ip is not None else None
    return ip, (decisions[0] if decisions else None)
