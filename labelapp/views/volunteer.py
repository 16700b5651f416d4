"""Volunteer pages: classify, tutorial, field guide, personal page, sign-up / log-in. Thin."""

from __future__ import annotations

import logging

from django import forms
from django.conf import settings
from django.contrib.auth import login
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.forms.utils import ErrorDict
from django.http import FileResponse, Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext_lazy as _
from django.views.decorators.cache import cache_control
from django.views.decorators.csrf import ensure_csrf_cookie
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labelapp.models import Vote
from labelapp.services.crowd import collections, levels, queue
from labelapp.services.crowd import field_guide as guide
from labelapp.services.crowd.volunteers import (
    attach_session_volunteer,
    get_volunteer,
    mark_tutorial_done,
    tutorial_done,
    volunteer_stats,
)
from labelapp.services.operations import login_guard
from mlcore.render import COLOUR_MAPS, STRETCHES

log = logging.getLogger(__name__)

# Labels are lazy: rendered in the volunteer's language (locale/).
REASONS = [
    ("noise", _("Noise"), "1"),
    ("sky", _("Sky line"), "2"),
    ("cosmic", _("Cosmic ray"), "3"),
    ("hotcol", _("Hot column"), "4"),
    ("meteor", _("Meteor / satellite"), "5"),
    ("badfiber", _("Bad fiber"), "6"),
    ("other", _("Other"), "7"),
]
assert [r for r, _, _ in REASONS] == Vote.Reason.values
# The classify page's image tools (the cutout URL's ?stretch= and ?cmap=, mlcore.render).
STRETCH_CHOICES = [
    ("linear", _("Linear")),
    ("asinh", _("Asinh: sky dark, faint lifted")),
    ("sqrt", _("Square root: gentler")),
    ("log", _("Log: faintest lifted most")),
]
CMAP_CHOICES = [
    ("viridis", "Viridis"),
    ("cividis", _("Cividis (red-green colour blindness)")),
    ("grey", _("Grey")),
]
assert {v for v, _ in STRETCH_CHOICES} == set(STRETCHES)
assert {v for v, _ in CMAP_CHOICES} == set(COLOUR_MAPS)


def _safe_next(request, default: str) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        return target
    return default


@require_GET
@ensure_csrf_cookie
def classify(request):
    volunteer = get_volunteer(session=request.session, user=request.user)
    if (
        not tutorial_done(session=request.session, volunteer=volunteer)
        and "skip" not in request.GET
    ):
        return redirect(f"{reverse('tutorial')}?next={reverse('classify')}")
    return render(
        request,
        "volunteer/classify.html",
        {
            "volunteer": volunteer,
            "n_votes": volunteer.n_votes if volunteer else 0,
            "reasons": REASONS,
            "gold_rate": queue.gold_rate(volunteer.n_votes if volunteer else 0),
            "undo_s": settings.VOTE_UNDO_WINDOW_S,
            "asks_artefact": levels.asks_artefact_type(volunteer=volunteer),
            "high_sn_only": levels.serving_level(volunteer=volunteer) == 1,
            "stretches": STRETCH_CHOICES,
            "cmaps": CMAP_CHOICES,
        },
    )


@require_GET
@ensure_csrf_cookie
def tutorial(request):
    entries = {e["kind"]: e for e in guide.field_guide_entries()}
    steps = [entries[k] for k in guide.TUTORIAL_KINDS if k in entries]
    for e in steps:
        e["figure"] = guide.spectrum_figure_from_window(e["spectrum"], e["wave"])
        del e["spectrum"]
    return render(
        request,
        "volunteer/tutorial.html",
        {"steps": steps, "next": _safe_next(request, reverse("classify"))},
    )


@require_POST
def tutorial_finish(request):
    volunteer = get_volunteer(session=request.session, user=request.user)
    mark_tutorial_done(session=request.session, volunteer=volunteer)
    return redirect(_safe_next(request, reverse("classify")))


@require_GET
def field_guide(request):
    entries = guide.field_guide_entries()
    for e in entries:
        e["figure"] = guide.spectrum_figure_from_window(e["spectrum"], e["wave"])
        del e["spectrum"]
    return render(request, "volunteer/field_guide.html", {"entries": entries})


@require_GET
def field_guide_drawer(request):
    """The field guide as an HTML fragment (pictures and text, no spectra) for the drawer
    beside the classify page's picture; the page fetches it the first time it is opened."""
    return render(
        request, "volunteer/_field_guide_drawer.html", {"entries": guide.field_guide_entries()}
    )


@require_GET
@cache_control(max_age=86400, public=True)
def field_guide_png(request, kind: str):
    path = guide.field_guide_png(kind)
    if path is None:
        raise Http404("no such example")
    return FileResponse(open(path, "rb"), content_type="image/png")


@require_GET
def me(request):
    volunteer = get_volunteer(session=request.session, user=request.user)
    stats = volunteer_stats(volunteer=volunteer) if volunteer else None
    signed_in = request.user.is_authenticated and volunteer is not None
    shown = [d["detectid"] for d in stats.discoveries] if stats else []
    return render(
        request,
        "volunteer/me.html",
        {
            "volunteer": volunteer,
            "stats": stats,
            "favs": collections.favourite_detectids(volunteer=volunteer, detectids=shown)
            if signed_in else set(),
            "collections": collections.list_collections(volunteer=volunteer)
            if signed_in else [],
            "level": levels.level_progress(volunteer=volunteer),
        },
    )  # fmt: skip


class SignUpForm(UserCreationForm):
    email = forms.EmailField(
        required=False, help_text=_("Optional: only used to reset a forgotten password.")
    )

    class Meta(UserCreationForm.Meta):
        fields = ("username", "email")


@require_http_methods(["GET", "POST"])
def signup(request):
    if request.method == "POST":
        form = SignUpForm(request.POST)
        if form.is_valid():
            user = form.save()
            login(request, user, backend="labelapp.auth_backends.LockoutModelBackend")
            attach_session_volunteer(session=request.session, user=user)
            return redirect(_safe_next(request, reverse("me")))
    else:
        form = SignUpForm()
    return render(
        request, "registration/signup.html", {"form": form, "next": _safe_next(request, "")}
    )


class RefusedLoginForm(AuthenticationForm):
    """The log-in form, bound to what was typed, showing only ``refusal``: validating it
    never calls ``authenticate``, so a refused attempt does not test the password."""

    refusal = ""

    def full_clean(self):
        self._errors = ErrorDict()
        self.cleaned_data = {}
        self.add_error(None, ValidationError(self.refusal, code="rate_limited"))


class VolunteerLoginView(LoginView):
    """Django's log-in, plus: the votes made anonymously in this session join the account;
    attempts per username are limited, and repeated failures lock the username for a while
    (settings AUTH_RATE_LOGIN_USER, AUTH_LOGIN_LOCKOUT; the per-IP limit is middleware)."""

    def post(self, request, *args, **kwargs):
        # the one limiter of every log-in form (the admin's too); failures are counted by
        # the authentication backend's signal, whichever form they came from
        refusal = login_guard.login_refusal(username=request.POST.get("username", ""))
        if refusal is not None:
            return self._refuse(refusal.message, refusal.retry_after_s)
        return super().post(request, *args, **kwargs)

    def _refuse(self, message: str, retry_after_s: int):
        form = RefusedLoginForm(self.request, data=self.request.POST)
        form.refusal = message
        response = self.render_to_response(self.get_context_data(form=form))
        response.status_code = 429
        response["Retry-After"] = str(retry_after_s)
        return response

    def form_valid(self, form):
        response = super().form_valid(form)  # login() keeps the session's data
        attach_session_volunteer(session=self.request.session, user=form.get_user())
        return response
