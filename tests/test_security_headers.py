"""Content-Security-Policy and Permissions-Policy on every response (issue #24): pages,
the JSON API, redirects, errors, static files, the admin."""

from __future__ import annotations

import pytest

from labelapp.middleware import CONTENT_SECURITY_POLICY, PERMISSIONS_POLICY

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_cache")]


@pytest.mark.parametrize(
    "path, status",
    [
        ("/", 200),
        ("/classify/", 302),  # to the tutorial
        ("/tutorial/", 200),
        ("/api/next/", 200),
        ("/api/openapi.json", 200),
        ("/no-such-page/", 404),
        ("/admin/login/", 200),
        ("/console/", 302),  # to the log-in
        ("/healthz", None),
        ("/static/js/classify.js", None),  # WhiteNoise sits after the headers middleware
    ],
)
def test_every_response_carries_both_policies(client, path, status):
    resp = client.get(path)
    if status is not None:
        assert resp.status_code == status, path
    assert resp["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert resp["Permissions-Policy"] == PERMISSIONS_POLICY


def test_the_policy_is_strict_about_scripts():
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["script-src"] == "'self'"  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["object-src"] == "'none'" and directives["frame-ancestors"] == "'none'"
    assert directives["default-src"] == "'self'"
    assert "camera=()" in PERMISSIONS_POLICY and "geolocation=()" in PERMISSIONS_POLICY


def test_no_template_has_an_inline_script_or_handler():
    """What the policy would block: a <script> with code, or an on...= attribute."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "templates"
    inline = re.compile(r"<script(?![^>]*\b(src=|type=\"application/json\"))[^>]*>", re.I)
    handler = re.compile(r"<[^>]+\son[a-z]+\s*=", re.I)
    for path in root.rglob("*.html"):
        text = path.read_text()
        assert not inline.search(text), path
        assert not handler.search(text), path


def test_report_only_mode(client, settings):
    from labelapp.middleware import SecurityHeadersMiddleware

    settings.CSP_REPORT_ONLY = True
    mw = SecurityHeadersMiddleware(lambda request: __import__("django").http.HttpResponse())
    resp = mw(None)
    assert resp["Content-Security-Policy-Report-Only"] == CONTENT_SECURITY_POLICY
    assert "Content-Security-Policy" not in resp
