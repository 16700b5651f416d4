"""JSON API the classify page uses (schema: /api/openapi.json, described in services/api_schema).

Thin: parse, call a service, shape the answer. Errors are ``{"error": {"code", "message"}}``
with a 4xx status. Every write is a POST under Django's CSRF protection (send the
``csrftoken`` cookie back in an ``X-CSRFToken`` header).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache, wraps

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.shortcuts import render
from django.urls import get_script_prefix, reverse
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import ensure_csrf_cookie

from labelapp.errors import Forbidden, PlatformError, UnknownCandidate
from labelapp.middleware import client_ip
from labelapp.models import Candidate, Vote
from labelapp.services.crowd import levels, moderation, queue, vote_guard, votes
from labelapp.services.crowd.api_schema import openapi_schema
from labelapp.services.crowd.volunteers import get_volunteer
from labelapp.services.operations import vote_watch
from labelapp.services.survey.rendering import spectrum_figure
from labelapp.views.errors import api_error as error
from labelapp.views.errors import platform_error_response
from labelapp.views.json_body import BadJson, json_body, strict_int, strict_int_list

MAX_PREFETCH = 3


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
    for name in ("candidate-cutout", "api-spectrum"):
        url = reverse(name, args=[_MARK]).replace("{", "{{").replace("}", "}}")
        out.append(url.replace(str(_MARK), "{}"))
    return out[0], out[1]


def _ints(raw, name: str, limit: int = votes.MAX_EXCLUDE) -> list[int]:
    return strict_int_list(raw, name, max_items=limit)


def _strict_list(raw, name: str) -> list[int]:
    try:
        return _ints(raw, name)
    except BadJson as exc:
        raise votes.InvalidVote(exc.message) from None


def _volunteer_summary(volunteer) -> dict:
    if volunteer is None:
        return {"n_votes": 0, "gold_rate": queue.gold_rate(0)}
    return {
        "n_votes": volunteer.n_votes,
        "gold_rate": queue.gold_rate(volunteer.n_votes),
        "streak_days": volunteer.streak_days,
        "level": volunteer.level,
    }


@require_GET
@ensure_csrf_cookie
def next_candidate(request: HttpRequest) -> JsonResponse:
    try:
        count = strict_int(request.GET.get("count"), "count", low=0, high=10**6, default=1)
        count = min(MAX_PREFETCH, max(1, count))
        exclude = _ints(request.GET.get("exclude"), "exclude")
    except BadJson as exc:
        return error(400, "invalid", exc.message)
    volunteer = get_volunteer(session=request.session, user=request.user)
    rows = queue.next_candidates(
        volunteer=volunteer,
        count=count,
        exclude=exclude,
        level=levels.serving_level(volunteer=volunteer),
    )
    vote_watch.note_volunteer_activity()  # volunteers are here: votes should follow
    nonce = vote_guard.session_nonce(request.session)
    return JsonResponse(
        {
            "candidates": [candidate_payload(r, nonce) for r in rows],
            "volunteer": _volunteer_summary(volunteer),
        }
    )


def _body(request: HttpRequest) -> dict:
    """The JSON object body (the strict shared parser), or the form fields."""
    if request.content_type == "application/json":
        try:
            return json_body(request)
        except BadJson as exc:
            raise votes.InvalidVote(exc.message) from None
    return request.POST.dict()  # too large a form body: CSRF reads it first -> handler400


def _strict(value, name: str, **kw) -> int | None:
    try:
        return strict_int(value, name, **kw)
    except BadJson as exc:
        raise votes.InvalidVote(exc.message) from None


def _detectid(data: dict) -> int:
    if data.get("detectid") in (None, ""):
        raise votes.InvalidVote("detectid is required")
    return _strict(data["detectid"], "detectid")  # 64-bit: the raw SQL would overflow


class NotServedVote(votes.VoteError, Forbidden):
    code = "not_served"


class BlockedVote(votes.VoteError, Forbidden):
    code = "blocked"


def _guard(request: HttpRequest, detectid: int, token):
    """The HTTP-only checks before a vote is taken: served to this session (token), the
    client address not blocked (console), and for anonymous votes the address's vote limit
    and its limit on new anonymous volunteers. Returns the volunteer (created when new)."""
    try:
        vote_guard.check_served(session=request.session, detectid=detectid, token=token)
    except vote_guard.NotServed as exc:
        raise NotServedVote(str(exc)) from None
    ip = client_ip(request)
    if moderation.is_blocked(ip):
        raise BlockedVote(
            "votes from your network are not accepted at the moment; if you think this is a "
            "mistake, write to the project team"
        )
    anonymous = not request.user.is_authenticated
    if anonymous:  # accounts: per volunteer (and sign-ups per address) limit them
        limit = vote_guard.hit_ip_vote_limit(client_ip=ip)
        if not limit.allowed:
            raise votes.RateLimited(
                "too many anonymous votes from your network: wait "
                f"{limit.retry_after_s} s, or sign up (accounts are not limited per network)",
                retry_after_s=limit.retry_after_s,
            )
    volunteer = get_volunteer(session=request.session, user=request.user)
    if volunteer is None and anonymous:
        limit = vote_guard.hit_new_volunteer_limit(client_ip=ip)
        if not limit.allowed:
            raise votes.RateLimited(
                "too many new anonymous volunteers from your network: sign up (or log in) "
                f"to classify, or wait {limit.retry_after_s} s",
                retry_after_s=limit.retry_after_s,
            )
    if volunteer is None:
        volunteer = get_volunteer(session=request.session, user=request.user, create=True)
    return volunteer


@require_POST
def vote(request: HttpRequest) -> JsonResponse:
    try:
        data = _body(request)
        detectid = _detectid(data)
        response_ms = _strict(
            data.get("response_ms"), "response_ms", low=0, high=votes.MAX_RESPONSE_MS
        )
        want_next = min(MAX_PREFETCH, _strict(data.get("next"), "next", low=0, default=1))
        exclude = _strict_list(data.get("exclude"), "exclude")
        volunteer = _guard(request, detectid, data.get("token"))
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
    # a new gold answer: the skill it shows may move the level (before the summary below)
    change = None
    if result.gold is not None and result.created:
        change = levels.refresh_level(volunteer=volunteer)
    nonce = vote_guard.session_nonce(request.session)
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
        body["feedback"] = votes.gold_feedback(result)
    if change is not None:
        body["level_change"] = change.as_dict()
    if want_next:
        rows = queue.next_candidates(
            volunteer=volunteer,
            count=want_next,
            exclude=exclude + [detectid],
            level=levels.serving_level(volunteer=volunteer),
        )
        body["next"] = [candidate_payload(r, nonce) for r in rows]
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
            "undone": {
                "answer": v.answer,
                **candidate_payload(vars(c), vote_guard.session_nonce(request.session)),
            },
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
        # level 3: the reason is the follow-up task's answer, kept as a training target
        artefact = levels.asks_artefact_type(volunteer=volunteer)
        if artefact:
            levels.record_artefact_answer(volunteer=volunteer, vote=v, kind=v.reason)
    except PlatformError as exc:
        return platform_error_response(exc)
    return JsonResponse(
        {
            "vote": {"detectid": detectid, "answer": v.answer, "reason": v.reason},
            "artefact_recorded": artefact,
        }
    )


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
