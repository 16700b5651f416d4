"""One limiter for every log-in form (the volunteer log-in, the admin's, any later one).

* ``login_refusal``: asked before a password is checked. Refuses while the username is
  locked (AUTH_LOGIN_LOCKOUT failures in its window) or over its attempts per window
  (AUTH_RATE_LOGIN_USER). Per client address, AuthRateLimitMiddleware limits POSTs to every
  URL named ``login`` (the admin's is too).
* ``note_login_failure``: counts a failure; called from Django's ``user_login_failed``
  signal, so every form that authenticates counts, whatever view it is.
* The authentication backend (``labelapp.auth_backends.LockoutModelBackend``) refuses a
  locked username inside ``authenticate`` itself: even a form that forgot to ask
  ``login_refusal`` cannot log a locked account in.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.conf import settings
from django.utils.translation import gettext, ngettext

from labelapp.services.operations import ratelimit

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoginRefusal:
    message: str
    retry_after_s: int


def _minutes(seconds: int) -> str:
    minutes = max(1, round(seconds / 60))
    return ngettext("%(n)d minute", "%(n)d minutes", minutes) % {"n": minutes}


def login_refusal(*, username: str) -> LoginRefusal | None:
    """Why a log-in attempt for ``username`` is refused before its password is checked
    (counts the attempt against the per-username limit), or None."""
    username = str(username)[:150]
    remaining = ratelimit.login_lockout_remaining(username=username)
    if remaining:
        return LoginRefusal(
            gettext(
                "Too many failed log-ins for this username. Please try again in %(wait)s, or "
                "reset your password."
            )
            % {"wait": _minutes(remaining)},
            remaining,
        )
    limit, window_s = settings.AUTH_RATE_LOGIN_USER
    decision = ratelimit.hit_rate_limit(
        key=f"auth:login:user:{ratelimit.username_key(username)}", limit=limit, window_s=window_s
    )
    if not decision.allowed:
        return LoginRefusal(
            gettext("Too many log-in attempts for this username. Please try again in %(wait)s.")
            % {"wait": _minutes(decision.retry_after_s)},
            decision.retry_after_s,
        )
    return None


def is_locked(*, username: str) -> bool:
    return bool(ratelimit.login_lockout_remaining(username=str(username)[:150]))


def note_login_failure(*, username: str) -> int:
    """Count one failed log-in (not while already locked: a refused attempt does not test
    the password, so it is no new failure). Returns the lock's seconds, 0 when not locked."""
    username = str(username)[:150]
    if not username or is_locked(username=username):
        return 0
    max_failures, window_s = settings.AUTH_LOGIN_LOCKOUT
    locked_s = ratelimit.record_login_failure(
        username=username, max_failures=max_failures, window_s=window_s
    )
    if locked_s:
        log.warning("log-in locked for %d s after failures (username %r)", locked_s, username)
    return locked_s
