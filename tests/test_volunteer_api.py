"""The JSON API the classify page uses: next, vote, undo, reason, CSRF, errors, schema."""

import json

import pytest
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

from labelapp.models import Candidate, Volunteer, Vote
from tests.factories_volunteers import (
    assert_matches_vote_schema,
    make_candidates,
    make_gold,
    with_token,
)

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_cache")]


@pytest.fixture
def browser():
    """A client that enforces CSRF like a real browser, holding the csrftoken cookie."""
    c = Client(enforce_csrf_checks=True)
    c.get("/api/next/")  # sets the csrftoken cookie
    return c


def post(client, url, body, csrf=True, served=True):
    """POST JSON; a vote carries its candidate's served token (as if /api/next/ had served
    it) unless ``served`` is False or the body has its own."""
    headers = {"X-CSRFToken": client.cookies["csrftoken"].value} if csrf else {}
    if served and url == "/api/votes/" and isinstance(body, dict):
        body = with_token(client, body)
    return client.post(url, json.dumps(body), content_type="application/json", headers=headers)


def test_next_returns_candidates_with_image_and_spectrum_urls(browser):
    cands = make_candidates(5)
    data = browser.get("/api/next/?count=2").json()
    assert len(data["candidates"]) == 2
    first = data["candidates"][0]
    assert first["cutout_url"] == f"/candidates/{first['detectid']}/cutout.png"
    assert first["spectrum_url"] == f"/api/candidates/{first['detectid']}/spectrum/"
    assert data["volunteer"] == {"n_votes": 0, "gold_rate": 0.4}
    held = ",".join(str(c.detectid) for c in cands[:4])
    assert browser.get(f"/api/next/?exclude={held}").json()["candidates"][0]["detectid"] == (
        cands[4].detectid
    )
    assert browser.get("/api/next/?exclude=abc").status_code == 400
    assert not Volunteer.objects.exists()  # looking creates nobody


def test_vote_answer_matches_its_schema(browser):
    cands = make_candidates(4)
    make_gold(cands[1], is_real=True)
    first = post(browser, "/api/votes/", {"detectid": cands[0].detectid, "answer": "no",
                                          "reason": "sky", "next": 2})  # fmt: skip
    assert first.status_code == 201 and len(first.json()["next"]) == 2
    assert_matches_vote_schema(first.json())
    gold = post(browser, "/api/votes/", {"detectid": cands[1].detectid, "answer": "yes",
                                         "next": 0})  # fmt: skip
    assert gold.status_code == 201 and gold.json()["feedback"]["correct"] is True
    assert "next" not in gold.json()
    assert_matches_vote_schema(gold.json())
    repeat = post(browser, "/api/votes/", {"detectid": cands[0].detectid, "answer": "no"})
    assert repeat.status_code == 200 and repeat.json()["created"] is False
    assert_matches_vote_schema(repeat.json())


def test_vote_records_once_and_returns_the_next(browser):
    cands = make_candidates(4)
    body = {"detectid": cands[0].detectid, "answer": "yes", "client": "keyboard",
            "response_ms": 1500, "exclude": [cands[1].detectid], "next": 1}  # fmt: skip
    r1 = post(browser, "/api/votes/", body)
    assert r1.status_code == 201, r1.content
    data = r1.json()
    assert data["created"] is True and data["feedback"] is None
    assert data["next"][0]["detectid"] not in (cands[0].detectid, cands[1].detectid)
    assert data["volunteer"]["n_votes"] == 1
    r2 = post(browser, "/api/votes/", body)  # network retry / second tab
    assert r2.status_code == 200 and r2.json()["created"] is False
    vote = Vote.objects.get()
    assert (vote.answer, vote.client, vote.response_ms) == ("yes", "keyboard", 1500)
    # the next candidate for this session excludes what it voted on
    ids = {c["detectid"] for c in browser.get("/api/next/?count=3").json()["candidates"]}
    assert cands[0].detectid not in ids


def test_every_write_needs_the_csrf_token(browser):
    c = make_candidates(1)[0]
    for url in ("/api/votes/", "/api/votes/undo/", "/api/votes/reason/"):
        resp = post(browser, url, {"detectid": c.detectid, "answer": "yes"}, csrf=False)
        assert resp.status_code == 403
        assert resp.json()["error"]["code"] == "csrf"
    assert not Vote.objects.exists()


def test_gold_vote_gets_teaching_feedback(browser):
    c = make_candidates(1)[0]
    make_gold(c, is_real=False, kind="cosmic")
    data = post(browser, "/api/votes/", {"detectid": c.detectid, "answer": "yes"}).json()
    assert data["feedback"]["correct"] is False and data["feedback"]["is_real"] is False
    assert "cosmic ray" in data["feedback"]["text"]


@pytest.mark.parametrize(
    "body, status, code",
    [
        ({"detectid": 12345, "answer": "yes"}, 404, "unknown_candidate"),
        ({"answer": "yes"}, 400, "invalid"),
        ({"detectid": "x", "answer": "yes"}, 400, "invalid"),
        ({"detectid": "CAND", "answer": "perhaps"}, 400, "invalid"),
        ({"detectid": "CAND", "answer": "yes", "response_ms": "slow"}, 400, "invalid"),
    ],
)
def test_bad_votes_get_clear_4xx(browser, body, status, code):
    c = make_candidates(1)[0]
    body = {k: (c.detectid if v == "CAND" else v) for k, v in body.items()}
    resp = post(browser, "/api/votes/", body)
    assert resp.status_code == status
    assert resp.json()["error"]["code"] == code and resp.json()["error"]["message"]


def test_retired_candidate_is_409(browser):
    c = make_candidates(1)[0]
    Candidate.objects.update(status="retired")
    resp = post(browser, "/api/votes/", {"detectid": c.detectid, "answer": "yes"})
    assert resp.status_code == 409 and "no longer in the queue" in resp.json()["error"]["message"]


def test_rate_limit_is_429_with_retry_after(browser, settings):
    settings.VOTE_RATE_LIMIT = 2
    cands = make_candidates(3)
    for c in cands[:2]:
        assert (
            post(browser, "/api/votes/", {"detectid": c.detectid, "answer": "no"}).status_code
            == 201
        )
    resp = post(browser, "/api/votes/", {"detectid": cands[2].detectid, "answer": "no"})
    assert resp.status_code == 429 and int(resp["Retry-After"]) > 0


def test_undo_and_reason(browser):
    a, b = make_candidates(2)
    post(browser, "/api/votes/", {"detectid": a.detectid, "answer": "no"})
    resp = post(browser, "/api/votes/reason/", {"detectid": a.detectid, "reason": "sky"})
    assert resp.status_code == 200 and Vote.objects.get().reason == "sky"
    assert (
        post(browser, "/api/votes/reason/", {"detectid": a.detectid, "reason": "x"}).status_code
        == 400
    )
    undone = post(browser, "/api/votes/undo/", {}).json()
    assert undone["undone"]["detectid"] == a.detectid and undone["undone"]["answer"] == "no"
    assert undone["volunteer"]["n_votes"] == 0 and not Vote.objects.exists()
    assert post(browser, "/api/votes/undo/", {}).status_code == 404


def test_undo_for_a_new_session_is_404():
    c = Client()
    assert c.post("/api/votes/undo/").status_code == 404


def test_spectrum_endpoint(client, tmp_path):
    from labelapp.services.survey.ingest import ingest_survey
    from mlcore.survey_io import write_survey
    from tests.factories import make_survey

    ingest_survey(path=write_survey(tmp_path / "s.fits", make_survey(3)))
    c = Candidate.objects.first()
    fig = client.get(f"/api/candidates/{c.detectid}/spectrum/").json()
    assert fig["data"][2]["name"] == "spectrum" and len(fig["data"][2]["x"]) > 50
    assert client.get("/api/candidates/1/spectrum/").status_code == 404


def _api_routes():
    def walk(patterns, prefix=""):
        for p in patterns:
            if isinstance(p, URLResolver):
                yield from walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                yield prefix + str(p.pattern)

    # the science API (api/science/v1/) has its own schema (tests/test_science_api.py)
    return {
        r
        for r in walk(get_resolver().url_patterns)
        if r.startswith("api/") and "<" not in r and not r.startswith("api/science/")
    }


def test_openapi_schema_documents_every_api_route(client):
    schema = client.get("/api/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    documented = {p.lstrip("/") for p in schema["paths"]}
    assert _api_routes() - {"api/", "api/openapi.json"} <= documented
    assert "api/candidates/{detectid}/spectrum/" in documented
    page = client.get("/api/").content.decode()  # the schema as a page: every operation
    assert all(f"{method.upper()} {path}" in page for path, item in schema["paths"].items()
               for method in item)  # fmt: skip
    assert "one of &quot;yes&quot;, &quot;no&quot;, &quot;unsure&quot;" in page
    # the limits the API enforces are the ones it publishes
    vote = schema["components"]["schemas"]["VoteRequest"]["properties"]
    exclude, response_ms = (
        next(s for s in vote[k]["anyOf"] if s["type"] != "null") for k in ("exclude", "response_ms")
    )  # optional fields: the value, or null (= not given)
    assert exclude["maxItems"] == 10 and response_ms["maximum"] == 86_400_000


def test_limits_in_the_schema_are_enforced(browser):
    cands = make_candidates(12)
    ids = [c.detectid for c in cands]
    r = post(browser, "/api/votes/", {"detectid": ids[0], "answer": "yes", "exclude": ids[1:]})
    assert r.status_code == 400 and "at most 10" in r.json()["error"]["message"]
    r = post(browser, "/api/votes/", {"detectid": ids[0], "answer": "yes",
                                      "response_ms": 86_400_001})  # fmt: skip
    assert r.status_code == 400 and "response_ms" in r.json()["error"]["message"]
    ok = {"detectid": ids[0], "answer": "yes", "exclude": ids[1:11], "response_ms": 86_400_000}
    assert post(browser, "/api/votes/", ok).status_code == 201


def test_candidate_urls_follow_the_script_prefix():
    from django.urls import set_script_prefix

    from labelapp.views.api import candidate_payload

    try:
        set_script_prefix("/dex/")
        payload = candidate_payload({"detectid": 42, "wave": 4000.04}, "n")
    finally:
        set_script_prefix("/")
    assert payload["cutout_url"] == "/dex/candidates/42/cutout.png"
    assert payload["spectrum_url"] == "/dex/api/candidates/42/spectrum/"
    assert candidate_payload({"detectid": 7, "wave": 1.0}, "n")["cutout_url"] == (
        "/candidates/7/cutout.png"
    )


def test_errors_django_answers_itself_are_json_on_the_api(browser, settings):
    """Wrong method, unknown path and an unreadable body: the same JSON error shape as every
    other API answer, so the page's error handling never meets HTML."""
    token = {"X-CSRFToken": browser.cookies["csrftoken"].value}
    r = browser.put("/api/votes/", headers=token)
    assert r.status_code == 405 and r["Allow"] == "POST"
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert "PUT is not allowed" in r.json()["error"]["message"]
    r = browser.post("/api/next/", headers=token)
    assert r.status_code == 405 and r["Allow"] == "GET, HEAD"

    r = browser.get("/api/no-such-thing/")
    assert r.status_code == 404 and r["Content-Type"] == "application/json"
    assert r.json()["error"] == {
        "code": "not_found",
        "message": "no API endpoint at /api/no-such-thing/: see /api/openapi.json",
    }
    assert "<html" in browser.get("/no-such-page/").content.decode().lower()  # pages stay HTML

    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    make_candidates(1)
    r = browser.post(
        "/api/votes/", {"detectid": "1", "answer": "yes", "pad": "x" * 5000}, headers=token
    )
    assert r.status_code == 400 and r.json()["error"]["message"] == "the body is too large"
    assert not Vote.objects.exists()


@pytest.mark.parametrize(
    "raw, message",
    [
        (b'{"detectid": NaN, "answer": "yes"}', "NaN is not a JSON number"),
        (b'{"detectid": 5000000, "answer": "yes", "next": Infinity}', "Infinity is not a JSON"),
        (b"[" * 50_000, "nested deeper than 20 levels"),
        (b'{"a":' * 50_000, "nested deeper than 20 levels"),
        (b'{"detectid": true, "answer": "yes"}', "detectid must be an integer, not bool True"),
        (b'{"detectid": 1.5, "answer": "yes"}', "detectid must be an integer, not float 1.5"),
        (b'{"detectid": 5000000.0, "answer": "yes"}', "detectid must be an integer, not float"),
        (b'{"detectid": 99999999999999999999, "answer": "yes"}', "detectid must be between"),
        (b'{"detectid": 5000000, "answer": "yes", "exclude": [1, false]}', "exclude[1] must be"),
        (b'{"detectid": 5000000, "answer": "maybe"}', "answer must be one of yes, no, unsure"),
        (b"[1, 2]", "the body must be a JSON object"),
        (b"", "the body is empty"),
    ],
)
def test_the_strict_parser_refuses_with_a_clear_message(browser, raw, message):
    """ninja's parser is the strict reader (views/json_body.py) and the integer fields keep
    its rules: these are 400 with a message, never a 500 and never a vote."""
    make_candidates(1)
    token = {"X-CSRFToken": browser.cookies["csrftoken"].value}
    r = browser.post("/api/votes/", raw, content_type="application/json", headers=token)
    assert r.status_code == 400, r.content
    assert r.json()["error"]["code"] == "invalid" and message in r.json()["error"]["message"]
    assert not Vote.objects.exists()


def test_the_schema_is_generated_and_says_how_writes_authenticate(client):
    schema = client.get("/api/openapi.json").json()
    assert schema["components"]["securitySchemes"]["CsrfToken"] == {
        "type": "apiKey", "in": "header", "name": "X-CSRFToken"
    }  # fmt: skip
    for path in ("/api/votes/", "/api/votes/undo/", "/api/votes/reason/"):
        assert schema["paths"][path]["post"]["security"] == [{"CsrfToken": []}]
    assert "security" not in schema["paths"]["/api/next/"]["get"]
    # the integers the API takes are 64-bit, as the strict reader enforces
    detectid = schema["components"]["schemas"]["VoteRequest"]["properties"]["detectid"]
    assert (detectid["minimum"], detectid["maximum"]) == (-(2**63), 2**63 - 1)


@pytest.mark.parametrize("debug", [False, True])
def test_bodies_django_cannot_read_are_a_json_400_with_debug_on_too(browser, settings, debug):
    """Too many form fields, a multipart body without boundary: Django refuses to read them
    while the CSRF check reads the form; ninja would answer a 500 traceback under DEBUG."""
    settings.DEBUG = debug
    token = {"X-CSRFToken": browser.cookies["csrftoken"].value}
    for raw, ctype in [
        (b"a=1&" * 2000, "application/x-www-form-urlencoded"),
        (b"junk", "multipart/form-data"),
    ]:
        r = browser.generic("POST", "/api/votes/", raw, content_type=ctype, headers=token)
        assert r.status_code == 400 and r.json()["error"]["code"] == "bad_request", r.content
