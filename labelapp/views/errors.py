"""Error handlers: JSON for the API (the classify page and scripts parse every answer), and
503 + Retry-After when a backing service is down.

Django calls ``handler500`` while the uncaught exception is still being handled, so
``sys.exc_info()`` tells a database or Redis outage (PostgreSQL restarting, Redis
unreachable: clients should retry shortly) from a bug. The classify page shows
``error.message`` and keeps the candidate on screen; sending the answer again is harmless
(a vote that was stored after all comes back 200, ``created: false``).
"""

from __future__ import annotations

import sys

from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views import defaults

from labelapp import errors

RETRY_AFTER_S = 5


def _service_unavailable(exc: BaseException | None) -> bool:
    """The database connection failed (server restarting, connection lost) or Redis did;
    not integrity or programming errors, which are bugs."""
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    try:
        from redis.exceptions import ConnectionError as RedisConnectionError
        from redis.exceptions import TimeoutError as RedisTimeoutError
    except ImportError:  # the demo without Redis
        return False
    return isinstance(exc, RedisConnectionError | RedisTimeoutError)


# The one place a service's kind of failure becomes an HTTP status.
HTTP_STATUS: dict[type[errors.PlatformError], int] = {
    errors.InvalidInput: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.RateLimited: 429,
    errors.Unavailable: 503,
}


def http_status(exc: errors.PlatformError) -> int:
    """The status of the most specific kind ``exc`` is (400 for a bare PlatformError)."""
    for cls in type(exc).__mro__:
        if cls in HTTP_STATUS:
            return HTTP_STATUS[cls]
    return 400


def platform_error_response(exc: errors.PlatformError) -> JsonResponse:
    return api_error(http_status(exc), exc.code, exc.message, **exc.extra)


def api_error(status: int, code: str, message: str, **extra) -> JsonResponse:
    """The API's one error shape, ``{"error": {"code", "message", ...}}``; an
    ``retry_after_s`` extra also sets the Retry-After header."""
    resp = JsonResponse({"error": {"code": code, "message": message, **extra}}, status=status)
    if "retry_after_s" in extra:
        resp["Retry-After"] = str(extra["retry_after_s"])
    return resp


def server_error(request: HttpRequest) -> HttpResponse:
    exc = sys.exc_info()[1]
    unavailable = _service_unavailable(exc)
    if not request.path.startswith("/api/"):
        response = defaults.server_error(request)
        if unavailable:
            response.status_code = 503
            response["Retry-After"] = str(RETRY_AFTER_S)
        return response
    if unavailable:
        return api_error(
            503,
            "unavailable",
            f"The site is briefly unavailable: try again in {RETRY_AFTER_S} seconds.",
            retry_after_s=RETRY_AFTER_S,
        )
    return api_error(500, "server_error", "Something went wrong on our side.")


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Requests Django refuses before any view runs (a form body over
    DATA_UPLOAD_MAX_MEMORY_SIZE, a bad Host header)."""
    if request.path.startswith("/api/"):
        if isinstance(exception, RequestDataTooBig):
            return api_error(400, "invalid", "the body is too large")
        return api_error(400, "bad_request", "the request could not be read")
    return defaults.bad_request(request, exception)


def page_not_found(request: HttpRequest, exception: Exception) -> HttpResponse:
    if request.path.startswith("/api/"):
        schema = (
            "/api/science/v1/openapi.json"
            if request.path.startswith("/api/science/")
            else "/api/openapi.json"
        )
        return api_error(404, "not_found", f"no API endpoint at {request.path}: see {schema}")
    return defaults.page_not_found(request, exception)
