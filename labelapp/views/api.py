"""JSON API the classify page uses (schema: /api/openapi.json, described in services/api_schema).

Thin: parse, call a service, shape the answer. Errors are ``{"error": {"code", "message"}}``
with a 4xx status. Every write is a POST under Django's CSRF protection (send the
``csrftoken`` cookie back in an ``X-CSRFToken`` header).
"""

from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache, wraps

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, JsonResponse
from django.shortcuts import render
from django.urls import get_script_prefix, reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import ensure_csrf_cookie

from labelapp.errors import PlatformError, UnknownCandidate
from labelapp.models import Candidate, Vote
from labelapp.services.crowd import queue, votes
from labelapp.services.crowd.api_schema import openapi_schema
from labelapp.services.crowd.volunteers import get_volunteer
from labelapp.services.operations import vote_watch
from labelapp.services.survey.rendering import spectrum_figure
from labelapp.views.errors import api_error as error
from labelapp.views.errors import platform_error_response

MAX_PREFETCH = 3
INT64 = range(-(2**63), 2**63)  # detectids are 64-bit: anything outside can reach no row


def allow(*methods: str):
    """Like Django's require_GET/require_POST, but a wrong method gets the API's JSON error
    (Django's answer is an empty 405) with the Allow header."""

    def decorator(view):
        @wraps(view)
        def wrapped(request: HttpRequest, *args, **kwargs):
            if request.method not in methods:
                resp = error(
                    405,
                    "method_not_allowed",
                    f"{request.method} is not allowed here; use {' or '.join(methods)}",
                )
                resp["Allow"] = ", ".join(methods)
                return resp
            return view(request, *args, **kwargs)

        return wrapped

    return decorator


require_GET = allow("GET", "HEAD")
require_POST = allow("POST")


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    """CSRF_FAILURE_VIEW: JSON for the API, Django's page elsewhere."""
    if request.path.startswith("/api/"):
        return error(
            403,
            "csrf",
            "CSRF check failed: reload the page (or send the csrftoken cookie "
            "in an X-CSRFToken header)",
        )
    from django.views.csrf import csrf_failure as default

    return default(request, reason=reason)


def candidate_payload(row: dict) -> dict:
    d = row["detectid"]
    cutout, spectrum = _url_patterns(get_script_prefix())
    return {
        "detectid": d,
        "wave": round(row["wave"], 1),
        "cutout_url": cutout.format(d),
        "spectrum_url": spectrum.format(d),
    }


_MARK = 918273645546372819  # a detectid no candidate has, reversed once and replaced


@lru_cache(maxsize=8)
def _url_patterns(script_prefix: str) -> tuple[str, str]:
    """The two per-candidate URLs as format strings, from ``reverse`` once per prefix
    (``reverse`` twice per candidate was a visible share of a vote's CPU)."""
    out = []
    for name in ("candidate-cutout", "api-spectrum"):
        url = reverse(name, args=[_MARK]).replace("{", "{{").replace("}", "}}")
        out.append(url.replace(str(_MARK), "{}"))
    return out[0], out[1]


def _ints(raw, name: str, limit: int = votes.MAX_EXCLUDE) -> list[int]:
    if raw in (None, ""):
        return []
    items = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(items, list) or len(items) > limit:
        raise votes.InvalidVote(f"{name} must be a list of at most {limit} detectids")
    try:
        ids = [int(i) for i in items]
    except (TypeError, ValueError, OverflowError):  # OverflowError: JSON 1e400 is inf
        raise votes.InvalidVote(f"{name} must be a list of integer detectids") from None
    if any(i not in INT64 for i in ids):
        raise votes.InvalidVote(f"{name}: detectids are 64-bit integers")
    return ids


def _volunteer_summary(volunteer) -> dict:
    if volunteer is None:
        return {"n_votes": 0, "gold_rate": queue.gold_rate(0)}
    return {
        "n_votes": volunteer.n_votes,
        "gold_rate": queue.gold_rate(volunteer.n_votes),
        "streak_days": volunteer.streak_days,
    }


@require_GET
@ensure_csrf_cookie
def next_candidate(request: HttpRequest) -> JsonResponse:
    try:
        count = min(MAX_PREFETCH, max(1, int(request.GET.get("count", 1))))
        exclude = _ints(request.GET.get("exclude"), "exclude")
    except (ValueError, votes.InvalidVote) as exc:
        return error(400, "invalid", str(exc))
    volunteer = get_volunteer(session=request.session, user=request.user)
    rows = queue.next_candidates(volunteer=volunteer, count=count, exclude=exclude)
    vote_watch.note_volunteer_activity()  # volunteers are here: votes should follow
    return JsonResponse(
        {
            "candidates": [candidate_payload(r) for r in rows],
            "volunteer": _volunteer_summary(volunteer),
        }
    )


def _body(request: HttpRequest) -> dict:
    if request.content_type == "application/json":
        try:
            data = json.loads(request.body or b"{}")
        except RequestDataTooBig:
            raise votes.InvalidVote("the body is too large") from None
        except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: [[[[...
            raise votes.InvalidVote("the body is not valid JSON") from None
        if not isinstance(data, dict):
            raise votes.InvalidVote("the body must be a JSON object")
        return data
    return request.POST.dict()  # too large a form body: CSRF reads it first -> handler400


def _detectid(data: dict) -> int:
    try:
        detectid = int(data["detectid"])
    except KeyError:
        raise votes.InvalidVote("detectid is required") from None
    except (TypeError, ValueError, OverflowError):
        raise votes.InvalidVote("detectid must be an integer") from None
    if detectid not in INT64:  # the raw SQL of the vote path would overflow
        raise votes.InvalidVote("detectid must be a 64-bit integer")
    return detectid


def _int(data: dict, name: str, default: int | None, low: int, high: int) -> int | None:
    raw = data.get(name)
    if raw in (None, ""):
        return default
    try:
        value = int(raw)
    except (TypeError, ValueError, OverflowError):
        raise votes.InvalidVote(f"{name} must be an integer") from None
    return max(low, min(high, value))


@require_POST
def vote(request: HttpRequest) -> JsonResponse:
    try:
        data = _body(request)
        detectid = _detectid(data)
        # clamped just outside the valid range, so submit_vote's check names the field
        response_ms = _int(data, "response_ms", None, -1, votes.MAX_RESPONSE_MS + 1)
        want_next = _int(data, "next", 1, 0, MAX_PREFETCH)
        exclude = _ints(data.get("exclude"), "exclude")
        volunteer = get_volunteer(session=request.session, user=request.user, create=True)
        result = votes.submit_vote(
            volunteer=volunteer,
            detectid=detectid,
            answer=str(data.get("answer", "")),
            reason=str(data.get("reason") or ""),
            response_ms=response_ms,
            client=str(data.get("client") or Vote.Client.API),
        )
    except PlatformError as exc:
        return platform_error_response(exc)
    v = result.vote
    body = {
        "created": result.created,
        "vote": {"detectid": detectid, "answer": v.answer, "reason": v.reason},
        "undo_until": (
            v.created_at + dt.timedelta(seconds=settings.VOTE_UNDO_WINDOW_S)
        ).isoformat(),
        "feedback": None,
        "volunteer": _volunteer_summary(volunteer),
    }
    if result.gold is not None:
        body["feedback"] = {
            "correct": result.correct,
            "is_real": result.gold.is_real,
            "kind": result.gold.kind,
            "text": result.gold.feedback,
        }
    if want_next:
        rows = queue.next_candidates(
            volunteer=volunteer, count=want_next, exclude=exclude + [detectid]
        )
        body["next"] = [candidate_payload(r) for r in rows]
    return JsonResponse(body, status=201 if result.created else 200)


@require_POST
def undo(request: HttpRequest) -> JsonResponse:
    volunteer = get_volunteer(session=request.session, user=request.user)
    if volunteer is None:
        return error(404, "nothing_to_undo", "you have not answered anything yet")
    try:
        v = votes.undo_last_vote(volunteer=volunteer)
    except PlatformError as exc:
        return platform_error_response(exc)
    c = v.candidate
    return JsonResponse(
        {
            "undone": {"answer": v.answer, **candidate_payload(vars(c))},
            "volunteer": _volunteer_summary(volunteer),
        }
    )


@require_POST
def vote_reason(request: HttpRequest) -> JsonResponse:
    volunteer = get_volunteer(session=request.session, user=request.user)
    try:
        data = _body(request)
        detectid = _detectid(data)
        if volunteer is None:
            raise UnknownCandidate(f"you have no answer for candidate {detectid}")
        v = votes.set_vote_reason(
            volunteer=volunteer, detectid=detectid, reason=str(data.get("reason", ""))
        )
    except PlatformError as exc:
        return platform_error_response(exc)
    return JsonResponse({"vote": {"detectid": detectid, "answer": v.answer, "reason": v.reason}})


@require_GET
@cache_control(max_age=86400, public=True)  # a candidate's spectrum never changes
def spectrum(request: HttpRequest, detectid: int) -> JsonResponse:
    candidate = Candidate.objects.select_related("batch").filter(detectid=detectid).first()
    if candidate is None:  # JSON like every API error (get_object_or_404 answered HTML)
        return error(404, "unknown_candidate", f"there is no candidate with detectid {detectid}")
    return JsonResponse(spectrum_figure(candidate))


@require_GET
def schema(request: HttpRequest) -> JsonResponse:
    return JsonResponse(openapi_schema(), json_dumps_params={"indent": 1})


@require_GET
def docs(request: HttpRequest):
    return render(request, "volunteer/api_docs.html", {"schema": openapi_schema()})
