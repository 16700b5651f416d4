"""The volunteer JSON API the classify page uses (/api/...): django-ninja builds its OpenAPI
schema (/api/openapi.json) from the request and answer models below and the routes' type
hints.

Thin: ninja parses and validates the request (the strict JSON reader of
labelapp.views.json_body, then the pydantic models), a route calls a service and shapes the
answer. Errors are ``{"error": {"code", "message"}}`` with a 4xx status. Every write is a
POST under Django's CSRF check (send the ``csrftoken`` cookie back in an ``X-CSRFToken``
header); the volunteer is the session (anonymous) or the logged-in account.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache
from typing import Annotated, Literal

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation
from django.core.serializers.json import DjangoJSONEncoder
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.http.multipartparser import MultiPartParserError
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import URLPattern, get_script_prefix, reverse
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext, gettext_noop
from ninja import NinjaAPI, Query, Schema
from ninja.errors import HttpError
from ninja.errors import ValidationError as NinjaValidationError
from ninja.parser import Parser
from ninja.security import APIKeyHeader
from ninja.utils import check_csrf
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo
from pydantic_core import PydanticCustomError

from labelapp.errors import Forbidden, PlatformError, UnknownCandidate
from labelapp.middleware import client_ip
from labelapp.models import Candidate, Vote
from labelapp.services.crowd import levels, moderation, queue, vote_guard, votes
from labelapp.services.crowd.volunteers import get_volunteer
from labelapp.services.operations import vote_watch
from labelapp.services.survey.rendering import spectrum_figure
from labelapp.views.errors import api_error, platform_error_response
from labelapp.views.json_body import (
    INT64_MAX,
    INT64_MIN,
    BadJson,
    json_body,
    strict_int,
    strict_int_list,
)

MAX_PREFETCH = 3
CSRF_MESSAGE = gettext_noop(  # told in the request's language: gettext(CSRF_MESSAGE)
    "CSRF check failed: reload the page (or send the csrftoken cookie in an X-CSRFToken header)"
)


# --- request parsing ------------------------------------------------------------------------


class StrictJsonParser(Parser):
    """ninja's body parser: a JSON body through the strict reader (NaN / Infinity, nesting
    deeper than json_body.MAX_DEPTH, a top level that is not an object, a body that is not
    UTF-8 JSON: refused with a message before pydantic sees it); form bodies as their fields
    (all strings: the integer fields take strings of digits)."""

    def parse_body(self, request: HttpRequest) -> dict:
        if request.content_type == "application/json":
            return json_body(request)
        return request.POST.dict()


def _id_list(value, info: ValidationInfo):
    """A list of 64-bit ids: a JSON array, or comma-separated text (a query or form field)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        value = ",".join(value)  # ?exclude=1,2&exclude=3: ninja hands the query's values
    try:
        return strict_int_list(value, info.field_name, max_items=votes.MAX_EXCLUDE)
    except BadJson as exc:
        raise PydanticCustomError("invalid", exc.message) from None


def _refuse(message: str):
    return PydanticCustomError("invalid", message)  # the message as is, for the answer


def Int(low: int = INT64_MIN, high: int = INT64_MAX, *, required: bool = False, **kw):
    """A 64-bit integer field in [low, high]: a JSON integer or a string of digits (a form
    field), read by json_body.strict_int; ``true``, ``1.5``, ``"1e3"``, 2**64 and values out
    of range are refused with a message naming the field. None or "" is "not given"."""

    def read(value, info: ValidationInfo):
        if value is None or value == "":
            if required:
                raise _refuse(f"{info.field_name} is required")
            return None
        try:
            return strict_int(value, info.field_name, low=low, high=high)
        except BadJson as exc:
            raise _refuse(exc.message) from None

    # constraints before the validator, so the schema says minimum / maximum
    return Annotated[int, Field(ge=low, le=high, **kw), BeforeValidator(read)]


def Choice(values: list[str], *, required: bool = False, shown: list[str] | None = None):
    """One of ``values`` (the schema's enum), refused with the services' message."""

    def read(value, info: ValidationInfo):
        if value is None and not required:
            return None
        if value is None or value not in values:
            names = ", ".join(shown or values)
            raise _refuse(f"{info.field_name} must be one of {names}, not {value!r}"[:300])
        return value

    return Annotated[Literal[tuple(values)], BeforeValidator(read)]


DetectId = Int(required=True, description="the candidate's detectid (64-bit)")
IdList = Annotated[
    list[Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]],
    Field(max_length=votes.MAX_EXCLUDE, description="detectids the page holds; never served"),
    BeforeValidator(_id_list),
]
IdText = Annotated[  # the same in a query: comma-separated (documented in EXCLUDE_PARAM)
    list[int], Field(json_schema_extra={"include_in_schema": False}), BeforeValidator(_id_list)
]
EXCLUDE_PARAM = {  # ?exclude=1,2,3: an array in OpenAPI's form style, not exploded
    "in": "query",
    "name": "exclude",
    "required": False,
    "style": "form",
    "explode": False,
    "description": "detectids the page already holds, comma-separated; never served",
    "schema": {
        "type": "array",
        "items": {"type": "integer", "minimum": INT64_MIN, "maximum": INT64_MAX},
        "maxItems": votes.MAX_EXCLUDE,
    },
}


class NextQuery(Schema):
    count: Int(0, 10**6, description="how many (1 to 3; more is read as 3)") = 1
    exclude: IdText = []


class VoteRequest(BaseModel):
    # a reason goes with a 'no' only (services.crowd.votes checks it; 400 otherwise)
    model_config = ConfigDict(
        json_schema_extra={
            "if": {
                "properties": {"reason": {"enum": Vote.Reason.values}},
                "required": ["reason"],
            },
            "then": {"properties": {"answer": {"const": Vote.Answer.NO.value}}},
        }
    )

    detectid: DetectId
    answer: Choice(Vote.Answer.values, required=True)
    token: str | None = Field(
        None,
        max_length=200,
        description="the token that came with the candidate (without it: 403 not_served)",
    )
    reason: Choice(["", *Vote.Reason.values], shown=Vote.Reason.values) | None = Field(
        None, description="why 'no' (only with answer 'no')"
    )
    response_ms: Int(0, votes.MAX_RESPONSE_MS) | None = None
    client: Choice(Vote.Client.values) | None = Field(None, description="how the answer was given")
    exclude: IdList | None = None
    next: Int(0) | None = Field(None, description="how many next candidates (default 1, max 3)")


class ReasonRequest(BaseModel):
    detectid: DetectId
    reason: Choice(Vote.Reason.values, required=True)


# --- answers --------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str
    message: str
    retry_after_s: int | None = None


class ErrorOut(BaseModel):
    error: ErrorBody


class CandidateOut(BaseModel):
    detectid: int
    wave: float = Field(description="line wavelength (Å)")
    cutout_url: str
    spectrum_url: str
    token: str = Field(description="send it back with the vote on this candidate")


class VolunteerSummary(BaseModel):
    n_votes: int
    gold_rate: float
    streak_days: int | None = Field(None, description="absent before the first answer")
    level: int | None = Field(
        None, description="level by shown skill (1-3, see /me/); absent before the first answer"
    )


class NextResponse(BaseModel):
    candidates: list[CandidateOut] = Field(description="empty: nothing left for you")
    volunteer: VolunteerSummary


Answer = Literal[tuple(Vote.Answer.values)]


class VoteRecord(BaseModel):
    detectid: int
    answer: Answer
    reason: str


class GoldFeedback(BaseModel):
    correct: bool
    is_real: bool
    kind: str
    text: str


class LevelChange(BaseModel):
    from_: int = Field(alias="from")  # a Python keyword: the vote operation dumps by alias
    to: int
    promoted: bool
    message: str


class VoteResponse(BaseModel):
    created: bool = Field(description="false: this vote was already recorded (a repeat)")
    vote: VoteRecord
    undo_until: str = Field(json_schema_extra={"format": "date-time"})
    feedback: GoldFeedback | None = Field(
        description="only for a yes/no on a gold-standard candidate (then final)"
    )
    level_change: LevelChange | None = Field(
        None, description="only when this gold answer moved the volunteer's level"
    )
    next: list[CandidateOut] | None = Field(None, description="absent when next is 0")
    volunteer: VolunteerSummary


class UndoneCandidate(CandidateOut):
    answer: Answer


class UndoResponse(BaseModel):
    undone: UndoneCandidate
    volunteer: VolunteerSummary


class ReasonResponse(BaseModel):
    vote: VoteRecord
    artefact_recorded: bool = Field(
        description="level 3: the reason was also kept as the follow-up task's answer (the "
        "artefact type of this candidate, a training target)"
    )


def _errors(*statuses: int) -> dict:
    return {s: ErrorOut for s in statuses}


# --- the API --------------------------------------------------------------------------------


class CsrfFailed(Forbidden):
    code = "csrf"


class CsrfToken(APIKeyHeader):
    """Django's CSRF check (CsrfViewMiddleware's, as on every form of the site) as the
    writes' security scheme: the token is the ``csrftoken`` cookie, sent back in the
    X-CSRFToken header. It identifies nobody; the volunteer is the session or account."""

    param_name = "X-CSRFToken"

    def __call__(self, request: HttpRequest):
        request.body  # noqa: B018 (read now, so a form body can still be parsed after CSRF)
        if check_csrf(request) is not None:
            raise CsrfFailed(gettext(CSRF_MESSAGE))
        return True

    def authenticate(self, request: HttpRequest, key):  # pragma: no cover (see __call__)
        return True


CSRF = CsrfToken()

api = NinjaAPI(
    title="Dark Energy Explorers volunteer API",
    version="1",
    description=(
        "Used by the classify page. The volunteer is the session (anonymous) or the "
        "logged-in account. Writes are POSTs protected by CSRF: send the `csrftoken` cookie "
        "(set by GET /api/next/) back in an `X-CSRFToken` header. Errors are "
        '`{"error": {"code", "message"}}`. Cutouts (PNG) are at each candidate\'s '
        "`cutout_url`."
    ),
    urls_namespace="volunteer-api",
    parser=StrictJsonParser(),
    docs_url=None,  # /api/ is the site's own page (the Swagger page loads from a CDN)
)


@api.exception_handler(PlatformError)
def _platform_error(request, exc: PlatformError):
    return platform_error_response(exc)


def _field(loc: tuple) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "payload")]
    return ".".join(parts) or "the body"


def _problem(e: dict) -> str:
    """One validation error as a sentence (pydantic's own wording for the rest)."""
    name = _field(e.get("loc", ()))
    if e["type"] == "invalid":  # Int and Choice: their message names the field
        return e["msg"]
    if e["type"] == "missing":
        if name == "the body":  # ninja reads an empty body as no body
            return "the body is empty: send a JSON object"
        return f"{name} is required"
    if e["type"] == "string_type":
        return f"{name} must be a string"
    return f"{name}: {e.get('msg', 'invalid')}"


@api.exception_handler(NinjaValidationError)
def _invalid(request, exc: NinjaValidationError):
    return api_error(400, "invalid", "; ".join(_problem(e) for e in exc.errors) or "invalid")


@api.exception_handler(HttpError)
def _http_error(request, exc: HttpError):
    if isinstance(exc.__cause__, BadJson):  # the strict parser refused the body
        return api_error(400, "invalid", exc.__cause__.message)
    return api_error(exc.status_code, "invalid", str(exc))


@api.exception_handler(RequestDataTooBig)
def _too_big(request, exc):
    return api_error(400, "invalid", "the body is too large")


@api.exception_handler(SuspiciousOperation)
@api.exception_handler(MultiPartParserError)
def _unreadable(request, exc):
    """What Django refuses to read (too many fields, a multipart body without boundary):
    the answer views/errors.bad_request gives, with DEBUG on too (ninja's default there is a
    500 traceback)."""
    return api_error(400, "bad_request", "the request could not be read")


@api.exception_handler(Http404)
def _not_found(request, exc):
    return api_error(404, "not_found", str(exc) or f"nothing at {request.path}")


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: JSON under /api/, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return api_error(403, "csrf", gettext(CSRF_MESSAGE))
    from django.views.csrf import csrf_failure as default

    return default(request, reason=reason)


def _with_json_405(view):
    """ninja answers a wrong method with an empty 405 and HEAD not at all: here a wrong
    method gets the API's JSON error with the Allow header, and HEAD is answered as GET."""

    def wrapped(request: HttpRequest, *args, **kwargs):
        head = request.method == "HEAD"
        if head:
            request.method = "GET"
        try:
            resp = view(request, *args, **kwargs)
        finally:
            if head:
                request.method = "HEAD"
        if isinstance(resp, HttpResponseNotAllowed):
            allowed = [m.strip() for m in resp["Allow"].split(",")]
            if "GET" in allowed:
                allowed.append("HEAD")
            resp = api_error(
                405,
                "method_not_allowed",
                f"{request.method} is not allowed here; use {' or '.join(allowed)}",
            )
            resp["Allow"] = ", ".join(allowed)
        return resp

    wrapped.csrf_exempt = True  # writes check CSRF themselves (CsrfToken), before parsing
    return wrapped


def urls():
    """The API's URL patterns for ``include`` (ninja's, each view wrapped by _with_json_405)."""
    patterns, app_name, namespace = api.urls
    wrapped = [
        URLPattern(p.pattern, _with_json_405(p.callback), p.default_args, p.name)
        if isinstance(p, URLPattern)
        else p
        for p in patterns
    ]
    return wrapped, app_name, namespace


# --- answers' parts -------------------------------------------------------------------------


def candidate_payload(row: dict, nonce: str) -> dict:
    """A served candidate: its URLs and the token a vote on it must carry (services.vote_guard:
    bound to this session's ``nonce``)."""
    d = row["detectid"]
    cutout, spectrum = _url_patterns(get_script_prefix())
    return {
        "detectid": d,
        "wave": round(row["wave"], 1),
        "cutout_url": cutout.format(d),
        "spectrum_url": spectrum.format(d),
        "token": vote_guard.sign_served(nonce=nonce, detectid=d),
    }


_MARK = 918273645546372819  # a detectid no candidate has, reversed once and replaced


@lru_cache(maxsize=8)
def _url_patterns(script_prefix: str) -> tuple[str, str]:
    """The two per-candidate URLs as format strings, from ``reverse`` once per prefix
    (``reverse`` twice per candidate was a visible share of a vote's CPU)."""
    out = []
    for name in ("candidate-cutout", "volunteer-api:spectrum"):
        url = reverse(name, args=[_MARK]).replace("{", "{{").replace("}", "}}")
        out.append(url.replace(str(_MARK), "{}"))
    return out[0], out[1]


def _volunteer_summary(volunteer) -> dict:
    if volunteer is None:
        return {"n_votes": 0, "gold_rate": queue.gold_rate(0)}
    return {
        "n_votes": volunteer.n_votes,
        "gold_rate": queue.gold_rate(volunteer.n_votes),
        "streak_days": volunteer.streak_days,
        "level": volunteer.level,
    }


class NotServedVote(votes.VoteError, Forbidden):
    code = "not_served"


class BlockedVote(votes.VoteError, Forbidden):
    code = "blocked"


def _guard(request: HttpRequest, detectid: int, token):
    """The HTTP-only checks before a vote is taken: served to this session (token), the
    client address not blocked (console), and for anonymous votes the address's vote limit
    and its limit on new anonymous volunteers. Returns the volunteer (created when new) and
    the per-volunteer rate decision (None for a new volunteer: submit_vote counts it), both
    counters hit in one Redis round trip."""
    try:
        vote_guard.check_served(session=request.session, detectid=detectid, token=token)
    except vote_guard.NotServed as exc:
        raise NotServedVote(str(exc)) from None
    ip = client_ip(request)
    if moderation.is_blocked(ip):
        raise BlockedVote(
            gettext(
                "votes from your network are not accepted at the moment; if you think this is "
                "a mistake, write to the project team"
            )
        )
    anonymous = not request.user.is_authenticated
    volunteer = get_volunteer(session=request.session, user=request.user)
    # accounts: limited per volunteer (and their sign-ups per address), not per address
    ip_limit, own_limit = vote_guard.hit_vote_limits(
        client_ip=ip if anonymous else None,
        volunteer_pk=volunteer.pk if volunteer is not None else None,
    )
    if ip_limit is not None and not ip_limit.allowed:
        raise votes.RateLimited(
            gettext(
                "too many anonymous votes from your network: wait %(s)s s, or sign up "
                "(accounts are not limited per network)"
            )
            % {"s": ip_limit.retry_after_s},
            retry_after_s=ip_limit.retry_after_s,
        )
    if volunteer is not None:
        return volunteer, own_limit
    if anonymous:
        limit = vote_guard.hit_new_volunteer_limit(client_ip=ip)
        if not limit.allowed:
            raise votes.RateLimited(
                gettext(
                    "too many new anonymous volunteers from your network: sign up (or log in) "
                    "to classify, or wait %(s)s s"
                )
                % {"s": limit.retry_after_s},
                retry_after_s=limit.retry_after_s,
            )
    return get_volunteer(session=request.session, user=request.user, create=True), None


# --- routes ---------------------------------------------------------------------------------


@api.get(
    "/next/",
    response={200: NextResponse, **_errors(400)},
    operation_id="nextCandidates",
    openapi_extra={"parameters": [EXCLUDE_PARAM]},
    url_name="next",
    summary="The next candidate(s) to classify",
    exclude_unset=True,
)
def next_candidates(request: HttpRequest, params: Query[NextQuery]):
    """Active candidates this volunteer has not answered, by priority, with gold-standard
    candidates mixed in (40% for the first 20 classifications, 30% up to 40, 20% up to 60,
    then 10%). An empty list means there is nothing left for this volunteer. Sets the
    `csrftoken` cookie the writes need."""
    get_token(request)  # like ensure_csrf_cookie: the page's writes need the cookie
    count = min(MAX_PREFETCH, max(1, params.count))
    volunteer = get_volunteer(session=request.session, user=request.user)
    rows = queue.next_candidates(
        volunteer=volunteer,
        count=count,
        exclude=params.exclude,
        level=levels.serving_level(volunteer=volunteer),
    )
    vote_watch.note_volunteer_activity()  # volunteers are here: votes should follow
    nonce = vote_guard.session_nonce(request.session)
    return {
        "candidates": [candidate_payload(r, nonce) for r in rows],
        "volunteer": _volunteer_summary(volunteer),
    }


@api.post(
    "/votes/",
    auth=CSRF,
    response={201: VoteResponse, 200: VoteResponse, **_errors(400, 403, 404, 409, 429)},
    operation_id="submitVote",
    url_name="vote",
    summary="Answer 'is there a real emission line in the middle?'",
    exclude_unset=True,
    by_alias=True,
)
def vote(request: HttpRequest, body: VoteRequest):
    """One vote per volunteer and candidate: submitting again (two tabs, a retry) returns the
    vote already recorded with status 200 and `created: false`. The answer carries the next
    candidate(s) so the page needs one round trip per answer. Rate limits: per volunteer
    (`VOTE_RATE_LIMIT` votes per `VOTE_RATE_WINDOW_S`) and, for anonymous votes, per client
    address (429 with Retry-After). A vote needs the `token` that came with its candidate
    from this session (served candidates only: 403 `not_served`); 409 when the candidate is
    retired or waiting for an expert; 403 `csrf` without the CSRF header."""
    detectid = body.detectid
    want_next = min(MAX_PREFETCH, 1 if body.next is None else body.next)
    volunteer, rate = _guard(request, detectid, body.token)
    result = votes.submit_vote(
        volunteer=volunteer,
        detectid=detectid,
        answer=body.answer,
        reason=body.reason or "",
        response_ms=body.response_ms,
        client=body.client or Vote.Client.API,
        rate=rate,
    )
    # a new teaching gold answer: the skill it shows may move the level (before the summary
    # below); exam gold is answered exactly like any candidate
    change = None
    if result.gold is not None and not result.gold.exam and result.created:
        change = levels.refresh_level(volunteer=volunteer)
    v = result.vote
    out = {
        "created": result.created,
        "vote": {"detectid": detectid, "answer": v.answer, "reason": v.reason},
        "undo_until": (
            v.created_at + dt.timedelta(seconds=settings.VOTE_UNDO_WINDOW_S)
        ).isoformat(),
        "feedback": votes.gold_feedback(result),
        "volunteer": _volunteer_summary(volunteer),
    }
    if change is not None:
        out["level_change"] = change.as_dict()
    if want_next:
        rows = queue.next_candidates(
            volunteer=volunteer,
            count=want_next,
            exclude=(body.exclude or []) + [detectid],
            level=levels.serving_level(volunteer=volunteer),
        )
        nonce = vote_guard.session_nonce(request.session)
        out["next"] = [candidate_payload(r, nonce) for r in rows]
    # Answered as JSON here: ninja's validation of the answer against VoteResponse was 0.2 ms
    # of a vote's CPU (bench_vote_view.py). The schema still documents it, and the tests
    # check the answers against it (test_vote_answer_matches_its_schema, schemathesis).
    return HttpResponse(
        json.dumps(out, cls=DjangoJSONEncoder),
        content_type="application/json",
        status=201 if result.created else 200,
    )


@api.post(
    "/votes/undo/",
    auth=CSRF,
    response={200: UndoResponse, **_errors(403, 404)},
    operation_id="undoLastVote",
    url_name="undo",
    summary="Take back your last answer (within VOTE_UNDO_WINDOW_S, 10 s by default)",
    exclude_unset=True,
)
def undo(request: HttpRequest):
    """404 `nothing_to_undo` when you have no answer from the undo window (a gold-standard
    yes/no is final)."""
    volunteer = get_volunteer(session=request.session, user=request.user)
    if volunteer is None:
        raise votes.NothingToUndo(gettext("you have not answered anything yet"))
    v = votes.undo_last_vote(volunteer=volunteer)
    nonce = vote_guard.session_nonce(request.session)
    return {
        "undone": {"answer": v.answer, **candidate_payload(vars(v.candidate), nonce)},
        "volunteer": _volunteer_summary(volunteer),
    }


@api.post(
    "/votes/reason/",
    auth=CSRF,
    response={200: ReasonResponse, **_errors(400, 403, 404)},
    operation_id="setVoteReason",
    url_name="reason",
    summary="Say why you answered 'no' (optional)",
)
def vote_reason(request: HttpRequest, body: ReasonRequest):
    """400 when the answer was not 'no'; 404 when you have no answer for this candidate."""
    volunteer = get_volunteer(session=request.session, user=request.user)
    if volunteer is None:
        raise UnknownCandidate(f"you have no answer for candidate {body.detectid}")
    v = votes.set_vote_reason(volunteer=volunteer, detectid=body.detectid, reason=body.reason)
    # level 3: the reason is the follow-up task's answer, kept as a training target
    artefact = levels.asks_artefact_type(volunteer=volunteer)
    if artefact:
        levels.record_artefact_answer(volunteer=volunteer, vote=v, kind=v.reason)
    return {
        "vote": {"detectid": body.detectid, "answer": v.answer, "reason": v.reason},
        "artefact_recorded": artefact,
    }


@api.get(
    "/candidates/{int:detectid}/spectrum/",
    response={200: dict, **_errors(404)},
    operation_id="candidateSpectrum",
    url_name="spectrum",
    summary="Plotly figure of the 1D spectrum around the line, with 1σ band",
)
def spectrum(request: HttpRequest, detectid: int, response: HttpResponse):
    """A plotly figure, `{data, layout}`; cached for a day (a spectrum never changes)."""
    candidate = Candidate.objects.select_related("batch").filter(detectid=detectid).first()
    if candidate is None:
        raise UnknownCandidate(f"there is no candidate with detectid {detectid}")
    patch_cache_control(response, max_age=86400, public=True)
    return spectrum_figure(candidate)


def _fields(schema: dict, components: dict) -> list[dict]:
    """A request body's fields for the /api/ page: name, type, required."""
    if "$ref" in schema:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    out = []
    for name, prop in schema.get("properties", {}).items():
        alts = [a for a in prop.get("anyOf", [prop]) if a.get("type") != "null"]
        kind = alts[0] if alts else prop
        what = kind.get("type", "")
        if "enum" in kind:
            what = "one of " + ", ".join(f'"{v}"' for v in kind["enum"])
        required = name in schema.get("required", ())
        out.append(
            {
                "name": name,
                "type": what,
                "required": required,
                "about": prop.get("description") or kind.get("description"),
            }
        )
    return out


def docs(request: HttpRequest):
    """/api/: the generated schema as a page (ninja's Swagger page needs a CDN)."""
    schema = api.get_openapi_schema()
    components = schema["components"]["schemas"]
    ops = []
    for path, item in schema["paths"].items():
        for method, op in item.items():
            body = op.get("requestBody", {}).get("content", {}).get("application/json")
            ops.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "op": op,
                    "csrf": bool(op.get("security")),
                    "params": op.get("parameters", []),
                    "fields": _fields(body["schema"], components) if body else [],
                    "statuses": sorted(op["responses"]),
                }
            )
    return render(request, "volunteer/api_docs.html", {"schema": schema, "ops": ops})
