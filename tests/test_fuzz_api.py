"""Fuzz the volunteer JSON API with hypothesis: schema-shaped and hostile requests.

Requests are generated from the OpenAPI schema the site serves (django-ninja's, built from
labelapp/views/api.py: the vote and reason bodies, the next-candidate query, the spectrum
path) and from hostile
variants of them: wrong types, missing and extra fields, huge and unicode strings, nested
junk, NaN-like strings, numbers beyond 64 bits, bodies that are not JSON objects or not
JSON at all, other content types, missing or wrong CSRF tokens. Two volunteers (two
browser sessions with their CSRF cookie, as the page has) send them. After every request:

- no 5xx;
- every 4xx is ``{"error": {"code", "message"}}`` with a message;
- no vote is stored unless the response said so (201, ``created: true``), a repeat (200,
  ``created: false``) is a vote already recorded, an undo (200) removed exactly that vote;
- the votes in the database are exactly the (volunteer, candidate) pairs the responses
  recorded and not undone, and each volunteer's ``n_votes`` counter agrees.

``ApiFuzzer`` and ``api_requests`` are shared with ``bench/bench_bad_input.py``, which runs
many more examples and prints the counts.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.test import Client
from django.test.client import BOUNDARY, MULTIPART_CONTENT, encode_multipart
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labelapp.models import Candidate, Volunteer, Vote
from labelapp.services.survey.ingest import ingest_survey
from labelapp.views.api import api as volunteer_api
from mlcore.survey_io import write_survey
from tests.factories import make_survey
from tests.factories_volunteers import make_candidates, make_gold, served_token

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("own_cache")]

INT64_MAX = 2**63 - 1
NAN_LIKE = [
    "NaN",
    "nan",
    "-nan",
    "Infinity",
    "-Infinity",
    "inf",
    "1e400",
    "-1e400",
    "1e18",
    "0x10",
    "1_000",
    " 12 ",
    "+5",
    "-0",
    "١٢٣",
    "",
    " ",
    "null",
    "true",
    "[]",
    "{}",
    "9" * 30,
    "9" * 5000,
    "\x00",
    "\ud7ff",
    "' OR 1=1 --",
    "<script>x</script>",
]
CONTENT_TYPES = [
    "text/plain",
    "application/xml",
    "application/json; charset=utf-16",
    "application/x-www-form-urlencoded",
    "multipart",
    "application/octet-stream",
    "",
]


@dataclass(frozen=True)
class Req:
    kind: str  # the fuzz category, for the counts
    method: str
    url: str
    body: bytes = b""
    content_type: str = "application/json"
    who: int = 0  # which volunteer (browser session)
    csrf: str = "valid"  # "valid" | "missing" | "wrong"


# --- strategies ---------------------------------------------------------------------------


def _huge_text() -> st.SearchStrategy[str]:
    return st.builds(
        lambda ch, n: ch * n, st.characters(exclude_categories=("Cs",)), st.integers(1000, 200_000)
    )


def junk_values() -> st.SearchStrategy:
    """Any JSON value, weighted towards what breaks parsers: floats that are NaN/inf,
    integers beyond 64 bits, NaN-like strings, huge and unicode strings, nested junk."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.integers(min_value=-(2**200), max_value=2**200),
        st.sampled_from([2**63, INT64_MAX, -(2**63), -(2**63) - 1, 10**30, -1, 0]),
        st.floats(),  # NaN and +-inf: json.dumps writes NaN / Infinity, json.loads reads them
        st.sampled_from([math.inf, -math.inf, math.nan, 1e308, -0.0, 0.5, 5e18]),
        st.text(max_size=40),
        st.sampled_from(NAN_LIKE),
        _huge_text(),
    )
    nested = st.recursive(
        scalars,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
        ),
        max_leaves=8,
    )
    return scalars | nested


def _resolve(schema: dict, components: dict) -> dict:
    while "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    return schema


def from_schema(schema: dict, components: dict, overrides: dict, name: str = ""):
    """A strategy for values valid against ``schema`` (the subset of JSON Schema the API
    schema uses); ``overrides`` replaces the strategy of named properties."""
    if name in overrides:
        return overrides[name]
    schema = _resolve(schema, components)
    if "anyOf" in schema:  # optional fields: a value, or null (= not given)
        return st.one_of(*(from_schema(s, components, overrides, name) for s in schema["anyOf"]))
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    kind = schema.get("type")
    if kind == "null":
        return st.none()
    if kind == "integer":
        return st.integers(min_value=schema.get("minimum"), max_value=schema.get("maximum"))
    if kind == "string":
        return st.text(max_size=20)
    if kind == "array":
        return st.lists(from_schema(schema["items"], components, overrides), max_size=12)
    if kind == "object":
        props = schema.get("properties", {})
        required = set(schema.get("required", ()))
        return st.fixed_dictionaries(
            {
                k: from_schema(v, components, overrides, k)
                for k, v in props.items()
                if k in required
            },
            optional={
                k: from_schema(v, components, overrides, k)
                for k, v in props.items()
                if k not in required
            },
        )
    raise ValueError(f"schema construct not covered by the fuzzer: {schema}")


def _operations(detectid: st.SearchStrategy[int], known: st.SearchStrategy[int]) -> dict:
    """operationId -> (method, path, body strategy or None, query strategy or None), from
    the served schema; ``detectid`` draws the bodies' detectid, ``known`` existing ones."""
    schema = volunteer_api.get_openapi_schema()  # what /api/openapi.json serves
    components = schema["components"]["schemas"]
    # exclude: known detectids (at most 10, the maxItems the schema publishes)
    # token: the harness puts in the one the candidate was served with (see _as_served)
    overrides = {
        "detectid": detectid,
        "exclude": st.lists(known, max_size=10),
        "token": st.just(""),
    }
    ops = {}
    for path, item in schema["paths"].items():
        for method, op in item.items():
            body = query = None
            content = op.get("requestBody", {}).get("content", {}).get("application/json")
            if content:
                body = from_schema(content["schema"], components, overrides)
            params = [p for p in op.get("parameters", []) if p["in"] == "query"]
            if params:
                query = st.fixed_dictionaries(
                    {},
                    optional={p["name"]: from_schema(p["schema"], components, {}) for p in params},
                )
            if path.startswith("/api/"):
                ops[op["operationId"]] = (method.upper(), path, body, query)
    return ops


def _json(value) -> bytes:
    return json.dumps(value).encode()


def api_requests(detectids: list[int], *, hostile: bool, big: bool = False):
    """Lists of requests built from the schema (``hostile=False``: one request, or a vote
    followed by a reason, a repeat or an undo for the same candidate) or hostile variants."""
    known = st.sampled_from(detectids)
    # 4 in 5 detectids name a candidate, the rest any 64-bit id (mostly unknown)
    any_id = st.integers(min_value=0, max_value=INT64_MAX)
    ops = _operations(st.integers(0, 4).flatmap(lambda k: known if k else any_id), known)
    who = st.integers(0, 1)

    @st.composite
    def one(draw, op_id: str, ops: dict, who: int):
        method, path, body, query = ops[op_id]
        url = path.replace("{detectid}", str(draw(known | st.integers(0, INT64_MAX))))
        if query is not None:
            url += "?" + urlencode(_query_strings(draw(query), draw(st.lists(known, max_size=4))))
        data = _json(draw(body)) if body is not None else b""
        return Req(f"schema:{op_id}", method, url, data, who=who)

    @st.composite
    def valid(draw):
        op_id = draw(st.sampled_from(["submitVote", "submitVote", *sorted(ops)]))
        first = draw(one(op_id, ops, draw(who)))
        reqs = [first]
        if op_id == "submitVote":  # a flow on the same candidate, as the page makes them
            same = _operations(st.just(json.loads(first.body)["detectid"]), known)
            follow = st.sampled_from(
                ["setVoteReason", "setVoteReason", "submitVote", "undoLastVote"]
            )
            for op in draw(st.lists(follow, max_size=3)):
                reqs.append(draw(one(op, same, first.who)))
        return reqs

    if not hostile:
        return valid()

    writes = {k: v for k, v in ops.items() if v[0] == "POST"}

    @st.composite
    def valid_body(draw):
        op_id = draw(st.sampled_from(sorted(k for k, v in writes.items() if v[2] is not None)))
        _, path, body, _ = writes[op_id]
        return path, dict(draw(body))

    @st.composite
    def wrong_field(draw):
        path, body = draw(valid_body())
        key = draw(st.sampled_from(["detectid", *sorted(body)]))  # detectid: the key field
        body[key] = draw(junk_values())
        return Req("hostile:wrong-type", "POST", path, _json(body), who=draw(who))

    @st.composite
    def missing_field(draw):
        path, body = draw(valid_body())
        body.pop(draw(st.sampled_from(sorted(body))))
        return Req("hostile:missing-field", "POST", path, _json(body), who=draw(who))

    @st.composite
    def extra_fields(draw):
        path, body = draw(valid_body())
        body.update(
            draw(st.dictionaries(st.text(max_size=12), junk_values(), min_size=1, max_size=5))
        )
        return Req("hostile:extra-fields", "POST", path, _json(body), who=draw(who))

    @st.composite
    def not_an_object(draw):
        path = draw(st.sampled_from(sorted(v[1] for v in writes.values())))
        value = draw(junk_values().filter(lambda v: not isinstance(v, dict)))
        return Req("hostile:not-an-object", "POST", path, _json(value), who=draw(who))

    @st.composite
    def not_json(draw):
        path = draw(st.sampled_from(sorted(v[1] for v in writes.values())))
        raw = draw(
            st.binary(max_size=300)
            | st.text(max_size=200).map(str.encode)
            | st.sampled_from(
                [
                    b"{",
                    b'{"detectid": ',
                    b"\xff\xfe{",
                    b"NaN",
                    b"{'a': 1}",
                    b'{"detectid": 1,}',
                    b"\x00" * 64,
                ]
            )
        )
        return Req("hostile:not-json", "POST", path, raw, who=draw(who))

    @st.composite
    def deep_json(draw):
        path = draw(st.sampled_from(sorted(v[1] for v in writes.values())))
        depth = draw(st.sampled_from([100, 1000, 100_000, 500_000]))
        opener = draw(st.sampled_from(["[", '{"a":']))
        return Req("hostile:deep-json", "POST", path, (opener * depth).encode(), who=draw(who))

    @st.composite
    def content_type(draw):
        path, body = draw(valid_body())
        ctype = draw(st.sampled_from(CONTENT_TYPES))
        if ctype == "multipart":
            flat = {
                k: json.dumps(v) if isinstance(v, list | dict) else str(v) for k, v in body.items()
            }
            raw = encode_multipart(BOUNDARY, flat)
            return Req("hostile:content-type", "POST", path, raw, MULTIPART_CONTENT, draw(who))
        if ctype == "application/x-www-form-urlencoded":
            raw = urlencode({k: str(v) for k, v in body.items()}).encode()
        elif "utf-16" in ctype:
            raw = json.dumps(body).encode("utf-16")
        else:
            raw = _json(body)
        return Req("hostile:content-type", "POST", path, raw, ctype, draw(who))

    @st.composite
    def bad_csrf(draw):
        path, body = draw(valid_body())
        return Req(
            "hostile:csrf",
            "POST",
            path,
            _json(body),
            who=draw(who),
            csrf=draw(st.sampled_from(["missing", "wrong"])),
        )

    query_junk = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=60)

    @st.composite
    def hostile_query(draw):
        params = draw(
            st.dictionaries(
                st.sampled_from(["count", "exclude", "other"]),
                query_junk | st.sampled_from(NAN_LIKE[:-3]) | st.integers().map(str),
                max_size=3,
            )
        )
        return Req("hostile:query", "GET", "/api/next/?" + urlencode(params), who=draw(who))

    @st.composite
    def hostile_path(draw):
        detectid = draw(st.integers(min_value=0, max_value=10**40))
        return Req("hostile:path", "GET", f"/api/candidates/{detectid}/spectrum/", who=draw(who))

    kinds = [
        wrong_field(),
        missing_field(),
        extra_fields(),
        not_an_object(),
        not_json(),
        deep_json(),
        content_type(),
        bad_csrf(),
        hostile_query(),
        hostile_path(),
    ]
    if big:
        kinds.append(huge_body())
    return st.one_of(*kinds).map(lambda req: [req])


@st.composite
def huge_body(draw):
    """A JSON body over Django's DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB)."""
    size = draw(st.sampled_from([3_000_000, 6_000_000]))
    body = {"detectid": 1, "answer": "yes", "client": "x" * size}
    return Req("hostile:huge-body", "POST", "/api/votes/", _json(body), who=draw(st.integers(0, 1)))


def _query_strings(query: dict, exclude: list[int]) -> dict:
    out = {k: str(v) for k, v in query.items()}
    if "exclude" in out:
        out["exclude"] = ",".join(str(i) for i in exclude)
    return out


# --- the harness --------------------------------------------------------------------------


def _as_served(client, body: bytes) -> bytes:
    """A schema-shaped vote with the served token of its detectid (as /api/next/ would have
    handed it to this session); hostile requests keep whatever token they were drawn with."""
    data = json.loads(body)
    if isinstance(data, dict) and type(data.get("detectid")) is int:
        data["token"] = served_token(client, data["detectid"])
    return _json(data)


def browser() -> Client:
    """A client that enforces CSRF like a browser, holding the csrftoken cookie as the page
    does after GET /api/next/; exceptions become 500 responses (counted, not raised)."""
    c = Client(enforce_csrf_checks=True, raise_request_exception=False)
    c.get("/api/next/")
    return c


class ApiFuzzer:
    """Sends requests as two volunteers, checks the properties after each, keeps counts.

    ``recorded[who]``: the detectids the API told volunteer ``who`` it recorded (201) and
    did not undo since. ``failures``: one line per broken property.
    """

    def __init__(self) -> None:
        self.clients = [browser(), browser()]
        self.recorded: list[set[int]] = [set(), set()]
        self.counts: Counter[tuple[str, str]] = Counter()  # (kind, status class)
        self.failures: list[str] = []
        self.broken: Counter[str] = Counter()
        self.created = self.repeats = self.undone = 0

    def _fail(self, req: Req, status: int, what: str, *, kind: str) -> None:
        """Record a broken property; ``kind``: 5xx, 4xx-not-json, votes or counter."""
        self.broken[kind] += 1
        self.failures.append(
            f"[{kind}] {req.kind} {req.method} {req.url[:80]} {req.body[:80]!r} -> {status}: {what}"
        )

    def send(self, req: Req) -> int:
        c = self.clients[req.who]
        headers = {}
        if req.csrf == "valid":
            headers["X-CSRFToken"] = c.cookies["csrftoken"].value
        elif req.csrf == "wrong":
            headers["X-CSRFToken"] = "x" * 32
        body = req.body
        if req.url == "/api/votes/" and req.kind.startswith("schema:"):
            body = _as_served(c, body)  # the page sends the token its candidate came with
        if req.method == "GET":
            resp = c.get(req.url)
        else:
            resp = c.generic("POST", req.url, body, content_type=req.content_type, headers=headers)
        status = resp.status_code
        self.counts[(req.kind, f"{status // 100}xx")] += 1
        if status >= 500:
            exc = getattr(resp, "exc_info", None)
            self._fail(
                req, status, f"server error {exc[1]!r}" if exc else "server error", kind="5xx"
            )
        elif status >= 400:
            self._check_error_body(req, resp)
        elif req.method == "POST":
            self._track(req, resp)
        self._check_database(req, status)
        return status

    def _check_error_body(self, req: Req, resp) -> None:
        try:
            err = json.loads(resp.content)["error"]
            ok = isinstance(err["code"], str) and isinstance(err["message"], str)
            ok = ok and bool(err["message"].strip())
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            self._fail(
                req,
                resp.status_code,
                f"4xx without a JSON error: {resp.content[:80]!r}",
                kind="4xx-not-json",
            )

    def _track(self, req: Req, resp) -> None:
        data = resp.json()
        recorded = self.recorded[req.who]
        if req.url.startswith("/api/votes/undo/"):
            detectid = data["undone"]["detectid"]
            if detectid not in recorded:
                self._fail(req, resp.status_code, f"undid {detectid}, never recorded", kind="votes")
            recorded.discard(detectid)
            self.undone += 1
        elif req.url.startswith("/api/votes/reason/"):
            if data["vote"]["detectid"] not in recorded:
                self._fail(req, resp.status_code, "reason for a vote never recorded", kind="votes")
        elif req.url.startswith("/api/votes/"):
            detectid = data["vote"]["detectid"]
            if resp.status_code == 201 and data["created"] is True:
                if detectid in recorded:
                    self._fail(req, 201, f"second vote created for {detectid}", kind="votes")
                recorded.add(detectid)
                self.created += 1
            elif resp.status_code == 200 and data["created"] is False:
                if detectid not in recorded:
                    self._fail(req, 200, f"repeat of {detectid}, never recorded", kind="votes")
                self.repeats += 1
            else:
                self._fail(req, resp.status_code, f"created={data['created']!r}", kind="votes")

    def _check_database(self, req: Req, status: int) -> None:
        for who, c in enumerate(self.clients):
            vid = c.session.get("volunteer_id")
            if vid is None:
                if self.recorded[who]:
                    self._fail(req, status, f"volunteer {who} has votes, no session", kind="votes")
                continue
            n_votes = Volunteer.objects.filter(pk=vid).values_list("n_votes", flat=True).first()
            if n_votes != len(self.recorded[who]):
                what = f"volunteer {who}: n_votes {n_votes} != {len(self.recorded[who])}"
                self._fail(req, status, what, kind="counter")
        missing, unacknowledged = self.vote_drift()
        if missing or unacknowledged:
            what = f"votes acknowledged but missing {missing}, stored but not acknowledged "
            self._fail(req, status, what + str(unacknowledged), kind="votes")

    def vote_drift(self) -> tuple[set, set]:
        """(acknowledged votes missing from the database, stored votes never acknowledged),
        as (volunteer id, detectid) pairs."""
        expected = set()
        for who, c in enumerate(self.clients):
            vid = c.session.get("volunteer_id")
            expected |= {(vid, d) for d in self.recorded[who]}
        stored = set(Vote.objects.values_list("volunteer_id", "candidate__detectid"))
        return expected - stored, stored - expected

    @property
    def votes_acknowledged(self) -> int:
        return sum(len(r) for r in self.recorded)


def make_fuzz_candidates(work: Path, n: int = 24) -> list[int]:
    """``n`` ingested candidates (real pixels: the spectrum endpoint reads them), one a gold
    standard and one retired; returns their detectids."""
    path = write_survey(work / "fuzz.fits", make_survey(n, seed=11, first_id=5_000_000))
    ingest_survey(path=path)
    cands = list(Candidate.objects.order_by("detectid"))
    make_gold(cands[0], is_real=False, kind="cosmic")
    Candidate.objects.filter(pk=cands[-1].pk).update(status=Candidate.Status.RETIRED)
    return [c.detectid for c in cands]


def fuzz(fuzzer: ApiFuzzer, strategy, *, max_examples: int, stop_on_failure: bool) -> None:
    """Run ``max_examples`` requests drawn from ``strategy`` (reproducible: derandomized)."""

    @settings(
        max_examples=max_examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(reqs=strategy)
    def run(reqs: list[Req]) -> None:
        before = len(fuzzer.failures)
        for req in reqs:
            fuzzer.send(req)
        if stop_on_failure:
            assert len(fuzzer.failures) == before, fuzzer.failures[-1]

    run()


# --- the tests ----------------------------------------------------------------------------


@pytest.fixture
def fuzzer(settings):
    settings.VOTE_RATE_LIMIT = 10_000  # the limit itself is tested in test_volunteer_api
    return ApiFuzzer()


def test_schema_shaped_requests_keep_the_vote_invariants(fuzzer, tmp_path):
    ids = make_fuzz_candidates(tmp_path)
    fuzz(fuzzer, api_requests(ids, hostile=False), max_examples=60, stop_on_failure=True)
    assert not fuzzer.failures
    # the flows reached the interesting states, not only errors
    assert fuzzer.created >= 5 and fuzzer.repeats >= 1 and fuzzer.undone >= 1


def test_hostile_requests_get_json_4xx_and_no_unacknowledged_vote(fuzzer, tmp_path):
    ids = make_fuzz_candidates(tmp_path)
    fuzz(fuzzer, api_requests(ids, hostile=True), max_examples=90, stop_on_failure=True)
    assert not fuzzer.failures
    kinds = {kind for kind, _ in fuzzer.counts}
    assert len(kinds) >= 8, kinds  # the categories were all reached


# Regression tests for the crashes the fuzzer found (each was a 500 before).


@pytest.mark.parametrize(
    "body",
    [
        b'{"detectid": 1e400, "answer": "yes"}',  # JSON reads 1e400 as inf: int(inf) overflowed
        b'{"detectid": 5000001, "answer": "yes", "response_ms": 1e400}',
        b'{"detectid": 5000001, "answer": "yes", "next": -1e400}',
        b'{"detectid": 5000001, "answer": "yes", "exclude": [1e400]}',
        _json({"detectid": 2**63, "answer": "yes"}),  # beyond int64: raw SQL overflowed
        _json({"detectid": -(2**63) - 1, "answer": "no"}),
        _json({"detectid": 5000001, "answer": "yes", "exclude": [10**30]}),
        b"[" * 100_000,  # nesting: json.loads raised RecursionError
        _json({"detectid": 5000001, "answer": "yes", "client": "x" * 3_000_000}),  # > 2.5 MB
    ],
)
def test_bad_vote_bodies_are_400_json_not_500(fuzzer, body):
    make_candidates(3)
    req = Req("regression", "POST", "/api/votes/", body)
    assert fuzzer.send(req) == 400, fuzzer.failures
    assert not fuzzer.failures and not Vote.objects.exists()


def test_next_with_an_exclude_beyond_64_bits_is_400(fuzzer):
    make_candidates(3)
    req = Req("regression", "GET", "/api/next/?exclude=" + "9" * 30)
    assert fuzzer.send(req) == 400 and not fuzzer.failures


def test_unknown_spectrum_is_a_json_404(fuzzer):
    for detectid in (1, INT64_MAX, 10**30):
        req = Req("regression", "GET", f"/api/candidates/{detectid}/spectrum/")
        assert fuzzer.send(req) == 404, fuzzer.failures
    assert not fuzzer.failures


def test_nan_like_strings_never_become_a_vote(fuzzer, tmp_path):
    ids = make_fuzz_candidates(tmp_path)
    for raw in NAN_LIKE:
        req = Req("nan-like", "POST", "/api/votes/", _json({"detectid": raw, "answer": "yes"}))
        assert fuzzer.send(req) in (400, 403, 404), raw  # 403: not_served (no token)
    assert not fuzzer.failures and not Vote.objects.exists()
    assert ids  # (the candidates exist: a 404 means the id did not parse to one of them)
