"""Request ids for the logs, and per-IP rate limits on the account forms."""

from __future__ import annotations

import logging
import re
import uuid
from functools import cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.template import engines

from labelapp.logging_context import bind_log_context, reset_log_context
from labelapp.services.operations.ratelimit import hit_rate_limit

log = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# An incoming id (from a proxy or load balancer) is kept only when it is a short, plain token.
SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def request_id_from(header: str | None) -> str:
    if header and SAFE_REQUEST_ID.fullmatch(header):
        return header
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Gives each request an id (the incoming X-Request-ID when safe, else a new one), puts
    it on every log record written while the request runs, and returns it in the response's
    X-Request-ID header. ``request.request_id`` holds it for views."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        request.request_id = request_id_from(request.headers.get(REQUEST_ID_HEADER))
        token = bind_log_context(request_id=request.request_id)
        try:
            response = self.get_response(request)
        finally:
            reset_log_context(token)
        response[REQUEST_ID_HEADER] = request.request_id
        return response


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or behind a proxy (DJANGO_BEHIND_PROXY) the last
    X-Forwarded-For entry, the one our proxy appended (earlier ones come from the client)."""
    if getattr(settings, "BEHIND_PROXY", False):
        forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
        last = forwarded.rsplit(",", 1)[-1].strip()
        if last:
            return last[:64]
    return request.META.get("REMOTE_ADDR", "") or "unknown"


# url name -> (setting with COUNT/SECONDS, what the person was doing)
AUTH_RATE_RULES = {
    "signup": ("AUTH_RATE_SIGNUP", "sign-ups"),
    "login": ("AUTH_RATE_LOGIN_IP", "log-in attempts"),
    "password_reset": ("AUTH_RATE_PASSWORD_RESET", "password-reset requests"),
}


@cache
def _refused_page():
    return engines["django"].from_string(
        '{% extends "base.html" %}{% block title %}Please wait · Dark Energy Explorers'
        '{% endblock %}{% block content %}<section class="card form-card"><h1>Please wait</h1>'
        '<p class="errorlist">{{ message }}</p><p><a href="{{ back }}">Back</a></p>'
        "</section>{% endblock %}"
    )


def refusal_message(what: str, retry_after_s: int) -> str:
    minutes = max(1, round(retry_after_s / 60))
    unit = "minute" if minutes == 1 else "minutes"
    return f"Too many {what} from your network. Please try again in {minutes} {unit}."


class AuthRateLimitMiddleware:
    """Per-client-IP limits on POSTs to sign-up, log-in and password reset (429 with
    Retry-After once over). Log-in is also limited per username, in the log-in view."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(self, request: HttpRequest, view_func, view_args, view_kwargs):
        if request.method != "POST" or request.resolver_match is None:
            return None
        rule = AUTH_RATE_RULES.get(request.resolver_match.url_name or "")
        if rule is None:
            return None
        setting, what = rule
        limit, window_s = getattr(settings, setting)
        ip = client_ip(request)
        decision = hit_rate_limit(
            key=f"auth:{request.resolver_match.url_name}:ip:{ip}", limit=limit, window_s=window_s
        )
        if decision.allowed:
            return None
        log.warning("rate limited %s from %s (%d in %d s)", what, ip, decision.count, window_s)
        return refused_login_response(
            request, refusal_message(what, decision.retry_after_s), decision.retry_after_s
        )


def refused_login_response(request: HttpRequest, message: str, retry_after_s: int) -> HttpResponse:
    """The 429 page of a refused account-form POST (with Retry-After)."""
    html = _refused_page().render({"message": message, "back": request.path}, request)
    response = HttpResponse(html, status=429)
    response["Retry-After"] = str(retry_after_s)
    return response


# --- Content-Security-Policy and Permissions-Policy on every response ---------------------

# Scripts only from this site (static/, plotly served locally): no inline script, no eval,
# no inline event handler. Styles may be inline (plotly sets element styles and inserts a
# <style> of its own); images also from data:/blob: (plotly's PNG download, cutouts are
# same-origin). Nothing may frame the site, and forms post only to it.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "connect-src 'self'",
        "worker-src 'self' blob:",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
PERMISSIONS_POLICY = ", ".join(
    f"{feature}=()"
    for feature in (
        "accelerometer", "autoplay", "camera", "display-capture", "geolocation", "gyroscope",
        "magnetometer", "microphone", "midi", "payment", "publickey-credentials-get",
        "screen-wake-lock", "serial", "usb", "xr-spatial-tracking",
    )
)  # fmt: skip


class SecurityHeadersMiddleware:
    """Content-Security-Policy and Permissions-Policy on every response (pages, API, static
    files, errors). CSP_REPORT_ONLY=1 sends the policy as Content-Security-Policy-Report-Only
    (to try a change on a live site); the default enforces it."""

    def __init__(self, get_response):
        self.get_response = get_response
        self.csp_header = (
            "Content-Security-Policy-Report-Only"
            if getattr(settings, "CSP_REPORT_ONLY", False)
            else "Content-Security-Policy"
        )

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        response.setdefault(self.csp_header, CONTENT_SECURITY_POLICY)
        response.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        return response
