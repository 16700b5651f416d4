"""One error tree for the platform's services. A service raises the kind of failure it is;
entry points decide what that means to their caller: views map kinds to HTTP statuses in one
place (``labelapp.views.errors.http_status``), commands turn them into ``CommandError``.

``code`` is a stable machine-readable name for API clients; ``message`` says what is wrong
and what to do; ``extra`` carries structured details (e.g. ``retry_after_s``).
"""

from __future__ import annotations


class PlatformError(Exception):
    """Root of every error the platform raises on purpose."""

    code = "invalid"

    def __init__(self, message: str, **extra):
        super().__init__(message)
        self.message = message
        self.extra = extra


class InvalidInput(PlatformError):
    """The request or file is malformed or out of range."""


class Unauthenticated(PlatformError):
    """No credentials, or credentials that do not work (unknown or revoked API token)."""

    code = "unauthenticated"


class Forbidden(PlatformError):
    """Not allowed for this caller (e.g. a vote on a candidate never served to it)."""

    code = "forbidden"


class NotFound(PlatformError):
    code = "not_found"


class Conflict(PlatformError):
    """Valid, but the current state does not allow it (retired, already answered...)."""

    code = "conflict"


class RateLimited(PlatformError):
    code = "rate_limited"


class Unavailable(PlatformError):
    """A backing service or a prerequisite (a live model, workers) is not there."""

    code = "unavailable"


class UnknownCandidate(NotFound):
    code = "unknown_candidate"
