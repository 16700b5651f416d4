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

import secrets

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core import signing
from django.utils.translation import gettext

from labelapp.errors import Forbidden
from labelapp.services.operations.ratelimit import RateDecision, hit_rate_limit

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


def _signer(nonce: str) -> signing.TimestampSigner:
    return signing.TimestampSigner(salt=f"{_SALT}:{nonce}")


def sign_served(*, nonce: str, detectid: int) -> str:
    """The token that says: candidate ``detectid`` was served to the session of ``nonce``."""
    return _signer(nonce).sign(str(detectid)).split(":", 1)[1]


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
        _signer(nonce).unsign(f"{detectid}:{token}", max_age=settings.VOTE_SERVED_TTL_S)
    except signing.SignatureExpired:
        raise NotServed(
            gettext("the token for candidate %(detectid)s has expired: reload the page")
            % {"detectid": detectid}
        ) from None
    except signing.BadSignature:
        raise NotServed(
            gettext(
                "candidate %(detectid)s was not shown to you (the token does not match): ask "
                "/api/next/ for a candidate and send its token with your answer"
            )
            % {"detectid": detectid}
        ) from None


def hit_new_volunteer_limit(*, client_ip: str) -> RateDecision:
    """Count one new anonymous volunteer for ``client_ip``."""
    limit, window_s = settings.ANON_VOLUNTEER_RATE_IP
    return hit_rate_limit(key=f"newvol:ip:{client_ip}", limit=limit, window_s=window_s)


def hit_ip_vote_limit(*, client_ip: str) -> RateDecision:
    """Count one vote for ``client_ip`` (all its sessions together)."""
    limit, window_s = settings.VOTE_RATE_IP
    return hit_rate_limit(key=f"vote:ip:{client_ip}", limit=limit, window_s=window_s)
