"""Console curation: the expert queue, the gold standards, one-click flags. Thin: the rules
live in ``labelapp.services.crowd.curation``; these views parse input and pick the response."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.html import format_html
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_http_methods, require_POST

from labelapp.errors import NotFound, PlatformError
from labelapp.models import GoldStandard
from labelapp.services.crowd import curation
from labelapp.services.crowd.volunteers import get_volunteer
from labelapp.services.learning.holdout import holdout_summary
from labelapp.views.console.access import scientist_required
from labelapp.views.errors import platform_error_response
from labelapp.views.json_body import BadJson, json_body, strict_int, strict_int_list
from mlcore.survey import TRUTH_TYPES

PRELOAD = 3  # candidates the expert page holds beyond the one on screen
MAX_NEXT = 10


def _error(exc: PlatformError) -> JsonResponse:
    return platform_error_response(exc)


def _with_urls(rows: list[dict]) -> list[dict]:
    for row in rows:
        d = row["detectid"]
        row["cutout_url"] = reverse("candidate-cutout", args=[d])
        row["spectrum_url"] = reverse("volunteer-api:spectrum", args=[d])
        row["candidate_url"] = reverse("console-candidate", args=[d])
    return rows


# --- expert queue ------------------------------------------------------------------------


@scientist_required
@require_http_methods(["GET"])
def expert_queue(request):
    """The page; with ``?format=json&count=n&exclude=1,2`` the next candidates as JSON (the
    page refills its preloaded queue this way after skips)."""
    if request.GET.get("format") == "json":
        try:
            raw = request.GET.get("exclude", "")
            exclude = _ints(raw.split(",") if raw else [], "exclude")
            count = max(1, min(MAX_NEXT, _int(request.GET.get("count"), "count", PRELOAD)))
        except PlatformError as exc:
            return _error(exc)
        return JsonResponse(
            {
                "candidates": _with_urls(curation.expert_queue(limit=count, exclude=exclude)),
                "remaining": curation.expert_queue_size(),
            }
        )
    config = {
        "answer_url": reverse("console-expert-answer"),
        "queue_url": reverse("console-expert"),
        "csrf": get_token(request),
        "candidates": _with_urls(curation.expert_queue(limit=PRELOAD + 1)),
        "remaining": curation.expert_queue_size(),
        "preload": PRELOAD,
    }
    return render(request, "console/expert.html", {"config": config})


def _ints(raw, name: str) -> list[int]:
    """Strict (labelapp.views.json_body): 64-bit integers only, never booleans or floats."""
    if isinstance(raw, str) and raw:
        raise curation.InvalidInput(
            f"{name} must be a list of at most {curation.EXCLUDE_MAX} detectids"
        )
    try:
        return strict_int_list(raw, name, max_items=curation.EXCLUDE_MAX)
    except BadJson as exc:
        raise curation.InvalidInput(exc.message) from None


def _int(raw, name: str, default: int | None, **bounds) -> int | None:
    try:
        return strict_int(raw, name, default=default, **bounds)
    except BadJson as exc:
        raise curation.InvalidInput(exc.message) from None


@scientist_required
@require_POST
def expert_answer(request):
    """JSON in: {detectid, answer: yes|no, response_ms?, exclude?: [detectid], next?: n}.
    JSON out: the recorded answer, how many remain, and up to ``next`` more candidates
    (not in ``exclude``) so the page's preloaded queue never runs dry."""
    try:
        try:
            data = json_body(request)  # the strict parser the volunteer API uses
        except BadJson as exc:
            raise curation.InvalidInput(exc.message) from None
        detectid = _int(data.get("detectid"), "detectid", None)
        if detectid is None:
            raise curation.InvalidInput("detectid is required")
        want = min(MAX_NEXT, _int(data.get("next"), "next", 0, low=0))
        exclude = _ints(data.get("exclude"), "exclude")
        volunteer = get_volunteer(session=request.session, user=request.user, create=True)
        result = curation.answer_expert_candidate(
            user=request.user,
            volunteer=volunteer,
            detectid=detectid,
            answer=str(data.get("answer", "")),
            response_ms=_int(data.get("response_ms"), "response_ms", None, low=0, high=86_400_000),
        )
    except PlatformError as exc:
        return _error(exc)
    body = {
        "created": result.created,
        "detectid": result.detectid,
        "answer": result.answer,
        "is_real": result.is_real,
        "posterior": result.posterior,
        "remaining": curation.expert_queue_size(),
        "next": [],
    }
    if want:
        body["next"] = _with_urls(
            curation.expert_queue(limit=want, exclude=[*exclude, result.detectid])
        )
    return JsonResponse(body)


# --- gold standards ----------------------------------------------------------------------

GOLD_FILTERS = {"active": True, "inactive": False, "all": None}


@scientist_required
@require_http_methods(["GET"])
def gold_list(request):
    show = request.GET.get("show", "active")
    if show not in GOLD_FILTERS:
        show = "active"
    order = request.GET.get("order", "detectid")
    if order not in curation.GOLD_ORDERS:
        order = "detectid"
    page = Paginator(curation.gold_standards(active=GOLD_FILTERS[show], order=order), 40).get_page(
        request.GET.get("page")
    )
    active = curation.active_gold_counts()
    return render(
        request,
        "console/gold_list.html",
        {
            "page": page,
            "show": show,
            "order": order,
            "filters": list(GOLD_FILTERS),
            "orders": list(curation.GOLD_ORDERS),
            "n_active": active["n"],
            "n_exam": active["exam"],
            "holdout": holdout_summary(),
        },
    )


class GoldEditForm(forms.Form):
    feedback = forms.CharField(
        max_length=curation.FEEDBACK_MAX,
        required=True,
        strip=True,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 70}),
        help_text=(
            f"Shown to volunteers right after they answer this candidate, as plain text "
            f"(at most {curation.FEEDBACK_MAX} characters)."
        ),
    )
    active = forms.BooleanField(
        required=False, help_text="Inactive gold standards are not shown to volunteers."
    )


@scientist_required
@require_http_methods(["GET", "POST"])
def gold_edit(request, detectid: int):
    gold = (
        GoldStandard.objects.select_related("candidate", "created_by")
        .filter(candidate__detectid=detectid)
        .first()
    )
    if gold is None:
        raise Http404(f"candidate {detectid} is not a gold standard")
    status = 200
    if request.method == "POST" and request.POST.get("action") == "deactivate":
        try:
            changed = curation.deactivate_gold(detectid=detectid, user=request.user)
        except PlatformError as exc:
            messages.error(request, exc.message)
            return redirect("console-gold")
        if changed:
            messages.success(request, f"Gold standard {detectid} deactivated.")
        else:
            messages.info(request, f"Gold standard {detectid} was already inactive.")
        return redirect(_safe_next(request, reverse("console-gold")))
    if request.method == "POST":
        form = GoldEditForm(request.POST)
        if form.is_valid():
            try:
                _, changed = curation.update_gold(
                    detectid=detectid,
                    feedback=form.cleaned_data["feedback"],
                    active=form.cleaned_data["active"],
                    user=request.user,
                )
            except PlatformError as exc:
                form.add_error("feedback", exc.message)
            else:
                if changed:
                    messages.success(
                        request, f"Gold standard {detectid} saved ({', '.join(changed)} changed)."
                    )
                else:
                    messages.info(request, f"Gold standard {detectid}: nothing changed.")
                return redirect("console-gold")
        status = 400
    else:
        form = GoldEditForm(initial={"feedback": gold.feedback, "active": gold.active})
    return render(
        request,
        "console/gold_edit.html",
        {"gold": gold, "form": form, "feedback_max": curation.FEEDBACK_MAX},
        status=status,
    )


# --- flags from the gallery / candidate pages --------------------------------------------


def _safe_next(request, default: str) -> str:
    """``next`` from the form when it points at this site, else ``default``."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return default


@scientist_required
@require_POST
def candidate_flag(request, detectid: int):
    """POST action=gold (is_real, kind, feedback?) or action=expert; redirects back."""
    back = _safe_next(request, reverse("console-candidate", args=[detectid]))
    action = request.POST.get("action", "")
    try:
        if action == "gold":
            gold = curation.flag_gold(
                detectid=detectid,
                is_real=curation.parse_is_real(request.POST.get("is_real")),
                kind=request.POST.get("kind", "").strip(),
                feedback=request.POST.get("feedback", ""),
                user=request.user,
            )
            truth = "a real line" if gold.is_real else f"not real ({gold.kind})"
            messages.success(request, f"Candidate {detectid} is now a gold standard: {truth}.")
        elif action == "expert":
            if curation.flag_expert(detectid=detectid, user=request.user):
                messages.success(request, f"Candidate {detectid} sent to the expert queue.")
            else:
                messages.info(request, f"Candidate {detectid} already waits in the expert queue.")
        else:
            raise curation.InvalidInput("action must be 'gold' or 'expert'")
    except PlatformError as exc:
        if isinstance(exc, NotFound):
            raise Http404(exc.message) from None
        return HttpResponse(
            format_html(
                "<!doctype html><title>Not done</title><p>Candidate {} was not changed: {}.</p>"
                '<p>Kinds: {}.</p><p><a href="{}">Go back</a> and try again.</p>',
                detectid,
                exc.message,
                ", ".join(TRUTH_TYPES),
                back,
            ),
            status=400,
        )
    return redirect(back)
